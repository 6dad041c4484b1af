"""The Messenger: one burner's sessions, relay queues and vault behind one facade.

Theory of operation
-------------------
Every operation is a short vault transaction around a pure protocol step, with relay
I/O outside it:

- **Send**: in one transaction, load the session, encrypt, store the new session state,
  the message and an outbox entry (with its relay idempotency key); then hand the
  envelope to the peer's relay; then, in a second transaction, drop the outbox entry.
  A crash anywhere leaves either nothing or an outbox entry that the next run sends
  again under the same idempotency key, so the relay stores it once.
- **Receive**: for each delivery, in one transaction, load the session, decrypt, store
  what it means; only after the commit does the relay get its ACK (the acknowledgement
  rule, docs/protocol.md §17.6, carried out by :mod:`~burnerkit.app.ledger`). A crash
  before the commit leaves the session as it was and the relay delivers again; a crash
  after it makes the relay deliver the same message again, which the vault recognises
  as its last delivery and we ACK. So a message is stored exactly once, and the inbox
  marks it shown in the same way.
- Sessions are always re-read inside the transaction that advances them, so two
  processes on one vault (an inbox waiting, a send) never overwrite each other's
  ratchet state: SQLite's write lock orders them.

Each contact has its own pair of queues (ours to receive on, theirs to send to), and
each queue may sit on its own relay; a burner's relay is only where its new queues go.
Moving a burner to another relay (:meth:`Messenger.relay_set`) gives each contact a next
queue there and tells them in their session (a Move); the contact's first message on the
next queue makes it the contact's queue, and the old one is deleted by a later run
(docs/protocol.md §17.6, relay moves).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Final, Self

from burnerkit.app import border, burning, checkin, duress
from burnerkit.app.addresses import QueueAddress, decode_link, encode_link, parse_link
from burnerkit.app.connections import ConnectionPolicy, RelayConnections
from burnerkit.app.content import MAX_TEXT_SIZE, MAX_TIMER, MIN_TIMER, Escrow, Hello, Move, Text
from burnerkit.app.debrief import Debrief, build_debrief
from burnerkit.app.durations import format_duration
from burnerkit.app.escrow import drop_escrows
from burnerkit.app.home import Home, burn_marker, check_name, clear_burning, is_burning, mark_burning
from burnerkit.app.issuer import (
    ISSUER_KEY,
    ISSUER_KIND,
    IssuerPublicKey,
    OrderAddress,
    load_record,
    take_order,
)
from burnerkit.app.issuer import open_order_queue as _open_order_queue
from burnerkit.app.issuer import seal_report as _seal_report
from burnerkit.app.ledger import (
    IDENTITY_ALERTS,
    RecordReader,
    alert_of,
    all_contacts,
    clear_alerts,
    drop_pending,
    find_contact,
    owner_of,
    process_delivery,
    record_event,
    store_contact,
    take_unshown,
)
from burnerkit.app.liveness import forget_peer, silent_since
from burnerkit.app.queues import QueueOwner, delete_queues, orphan_bytes, orphan_owner, owners
from burnerkit.app.records import (
    ALERT_KINDS,
    Contact,
    EventKind,
    EventRecord,
    Invite,
    Orphan,
    OutboxEntry,
    Profile,
    StoredMessage,
    replace,
)
from burnerkit.app.shortlink import ShortLink, fetch_invitation, publish_invitation
from burnerkit.app.views import (
    BurnerInfo,
    BurnReport,
    ContactRemoved,
    ContactView,
    EventView,
    HistoryEntry,
    InboxResult,
    InviteView,
    RelayMove,
    SendReceipt,
    VerifyResult,
)
from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.passphrase import KdfParams
from burnerkit.crypto.rng import Random, SystemRandom
from burnerkit.errors import (
    AlreadyExistsError,
    BurnerAtBorderError,
    BurnOrderedError,
    ContactBurnedError,
    HandshakeError,
    IdentityChangedError,
    IdentityError,
    IdentityExpiredError,
    InvitationConsumedError,
    NotFoundError,
    PairingTimeoutError,
    RelayError,
    RelayRejectedError,
    RelayTimeoutError,
    RelayUnavailableError,
    RemoteProtocolError,
    UsageError,
    VaultError,
    VaultLockedError,
)
from burnerkit.protocol.envelope import EnvelopeType, envelope_type
from burnerkit.protocol.handshake import Invitation, accept_invitation, create_invitation
from burnerkit.protocol.session import Session
from burnerkit.relay.client import (
    QueueCredentials,
    ReceivedMessage,
    RelayClient,
    RelayEvent,
    SubscriptionEnded,
)
from burnerkit.relay.client import check_relay as _ping_relay
from burnerkit.relay.protocol import ErrorCode
from burnerkit.relay.transport import CONNECT_TIMEOUT
from burnerkit.relay.url import check_relay_url
from burnerkit.vault import Vault, VaultTransaction
from burnerkit.vault.format import open_burn_journal

__all__ = ["DEFAULT_INVITE_LIFETIME", "DEFAULT_LIFETIME", "Clock", "Messenger", "finish_burn"]

Clock = Callable[[], float]

#: A burner lives a week unless told otherwise.
DEFAULT_LIFETIME: Final = 7 * 86400
#: An invitation link stays valid for a day.
DEFAULT_INVITE_LIFETIME: Final = 86400
_PROFILE_KEY: Final = b"burner"
_SEND_ID_SIZE: Final = 16
#: Words of a short code we show, unless asked for more (``pairing.CODE_WORDS``).
_CODE_WORDS: Final = 2
#: Seconds between tries of the vault's lock held by another process's outbox flush.
_LOCK_POLL: Final = 0.02
#: Seconds between two looks, while following, for queues of an owner (or on a relay) not yet listened to.
_FOLLOW_NEW_RELAYS: Final = 1.0
#: How long the inbox keeps listening after the last delivery before it stops.
DEFAULT_IDLE: Final = 0.5


class Messenger:
    """One burner, unlocked: the facade the CLI and the TUI call.

    Make one with :meth:`create` or :meth:`open`; close it (or use ``with``) to lock the
    vault again. Methods that talk to relays are coroutines.
    """

    def __init__(
        self,
        home: Home,
        name: str,
        vault: Vault,
        *,
        directory: Path,
        clock: Clock,
        rng: Random,
        relay_timeout: float,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        """Wrap an open vault; use :meth:`create` or :meth:`open` instead."""
        self.home = home
        self.name = name
        self._vault = vault
        #: The burner's directory: a random id under the home, never its name (§15.1).
        self._directory = directory
        self._clock = clock
        self._rng = rng
        self._relay_timeout = relay_timeout
        #: Seconds a relay connect may take before the relay counts as unreachable (§14.13).
        self._connect_timeout = connect_timeout
        #: What became of each outbox entry this run sent: "delivered" or "refused".
        self._outcomes: dict[bytes, str] = {}
        #: Why each relay this run could not reach failed: ``URL (cause)``, said to the user.
        self._unreachable: dict[str, str] = {}
        #: One outbox flush at a time in this process; the vault's lock orders processes.
        self._flush_mutex = asyncio.Lock()
        #: Made at the first relay operation (:attr:`connections`).
        self._connections: RelayConnections | None = None
        #: Numbers the parties of operations that belong to no contact yet (no rng drawn).
        self._fresh_parties = 0
        #: The burn passed its first durable step: the vault closes for good (§17.7). A face
        #: whose timers read the Messenger (the chat) checks it before reading.
        self.gone = False
        #: A valid burn order arrived (§17.9): the receive loop stops and the burner burns.
        self._burn_ordered = False

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        home: Home,
        name: str,
        passphrase: str,
        *,
        relay_url: str,
        lifetime: int = DEFAULT_LIFETIME,
        kdf: KdfParams | None = None,
        clock: Clock = time.time,
        rng: Random | None = None,
        relay_timeout: float = 10.0,
        connect_timeout: float = CONNECT_TIMEOUT,
        insecure: bool = False,
        name_checked: bool = False,
        check_in: int = 0,
    ) -> Messenger:
        """Mint a new burner: its vault, its profile and expiry. No relay is contacted.

        Check the relay first with :meth:`check_relay` (``burner new`` does). A ``ws://``
        relay URL to a host other than this machine needs ``insecure``.

        The burner's directory gets a random id; its name goes into the sealed profile
        (docs/protocol.md §15.1). The name must be new among the burners this passphrase
        opens, so each burner already in the home costs one passphrase derivation, unless
        ``name_checked`` says the caller just ran :meth:`check_new` with this passphrase.

        ``check_in`` (seconds, 0: none) arms the dead-man switch (docs/protocol.md §17.8):
        not unlocked within that window, the burner burns on its next start.

        Raises:
            UsageError: a bad name, relay URL (docs/protocol.md §14.13), lifetime or
                check-in window.
            AlreadyExistsError: a burner of that name exists.
        """
        rng = SystemRandom() if rng is None else rng
        if lifetime <= 0:
            raise UsageError("a burner's lifetime must be positive")
        if check_in:
            checkin.check_window(check_in, lifetime)
        cls.check_new(
            home, name, relay_url, insecure=insecure, passphrase=None if name_checked else passphrase, rng=rng
        )
        home.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory = home.new_directory(rng)
        kwargs = {} if kdf is None else {"kdf": kdf}
        vault = Vault.create(directory, passphrase, rng=rng, **kwargs)
        now = int(clock())
        with vault.transaction() as tx:
            tx.put("profile", _PROFILE_KEY, Profile(name, relay_url, now, now + lifetime, now).to_bytes())
            if check_in:
                checkin.start(tx, check_in, now)
        return cls(
            home,
            name,
            vault,
            directory=directory,
            clock=clock,
            rng=rng,
            relay_timeout=relay_timeout,
            connect_timeout=connect_timeout,
        )

    @staticmethod
    def check_new(
        home: Home,
        name: str,
        relay_url: str,
        *,
        insecure: bool = False,
        passphrase: str | None = None,
        rng: Random | None = None,
    ) -> None:
        """What :meth:`create` checks before it makes anything: the name, and the relay URL.

        ``burner new`` calls it before it checks the relay, so that a name already taken
        is said first. Without ``passphrase`` only what the disk can say: a burner of the
        previous version has a directory named after it. With it, also that no burner
        this passphrase opens holds ``name``: one derivation per burner of the home.

        Raises:
            UsageError: a bad name or relay URL (docs/protocol.md §14.13).
            AlreadyExistsError: a burner of that name exists.
        """
        check_name(name)
        check_relay_url(relay_url, insecure=insecure)
        if any(slot.name == name for slot in home.slots()):
            raise AlreadyExistsError(f"a burner named {name!r} already exists in {home.root}")
        if passphrase is None:
            return
        rng = SystemRandom() if rng is None else rng
        renamed = home.migrate(rng)
        for slot in home.trial_order(home.slots(), rng):
            if is_burning(slot):
                continue
            if border.at_border(slot):
                if border.held_name(slot, passphrase) == name:
                    raise AlreadyExistsError(
                        f"a burner named {name!r} already exists in {home.root} (at the border)"
                    )
                continue
            try:
                other = Vault.open(slot, passphrase)
            except VaultError:
                continue
            with other:
                held = _held_name(other, renamed.get(slot))
            if held == name:
                raise AlreadyExistsError(f"a burner named {name!r} already exists in {home.root}")

    @staticmethod
    async def check_relay(
        url: str, *, insecure: bool = False, timeout: float = 10.0, connect_timeout: float = CONNECT_TIMEOUT
    ) -> None:
        """Check ``url`` (§14.13) and make one PING round trip to the relay there.

        Args:
            url: the relay's URL, perhaps pinned.
            insecure: allow ``ws://`` to a host other than this machine.
            timeout: the whole check's time limit.
            connect_timeout: the connect's limit.

        Raises:
            UsageError: the URL is not one a burner can use.
            RelayUnavailableError: the relay could not be reached; ``url`` and ``cause``
                say which and why (refused, DNS, TLS, timed out, ...).
            RelayTimeoutError: it connected but did not answer in time.
        """
        check_relay_url(url, insecure=insecure)
        await _ping_relay(url, timeout=timeout, connect_timeout=connect_timeout)

    @classmethod
    def open(
        cls,
        home: Home,
        name: str | None,
        passphrase: str,
        *,
        clock: Clock = time.time,
        rng: Random | None = None,
        relay_timeout: float = 10.0,
        allow_expired: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
        detach_alerts: bool = False,
    ) -> Messenger:
        """Unlock the burner called ``name`` (the home's only one when ``name`` is None).

        No name is on disk (docs/protocol.md §15.1), so the passphrase is tried on the
        home's vaults in a random order until one opens and holds that name: a derivation
        per vault tried, at most one per burner in the home. A burn that was interrupted
        is finished when its directory comes up (its relay queues deleted first if the
        passphrase opens it); if it was the burner asked for, that burner is then gone.
        A decoy (the duress passphrase, docs/protocol.md §17.11) first destroys the key of
        the burner it guards, then sends its alerts: from a forked child with
        ``detach_alerts`` (a command that exits as soon as it is done), else from a thread.

        Raises:
            UsageError: a bad name, or no name and several burners.
            NotFoundError: no burner at all, or the one asked for was being burned.
            VaultLockedError: no vault of the home opens with this passphrase and holds
                that name; one message for a wrong passphrase and an unknown name alike.
            IdentityExpiredError: the burner is past its expiry (unless ``allow_expired``).
            NotFoundError: the burner was not unlocked within its check-in window; it has
                just burned (docs/protocol.md §17.8).
        """
        rng = SystemRandom() if rng is None else rng
        home.check_choice(name)
        renamed = home.migrate(rng)
        first = [slot for slot, old in renamed.items() if old == name]
        failure: VaultError | None = None
        found: tuple[Path, Vault, str] | None = None
        for slot in home.trial_order(home.slots(), rng, first=first):
            if is_burning(slot):
                burned = cls._resume_burn(
                    home, slot, passphrase, clock=clock, rng=rng, relay_timeout=relay_timeout
                )
                if name is None or burned == name:
                    what = "the burner" if burned is None else f"burner {burned!r}"
                    raise NotFoundError(f"{what} was being burned; the burn is now complete")
                continue
            if border.at_border(slot):
                # Its key is with its holder (§17.12): the state opens with the passphrase, the vault cannot.
                state = border.held_state(slot, passphrase)
                if state is not None and (name is None or state.name == name):
                    raise BurnerAtBorderError(border.at_border_text(state))
                continue
            try:
                vault = Vault.open(slot, passphrase)
            except VaultLockedError:
                continue
            except VaultError as exc:  # it opened, then turned out damaged
                if name is None:
                    raise
                failure = failure or exc
                continue
            try:
                held = _held_name(vault, renamed.get(slot))
            except BaseException:
                vault.close()
                raise
            if name is None or held == name:
                found = slot, vault, held or ""
                break
            vault.close()
        if found is None:
            if failure is not None:
                raise failure
            if name is None:
                raise VaultLockedError
            raise VaultLockedError(f"no burner named {name!r} opens with this passphrase")
        directory, vault, held = found
        messenger = cls(
            home,
            held,
            vault,
            directory=directory,
            clock=clock,
            rng=rng,
            relay_timeout=relay_timeout,
            connect_timeout=connect_timeout,
        )
        try:
            # A decoy destroys the real key before anything else, then alerts (§17.11).
            alerts = duress.after_unlock(home, vault)
            duress.start_alerts(alerts, rng=rng, relay_timeout=relay_timeout, detach=detach_alerts)
            messenger._adopt_legacy_name(renamed.get(directory))
            messenger._advance_clock()
            messenger._dead_man()
            if not allow_expired and messenger._expired():
                messenger._burn_expired()
            messenger._purge_expired()
        except BaseException:
            vault.close()
            raise
        return messenger

    @classmethod
    def survey(
        cls,
        home: Home,
        passphrase: str,
        *,
        clock: Clock = time.time,
        rng: Random | None = None,
        relay_timeout: float = 10.0,
        detach_alerts: bool = False,
    ) -> list[BurnerInfo]:
        """What ``burner list`` shows under a passphrase: every burner it opens, by name.

        Each burner of the home costs one derivation. Interrupted burns met on the way are
        finished (as :meth:`open` does) and not listed. Nothing is written to the vaults
        that open: this only reads their profiles.

        Raises:
            VaultError: a vault opened with this passphrase and then turned out damaged.
        """
        rng = SystemRandom() if rng is None else rng
        renamed = home.migrate(rng)
        out: list[BurnerInfo] = []
        for slot in home.trial_order(home.slots(), rng):
            if is_burning(slot):
                cls._resume_burn(home, slot, passphrase, clock=clock, rng=rng, relay_timeout=relay_timeout)
                continue
            try:
                vault = Vault.open(slot, passphrase)
            except VaultLockedError:
                continue
            with vault:
                data = vault.get("profile", _PROFILE_KEY)
                if data is None:  # an unfinished mint: nothing to show, and nothing to burn by name
                    continue
                alerts = duress.after_unlock(home, vault)
                duress.start_alerts(alerts, rng=rng, relay_timeout=relay_timeout, detach=detach_alerts)
                profile = Profile.from_bytes(data)
                name = renamed.get(slot) or profile.name
                contacts = len(vault.items("contact"))
            out.append(BurnerInfo(name, profile.relay_url, profile.created_at, profile.expires_at, contacts))
        return sorted(out, key=lambda info: info.name)

    @classmethod
    def _resume_burn(
        cls,
        home: Home,
        directory: Path,
        passphrase: str,
        *,
        clock: Clock,
        rng: Random,
        relay_timeout: float,
    ) -> str | None:
        """Finish a burn a crash interrupted (docs/protocol.md §17.7, resuming).

        With the passphrase that opens its journal, the burn carries on from it (key,
        notices, queues, files). A journal that does not open next to a vault that does is
        a burn killed before its key went: it starts again. When neither opens (another
        burner's passphrase, or only a marker of the previous version), the owner already
        chose to burn: the files are shredded all the same, and the notices and queue
        deletions are lost (the queues expire on their relay, unlinkable without the key).

        Returns:
            The burner's name, when the passphrase opened its journal or vault.
        """
        journal = _open_journal(directory, passphrase)
        if journal is None and Vault.exists(directory):
            with contextlib.suppress(VaultError):
                vault = Vault.open(directory, passphrase)
                try:
                    held = _held_name(vault, None)
                    messenger = cls(
                        home,
                        held or "",
                        vault,
                        directory=directory,
                        clock=clock,
                        rng=rng,
                        relay_timeout=relay_timeout,
                    )
                    burning.run_sync(messenger.burn())
                finally:
                    vault.close()
                return held
        if journal is None:
            finish_burn(home, directory)
            return None
        policy = dataclasses.replace(ConnectionPolicy.from_environ(), jitter=0.0)  # in a hurry, as burn()
        connections = RelayConnections(
            lambda url, after, on_link: RelayClient(
                url, rng=rng, timeout=relay_timeout, on_link=on_link, open_after=after, reconnect_jitter=0.0
            ),
            policy=policy,
            rng=rng,
        )
        burning.run_sync(burning.carry_out(journal, home, directory, connections.lease))
        return journal.name or None

    def close(self) -> None:
        """Lock the vault; the messenger is unusable afterwards."""
        self._vault.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Messenger({self.name!r})"

    def _adopt_legacy_name(self, legacy: str | None) -> None:
        """Keep the name a burner of the previous version went by (its directory's) in its profile."""
        if legacy is None:
            return
        with self._vault.transaction() as tx:
            data = tx.get("profile", _PROFILE_KEY)
            if data is not None and Profile.from_bytes(data).name != legacy:
                tx.put("profile", _PROFILE_KEY, replace(Profile.from_bytes(data), name=legacy).to_bytes())

    # -- time and expiry ------------------------------------------------------------------------

    def _profile(self, tx: VaultTransaction | None = None) -> Profile:
        data = (tx or self._vault).get("profile", _PROFILE_KEY)
        if data is None:
            raise NotFoundError(f"burner {self.name!r} has no profile (an unfinished mint)")
        return Profile.from_bytes(data)

    def now(self) -> float:
        """The current time, never earlier than the latest any run of this burner saw."""
        return max(self._clock(), float(self._profile().clock_mark))

    def _advance_clock(self) -> None:
        # The clock mark rides along with the run's real writes (Vault.on_write), so that a
        # read-only run leaves the vault's files untouched (docs/protocol.md §15.11); a run
        # that finds the burner expired writes it at once (_check_alive).
        self._vault.on_write(self._mark_clock)

    def _mark_clock(self, tx: VaultTransaction) -> None:
        now = int(self._clock())
        profile = self._profile(tx)
        if now > profile.clock_mark:
            tx.put("profile", _PROFILE_KEY, replace(profile, clock_mark=now).to_bytes())

    def _expired(self) -> bool:
        return self.now() >= self._profile().expires_at

    def _burn_expired(self) -> None:
        """An expired burner burns itself at its first start after its expiry (§17.7, expiry).

        Raises:
            IdentityExpiredError: always, once the burn is done, to say so.
        """
        expires_at = self._profile().expires_at
        burning.burn_from_open(self)
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires_at))
        raise IdentityExpiredError(
            f"burner {self.name!r} expired at {stamp}; it has burned itself "
            "(its contacts were told, its relay queues and files are gone)"
        )

    def _check_alive(self) -> None:
        profile = self._profile()
        if self.now() >= profile.expires_at:
            with self._vault.transaction() as tx:  # the expiry stays seen if the clock is turned back
                self._mark_clock(tx)
            stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(profile.expires_at))
            raise IdentityExpiredError(
                f"burner {self.name!r} expired at {stamp}; it refuses to send or receive "
                f"(burn it with 'burner burn {self.name} --yes')"
            )

    def _dead_man(self) -> None:
        """Burn a burner not unlocked within its check-in window; else check in (§17.8).

        The check-in is a write even for a run that only reads: the exception to §15.11's
        read-only rule that a burner with a check-in window opted into.

        Raises:
            NotFoundError: the window had passed; the burner has burned.
        """
        now = self.now()
        switch = checkin.overdue(self._vault, now)
        if switch is None:
            if checkin.own_check_in(self._vault) is not None:
                with self._vault.transaction() as tx:
                    checkin.check_in(tx, self._rng, now)
            return
        with self._vault.transaction() as tx:  # the deadline stays seen if the clock is turned back
            self._mark_clock(tx)
        burning.burn_from_open(self)
        raise NotFoundError(
            f"burner {self.name!r} was not unlocked within its check-in window "
            f"({format_duration(switch.window)}): it has burned"
        )

    async def _keep_alive(self, report: Callable[[], None]) -> None:
        """While following: check in, seal due heartbeats and look for silent contacts (§17.8).

        A run that finds itself past its window (the machine slept through it) does not
        check in: the next start burns the burner.
        """
        while True:
            now = self.now()
            with self._vault.transaction() as tx:
                sealed = checkin.overdue(tx, now) is None and checkin.check_in(tx, self._rng, now)
                silences = checkin.record_silences(tx, self._rng, now)
            if sealed or silences:
                report()  # sends the heartbeats, shows the silences
            await asyncio.sleep(checkin.tick_period(self._vault))

    def _purge_expired(self) -> None:
        """Delete disappearing messages past their time, and invitations nobody accepted.

        An expired invitation's queue is kept as an orphan, so the next run that reaches
        the relay deletes it there too.
        """
        now = self.now()
        with self._vault.transaction() as tx:
            for key, data in tx.items("message"):
                message = StoredMessage.from_bytes(data)
                if message.expires_at and message.expires_at <= now:
                    tx.delete("message", key)
            for key, data in tx.items("invite"):
                invite = Invite.from_bytes(data)
                if invite.expires_at <= now:
                    tx.delete("invite", key)
                    tx.put(
                        "orphan", invite.queue.recipient_id, orphan_bytes(invite.queue_relay, invite.queue)
                    )
                    _orphan_link_queue(tx, invite)
                    drop_pending(tx, self._rng, invite.queue.recipient_id, now)

    # -- reading ------------------------------------------------------------------------------

    def info(self) -> BurnerInfo:
        """The burner's name, relay, validity window and number of contacts."""
        profile = self._profile()
        return BurnerInfo(
            profile.name,
            profile.relay_url,
            profile.created_at,
            profile.expires_at,
            len(self._vault.items("contact")),
            0 if (switch := checkin.own_check_in(self._vault)) is None else switch.window,
        )

    @property
    def relay_url(self) -> str:
        """Where this burner's new queues go."""
        return self._profile().relay_url

    def contacts(self) -> list[ContactView]:
        """Every contact, by alias."""
        return sorted((self._view(c) for c in all_contacts(self._vault)), key=lambda view: view.alias)

    def _view(self, contact: Contact) -> ContactView:
        # A burned contact's session is gone (§17.7), and with it the safety code.
        code = "" if contact.burned else Session.from_bytes(contact.session, rng=self._rng).safety_code
        alert = alert_of(self._vault, contact.contact_id)
        alerts = [] if alert is None else alert.sorted_kinds()
        return ContactView(
            contact.alias,
            contact.peer.relay_url,
            # A contact on alert is not shown as verified, whatever was verified before.
            contact.verified and not contact.key_changed and not alerts,
            contact.key_changed,
            contact.timer,
            contact.burn_on_read,
            code,
            alerts,
            silent_since(self._vault, contact.contact_id, self.now()),
            burned=contact.burned,
        )

    def contact(self, alias: str) -> ContactView:
        """One contact, by alias.

        Raises:
            NotFoundError: there is none.
        """
        return self._view(find_contact(self._vault, alias))

    def clear_alerts(self, alias: str) -> ContactView:
        """Clear every alert of ``alias`` (the events stay for the debrief).

        Raises:
            NotFoundError: no such contact.
        """
        with self._vault.transaction() as tx:
            contact = find_contact(tx, alias)
            clear_alerts(tx, contact.contact_id)
        return self._view(contact)

    def history(self, alias: str) -> list[HistoryEntry]:
        """Every stored message with ``alias``, oldest first (burned-on-read ones are gone).

        Each outgoing message has its ``status``: ``queued`` (in the outbox: its relay was
        unreachable, a later flush sends it), ``delivered`` (the peer's relay stored it) or
        ``refused`` (the relay no longer had the peer's queue; the message was dropped).

        Raises:
            NotFoundError: no such contact.
        """
        contact = find_contact(self._vault, alias)
        waiting = {OutboxEntry.from_bytes(data).message_key for _, data in self._vault.items("outbox")}
        messages = [
            StoredMessage.from_bytes(data)
            for key, data in self._vault.items("message")
            if key.startswith(contact.contact_id)
        ]
        messages.sort(key=lambda m: (m.sent_at, m.outgoing, m.seq))
        return [
            HistoryEntry(
                m.outgoing,
                m.text,
                m.sent_at,
                m.seq,
                m.delivered,
                m.burn_on_read,
                m.expires_at,
                status=_delivery_status(m, waiting),
            )
            for m in messages
        ]

    def events(self) -> list[EventView]:
        """Every anomaly recorded so far, oldest first (kept for the trip debrief)."""
        return self._event_views(set())

    def debrief(self) -> Debrief:
        """Every anomaly of this burner's life, without content, per contact (§17.10)."""
        aliases = {c.contact_id: c.alias for c in all_contacts(self._vault)}
        records = [EventRecord.from_bytes(data) for _, data in self._vault.items("event")]
        return build_debrief(self._profile().name, records, aliases, self.now())

    def _event_views(self, seen: set[bytes]) -> list[EventView]:
        """The anomalies whose keys are not in ``seen``, oldest first; adds their keys to it."""
        aliases = {c.contact_id: c.alias for c in all_contacts(self._vault)}
        records = []
        for key, data in self._vault.items("event"):
            if key not in seen:
                seen.add(key)
                records.append(EventRecord.from_bytes(data))
        records.sort(key=lambda e: e.at)
        return [
            EventView(aliases.get(e.contact_id, ""), e.at, e.kind.value, e.detail, e.kind in ALERT_KINDS)
            for e in records
        ]

    def _news(self, seen_events: set[bytes], known_contacts: set[str], unreachable: list[str]) -> InboxResult:
        """What arrived since ``seen_events`` and ``known_contacts`` were taken (both updated).

        The new messages are marked shown (burn-on-read ones deleted) in the same step.
        """
        with self._vault.transaction() as tx:
            messages = take_unshown(tx)
        events = self._event_views(seen_events)
        new_contacts = sorted({c.alias for c in all_contacts(self._vault)} - known_contacts)
        known_contacts.update(new_contacts)
        said = {self._unreachable.get(url, url.partition("#")[0]) for url in unreachable}
        return InboxResult(messages, events, sorted(said), new_contacts)

    # -- managing contacts ---------------------------------------------------------------------

    async def remove_contact(self, alias: str) -> ContactRemoved:
        """Delete ``alias`` with its messages, alerts and unsent messages, then its relay queue.

        One vault transaction deletes the records and turns the contact's receive queue
        into an orphan, which is then deleted from our relay as a re-paired contact's is
        (a later run tries again if the relay is unreachable). The peer's sends are then
        refused by the relay. The contact's events stay for the debrief.

        Raises:
            NotFoundError: no such contact.
        """
        with self._vault.transaction() as tx:
            contact = find_contact(tx, alias)
            cid = contact.contact_id
            messages = [key for key, _ in tx.items("message") if key.startswith(cid)]
            unsent = [
                key for key, data in tx.items("outbox") if OutboxEntry.from_bytes(data).contact_id == cid
            ]
            for key in messages:
                tx.delete("message", key)
            for key in unsent:
                tx.delete("outbox", key)
            clear_alerts(tx, cid)
            forget_peer(tx, cid)
            tx.delete(duress.HELD_KEY_KIND, cid)  # its duress alert key, if it gave us one (§17.11)
            drop_escrows(tx, cid)
            tx.delete("contact", cid)
            # Every receive queue the contact has (a relay move under way gives it two).
            queues = list(owners([contact], []).values())
            for owner in queues:
                tx.put("orphan", owner.creds.recipient_id, orphan_bytes(owner.relay_url, owner.creds))
        await self._drop_orphans()
        gone = all(self._vault.get("orphan", owner.creds.recipient_id) is None for owner in queues)
        return ContactRemoved(alias, len(messages), len(unsent), gone)

    def rename_contact(self, alias: str, new_alias: str) -> ContactView:
        """Call contact ``alias`` ``new_alias`` from now on; nothing else changes.

        Raises:
            UsageError: ``new_alias`` is not a valid name.
            NotFoundError: no contact ``alias``.
            AlreadyExistsError: a contact, or an open invitation, has that name already.
        """
        check_name(new_alias, "contact")
        with self._vault.transaction() as tx:
            contact = find_contact(tx, alias)
            if new_alias == alias:
                return self._view(contact)
            if _contact_or_none(tx, new_alias) is not None:
                raise AlreadyExistsError(f"a contact named {new_alias!r} already exists")
            if any(Invite.from_bytes(data).alias == new_alias for _, data in tx.items("invite")):
                # Its acceptance would re-pair the renamed contact, as if its key changed.
                raise AlreadyExistsError(f"an open invitation is for {new_alias!r}: pick another name")
            contact = replace(contact, alias=new_alias)
            tx.put("contact", contact.contact_id, contact.to_bytes())
        return self._view(contact)

    # -- trust ---------------------------------------------------------------------------------

    def verify(self, alias: str, code: str | None = None) -> VerifyResult:
        """Show ``alias``'s safety code; with ``code``, check it and mark the contact verified.

        Raises:
            NotFoundError: no such contact.
            IdentityError: ``code`` does not match: do not trust this contact.
        """
        with self._vault.transaction() as tx:
            contact = _living(find_contact(tx, alias))
            expected = Session.from_bytes(contact.session, rng=self._rng).safety_code
            if code is None:
                return VerifyResult(alias, expected, self._view(contact).verified)
            given = "".join(ch for ch in code if ch.isdigit())
            matches = hmac.compare_digest(given.encode(), expected.replace(" ", "").encode())
            if matches:
                tx.put(
                    "contact",
                    contact.contact_id,
                    replace(contact, verified=True, key_changed=False).to_bytes(),
                )
                # The code proves who holds the contact's keys: the identity alerts are
                # answered. A clone holds the same keys, so clone alerts stay.
                clear_alerts(tx, contact.contact_id, IDENTITY_ALERTS)
            else:
                tx.put("contact", contact.contact_id, replace(contact, verified=False).to_bytes())
                record_event(
                    tx,
                    self._rng,
                    contact.contact_id,
                    EventKind.CODE_MISMATCH,
                    "the safety code compared did not match",
                    self.now(),
                )
        if not matches:
            raise IdentityError(
                f"the safety code does not match {alias!r}'s: someone may be in the middle; "
                "do not trust this contact"
            )
        return VerifyResult(alias, expected, self._view(find_contact(self._vault, alias)).verified)

    # -- relays --------------------------------------------------------------------------------

    @property
    def connections(self) -> RelayConnections:
        """Our relay connections: one per contact per relay, unless the policy shares them.

        Made at the first relay operation, so that a bad ``$BURNER_RELAY_CONNECTIONS`` or
        ``$BURNER_CONNECT_JITTER`` fails that operation, not the unlock (and what needs no
        relay still works).

        Raises:
            UsageError: the environment's policy is not one (docs/protocol.md §14.13a).
        """
        if self._connections is None:
            self._connections = RelayConnections(
                self._make_client,
                policy=ConnectionPolicy.from_environ(),
                rng=self._rng,
                watcher=lambda: self._link_watcher,
            )
        return self._connections

    def _make_client(self, url: str, open_after: float, on_link: Callable[[bool], None]) -> RelayClient:
        try:
            return RelayClient(
                url,
                rng=self._rng,
                timeout=self._relay_timeout,
                connect_timeout=self._connect_timeout,
                on_link=on_link,
                open_after=open_after,
                reconnect_jitter=self.connections.policy.jitter,
            )
        except ValueError as exc:
            # A peer's address that our URL rule refuses (§14.13; an older peer's relay, say):
            # that relay is unreachable for us, as callers already handle, not a crash.
            raise RelayUnavailableError(url=url.partition("#")[0], cause="unusable relay url") from exc

    def _client(self, url: str, party: bytes | None = None) -> AbstractAsyncContextManager[RelayClient]:
        """A connection to ``url`` of ``party``'s own (a contact's id, an invitation's).

        None: an operation for nobody known yet (a pairing, a new contact's queue), which
        gets a connection of its own (docs/protocol.md §14.13a).
        """
        if party is None:
            self._fresh_parties += 1
            party = b"fresh:%d" % self._fresh_parties
        return self.connections.lease(url, party)

    def _party(self, owner: QueueOwner) -> bytes:
        """Which connection a queue travels on: its owner's (the one link when shared)."""
        return b"" if self.connections.policy.shared else owner.key

    # -- invitations ----------------------------------------------------------------------------

    async def invite(
        self,
        alias: str | None = None,
        *,
        lifetime: int = DEFAULT_INVITE_LIFETIME,
        verified: bool = False,
        short: bool = True,
    ) -> InviteView:
        """Make a one-time invitation: a fresh queue on our relay and its ``burner:`` links.

        With ``short``, the invitation is also left sealed on a link queue of our relay,
        and the view's ``link`` is the short link that fetches it (docs/protocol.md
        §17.2); ``long_link`` always carries the invitation itself. The contact appears
        (as ``alias``) once the invitee's acceptance arrives, which the next
        :meth:`receive` takes in.

        Raises:
            IdentityExpiredError: the burner has expired.
            RelayError: our relay could not make the queues or store the short link's copy.
        """
        self._check_alive()
        alias = self._free_alias(alias)
        relay_url = self.relay_url
        async with self._client(relay_url) as client:
            # Sender-secured: the first acceptance locks the queue to its acceptor (§14.8).
            creds = await client.create_queue(sender_secured=True)
            now = self.now()
            pending, raw = create_invitation(
                rng=self._rng,
                now=now,
                lifetime=lifetime,
                reply_address=QueueAddress(relay_url, creds.sender_id).to_bytes(),
            )
            try:
                short_link, link_queue = (
                    await publish_invitation(client, relay_url, raw, self._rng) if short else (None, None)
                )
            except RelayError:
                # The invitation's queue is made already: a later run deletes it.
                with self._vault.transaction() as tx:
                    tx.put("orphan", creds.recipient_id, orphan_bytes(relay_url, creds))
                raise
        invite = Invite(
            invite_id=pending.invitation.invitation_id,
            alias=alias,
            created_at=int(now),
            expires_at=pending.invitation.expires_at,
            queue_relay=relay_url,
            queue=creds,
            pending=pending.to_bytes(),
            verified=verified,
            link_queue=link_queue,
        )
        with self._vault.transaction() as tx:
            tx.put("invite", invite.invite_id, invite.to_bytes())
        long_link = encode_link(raw)
        link = long_link if short_link is None else short_link.to_text()
        return InviteView(link, alias, invite.expires_at, long_link)

    def _free_alias(self, alias: str | None) -> str:
        """``alias`` checked (re-pairing an existing alias is allowed), or the next ``contact-N``."""
        if alias is not None:
            return check_name(alias, "contact")
        taken = {c.alias for c in all_contacts(self._vault)} | {
            Invite.from_bytes(d).alias for _, d in self._vault.items("invite")
        }
        number = 1
        while f"contact-{number}" in taken:
            number += 1
        return f"contact-{number}"

    async def accept(
        self, link: str | bytes, alias: str, *, verified: bool = False, insecure: bool = False
    ) -> ContactView:
        """Accept an invitation (a short or long ``burner:`` link, or its bytes) and greet the inviter.

        A short link's invitation is fetched from the inviter's relay first and checked
        against the link's commitment; its copy stays there for the inviter to delete
        (docs/protocol.md §17.2). Makes our queue for this contact on our relay, opens
        the session and sends the first message (our queue's address) to the inviter's
        relay. If that relay is unreachable the greeting waits in the outbox.

        Raises:
            UsageError: not a link, or a bad alias.
            InvitationConsumedError: the invitation was accepted by someone else first.
            HandshakeError: the invitation is forged, expired or invalid, not the one the
                short link names, or no longer on its relay.
            RelayError: our relay could not make the queue, or the short link's relay
                could not be reached.
        """
        self._check_alive()
        check_name(alias, "contact")
        parsed = parse_link(link) if isinstance(link, str) else bytes(link)
        if isinstance(parsed, bytes):
            _check_peer_relay(parsed, insecure=insecure)
            return await self._accept_invitation(parsed, alias, verified=verified)
        self._refuse_own_link(parsed)
        check_relay_url(parsed.relay_url, insecure=insecure)  # we fetch from it before anything
        # Fetched, not acknowledged: the copy stays for whoever holds the link until the
        # inviter deletes it once the invitation expires. A second acceptor then meets the
        # invitation's sender-secured queue, whose refusal tells both sides (§17.2).
        async with self._client(parsed.relay_url) as client:
            raw = await fetch_invitation(client, parsed, timeout=self._relay_timeout)
        _check_peer_relay(raw, insecure=insecure)
        return await self._accept_invitation(raw, alias, verified=verified)

    def _refuse_own_link(self, link: ShortLink) -> None:
        """Refuse a short link of our own before fetching it (which would use it up).

        Raises:
            UsageError: the link names one of our open invitations.
        """
        for _, data in self._vault.items("invite"):
            queue = Invite.from_bytes(data).link_queue
            if queue is not None and hmac.compare_digest(queue.recipient_id, link.recipient_id):
                raise UsageError("this is this burner's own invitation: hand it to the other side to accept")

    async def _accept_invitation(self, raw: bytes, alias: str, *, verified: bool) -> ContactView:
        """Accept the invitation ``raw`` (see :meth:`accept`)."""
        try:
            invitation = Invitation.from_bytes(raw)
            peer = QueueAddress.from_bytes(invitation.reply_address)
        except RemoteProtocolError as exc:
            raise UsageError("the invitation link is damaged") from exc
        if self.now() >= invitation.expires_at:
            raise HandshakeError("the invitation has expired; ask for a new one")
        self._refuse_known_invitation(invitation.invitation_id, peer)
        relay_url = self.relay_url
        async with self._client(relay_url) as client:
            creds = await client.create_queue(sender_secured=True)
        now = self.now()
        # Our expiry rides on the Hello: the inviter refuses us after it (§17.7).
        hello = Hello(QueueAddress(relay_url, creds.sender_id), self._profile().expires_at).encode()
        session, envelope = accept_invitation(raw, content=hello, rng=self._rng, now=now)
        with self._vault.transaction() as tx:
            previous = _contact_or_none(tx, alias)
            previous_alert = None if previous is None else tx.get("alert", previous.contact_id)
            contact = store_contact(
                tx, self._rng, alias, session, relay_url, creds, peer, verified=verified, now=now, via="link"
            )
            contact = replace(contact, expiry_told=True)
            tx.put("contact", contact.contact_id, contact.to_bytes())
            entry = OutboxEntry(
                self._rng.random_bytes(_SEND_ID_SIZE),
                contact.contact_id,
                peer,
                envelope,
                int(now * 1000),
                b"",
            )
            tx.put("outbox", entry.send_id, entry.to_bytes())
        await self.flush_outbox()
        if self._outcomes.get(entry.send_id) == "refused":
            self._undo_acceptance(contact, previous, previous_alert)
            await self._drop_orphans()
            raise InvitationConsumedError(
                "this invitation was already used: it may have been intercepted; ask for a new one"
            )
        await self._drop_orphans()
        return self._view(contact)

    def _refuse_known_invitation(self, invitation_id: bytes, peer: QueueAddress) -> None:
        """Refuse our own invitation, and one we accepted already, before anything is made.

        Raises:
            UsageError: the invitation is ours, or was accepted by this burner already.
        """
        ours = self._vault.get("invite", invitation_id) is not None
        for contact in all_contacts(self._vault):
            mine = [contact.queue] + ([] if contact.next_queue is None else [contact.next_queue])
            if any(hmac.compare_digest(creds.sender_id, peer.sender_id) for creds in mine):
                ours = True
            elif hmac.compare_digest(contact.peer.sender_id, peer.sender_id):
                raise UsageError(
                    f"this burner already accepted this invitation: it is contact {contact.alias!r}"
                )
        if ours:
            raise UsageError("this is this burner's own invitation: hand it to the other side to accept")

    def _undo_acceptance(
        self, contact: Contact, previous: Contact | None, previous_alert: bytes | None
    ) -> None:
        """Take back an acceptance the inviter's relay refused: someone else accepted first.

        The contact goes (or the re-paired one comes back as it was); the queue we made
        for it becomes an orphan, deleted from its relay by the next step. One event says
        what happened.
        """
        with self._vault.transaction() as tx:
            tx.put("orphan", contact.queue.recipient_id, orphan_bytes(contact.queue_relay, contact.queue))
            if previous is None:
                tx.delete("contact", contact.contact_id)
                clear_alerts(tx, contact.contact_id)
            else:
                tx.put("contact", previous.contact_id, previous.to_bytes())
                tx.delete("orphan", previous.queue.recipient_id)
                if previous_alert is None:
                    tx.delete("alert", previous.contact_id)
                else:
                    tx.put("alert", previous.contact_id, previous_alert)
            record_event(
                tx,
                self._rng,
                b"",
                EventKind.INVITATION_USED,
                "an invitation we accepted was already used by someone else: it may have been intercepted",
                self.now(),
            )

    # -- pairing by short code ---------------------------------------------------------------------

    async def pair_offer(
        self,
        alias: str | None,
        on_code: Callable[[str], None],
        *,
        timeout: float = 600.0,
        words: int = _CODE_WORDS,
        relay_url: str | None = None,
        insecure: bool = False,
    ) -> ContactView:
        """Pair by a short code we show: wait for the peer to type it, then for its acceptance.

        The code's mailbox is on ``relay_url`` (the burner's relay by default; the peer then
        joins with ``--relay`` too); the invitation's queue is on the burner's relay either way.

        The invitation travels inside the code-authenticated channel, so the contact
        starts verified, but only if that exchange finished with both confirmations: until
        then the invitation is an unverified one, and a pairing that fails leaves none.

        Raises:
            ValueError: ``words`` is not 2 or 3.
            PairingCodeError: the peer typed a different code (it is now destroyed).
            PairingTimeoutError: nobody came in time.
            PairingAttackError: it stopped after our confirmation was sent: maybe a guesser.
            RelayError: our relay failed.
        """
        # Imported here: it loads spake2, a tenth of a second of every burner command's
        # start-up, which only pairing needs.
        from burnerkit.app import pairing

        if words not in pairing.CODE_WORD_COUNTS:
            raise ValueError("a code has 2 or 3 words")
        meet = relay_url or self.relay_url
        check_relay_url(meet, insecure=insecure)
        # The code's channel carries the invitation itself: no short link to leave on the relay.
        view = await self.invite(alias, verified=False, lifetime=max(int(timeout), 60), short=False)
        raw = decode_link(view.long_link)
        invite_id = Invitation.from_bytes(raw).invitation_id
        try:
            async with self._client(meet) as client:
                await pairing.offer(client, raw, rng=self._rng, on_code=on_code, timeout=timeout, words=words)
            self._mark_code_paired(invite_id)
            await self._drain(timeout=timeout, until_invite=invite_id)
            if self._vault.get("invite", invite_id) is not None:
                raise PairingTimeoutError("the peer took the code but its acceptance did not arrive in time")
        except BaseException:
            # A failed pairing leaves no invitation marked verified behind: it and its
            # queue go (the queue from its relay by a later run).
            self._withdraw_invite(invite_id)
            raise
        await self._drop_orphans()
        return self._view(find_contact(self._vault, view.alias))

    def _mark_code_paired(self, invite_id: bytes) -> None:
        """The code exchange finished, both confirmations verified: the invitation is verified.

        Only now: whoever held the invitation before (a guesser the relay let in that then
        went silent) must not get a verified contact. If another process on this vault
        already took the acceptance, that contact stays unverified: the safe side.
        """
        with self._vault.transaction() as tx:
            data = tx.get("invite", invite_id)
            if data is not None:
                tx.put("invite", invite_id, replace(Invite.from_bytes(data), verified=True).to_bytes())

    def _withdraw_invite(self, invite_id: bytes) -> None:
        with self._vault.transaction() as tx:
            data = tx.get("invite", invite_id)
            if data is not None:
                invite = Invite.from_bytes(data)
                tx.delete("invite", invite_id)
                tx.put("orphan", invite.queue.recipient_id, orphan_bytes(invite.queue_relay, invite.queue))
                _orphan_link_queue(tx, invite)

    async def pair_join(
        self,
        code: str,
        alias: str,
        *,
        relay_url: str | None = None,
        timeout: float = 600.0,
        insecure: bool = False,
    ) -> ContactView:
        """Pair by a short code the peer read out: fetch its invitation and accept it.

        The contact starts verified: :func:`pairing.join` returns only once the exchange
        finished with both confirmations verified.

        Raises:
            UsageError: the code is not of the form ``7-word-word`` or ``7-word-word-word``.
            PairingCodeError: the code is wrong (it is now destroyed).
            PairingTimeoutError: the other side did not come in time.
            PairingAttackError: it stopped after our confirmation was sent: maybe a guesser.
            RelayError: the relay failed.
        """
        self._check_alive()
        check_name(alias, "contact")
        url = relay_url or self.relay_url
        check_relay_url(url, insecure=insecure)
        from burnerkit.app import pairing  # imported here: see pair_offer

        async with self._client(url) as client:
            raw = await pairing.join(client, code, b"", rng=self._rng, timeout=timeout)
        return await self.accept(raw, alias, verified=True, insecure=insecure)

    # -- sending ------------------------------------------------------------------------------

    async def send(
        self, alias: str, text: str, *, timer: int | None = None, burn_on_read: bool | None = None
    ) -> SendReceipt:
        """Encrypt and send ``text`` to ``alias``.

        ``timer`` (seconds, 0 off) and ``burn_on_read`` set the conversation's
        disappearing policy from this message on.

        Raises:
            NotFoundError: no such contact.
            RelayRejectedError: the peer's queue is gone (they burned); the message is dropped.
            IdentityChangedError: the contact's identity key changed; verify it first.
            IdentityExpiredError: the burner has expired.
            UsageError: text too long, or a timer out of range.
        """
        self._check_alive()
        if timer is not None and timer and not MIN_TIMER <= timer <= MAX_TIMER:
            raise UsageError("a disappearing timer runs from 30s to 4w")
        now = self.now()
        with self._vault.transaction() as tx:
            contact = _living(find_contact(tx, alias))
            if contact.key_changed:
                raise IdentityChangedError(
                    f"{alias}'s identity key changed since you paired: compare safety codes "
                    f"('burner verify {alias}') and confirm with 'burner verify {alias} --code CODE'"
                )
            if timer is not None or burn_on_read is not None:
                contact = replace(
                    contact,
                    timer=contact.timer if timer is None else timer,
                    burn_on_read=contact.burn_on_read if burn_on_read is None else burn_on_read,
                )
            try:
                content = Text(text, contact.timer, contact.burn_on_read).encode()
            except ValueError as exc:
                raise UsageError(str(exc)) from exc
            if not contact.expiry_told and len(text.encode()) <= MAX_TEXT_SIZE - 8:
                # Our expiry rides on our first Text to them (a Hello told it if we accepted, §17.7).
                content = Text(
                    text, contact.timer, contact.burn_on_read, self._profile(tx).expires_at
                ).encode()
                contact = replace(contact, expiry_told=True)
            session = Session.from_bytes(contact.session, rng=self._rng)
            seq = session.next_seq
            envelope = session.send(content, now=now)
            message = StoredMessage(
                message_id=self._rng.random_bytes(8),
                contact_id=contact.contact_id,
                outgoing=True,
                seq=seq,
                sent_at=int(now * 1000),
                received_at=int(now),
                # A burn-on-read message is not kept on our side either.
                text="" if contact.burn_on_read else text,
                expires_at=int(now) + contact.timer if contact.timer else 0,
                burn_on_read=contact.burn_on_read,
            )
            entry = OutboxEntry(
                self._rng.random_bytes(_SEND_ID_SIZE),
                contact.contact_id,
                contact.peer,
                envelope,
                int(now * 1000),
                message.key,
            )
            tx.put("contact", contact.contact_id, replace(contact, session=session.to_bytes()).to_bytes())
            tx.put("message", message.key, message.to_bytes())
            tx.put("outbox", entry.send_id, entry.to_bytes())
        await self.flush_outbox()
        status = self._outcomes.get(entry.send_id, "queued")
        if status == "refused":
            raise RelayRejectedError(
                ErrorCode.AUTH,
                f"{alias}'s relay no longer has their queue (they may have burned their burner)",
            )
        why = self._unreachable.get(contact.peer.relay_url, "") if status == "queued" else ""
        return SendReceipt(alias, seq, status, why)

    async def flush_outbox(self) -> list[str]:
        """Send whatever waits in the outbox, oldest first; returns relays that stayed unreachable.

        One flush at a time per vault, across processes too (an ``inbox --follow`` and a
        ``send`` share the outbox): a second waits for the first and then sends only what
        is still there, so no entry goes out twice at once. The relay's idempotency key
        still covers a resend after a crash.
        """
        async with self._flush_lock():
            return await self._flush_outbox()

    @contextlib.asynccontextmanager
    async def _flush_lock(self) -> AsyncIterator[None]:
        async with self._flush_mutex:
            lock = self._vault.exclusive()
            try:
                while not lock.try_acquire():
                    await asyncio.sleep(_LOCK_POLL)
                yield
            finally:
                lock.release()

    async def _flush_outbox(self) -> list[str]:
        entries = sorted(
            (OutboxEntry.from_bytes(data) for _, data in self._vault.items("outbox")),
            key=lambda e: e.created_at,
        )
        keys = {c.contact_id: c.sender_key for c in all_contacts(self._vault)}
        # One connection per contact per relay: a SEND names the contact's queue (§14.13a).
        by_link: dict[tuple[str, bytes], list[OutboxEntry]] = {}
        for entry in entries:
            by_link.setdefault((entry.peer.relay_url, entry.contact_id), []).append(entry)
        failed: list[str] = []

        async def one_link(url: str, party: bytes, batch: list[OutboxEntry]) -> None:
            try:
                async with self._client(url, party) as client:
                    for entry in batch:
                        seed = keys.get(entry.contact_id, b"")
                        try:
                            await client.send(
                                entry.peer.sender_id,
                                entry.envelope,
                                send_id=entry.send_id,
                                sender_key=SigningKey.from_bytes(seed) if seed else None,
                            )
                        except RelayRejectedError as exc:
                            if exc.code == ErrorCode.QUOTA:
                                continue  # their queue is full: try again later
                            # AUTH: their queue is gone (burned), or locked to someone
                            # else (our acceptance came second); LARGE cannot happen.
                            self._sent(entry, delivered=False, dropped=f"relay refused ({exc.code})")
                            continue
                        self._sent(entry, delivered=True)
            except RelayError as exc:
                if url not in failed:
                    failed.append(url)
                self._unreachable[url] = _unreachable_text(url, exc)

        await asyncio.gather(*(one_link(url, party, batch) for (url, party), batch in by_link.items()))
        return failed

    def _sent(self, entry: OutboxEntry, *, delivered: bool, dropped: str = "") -> None:
        self._outcomes[entry.send_id] = "delivered" if delivered else "refused"
        with self._vault.transaction() as tx:
            tx.delete("outbox", entry.send_id)
            data = tx.get("message", entry.message_key) if entry.message_key else None
            if data is not None:
                message = StoredMessage.from_bytes(data)
                if message.burn_on_read and delivered:
                    tx.delete("message", entry.message_key)
                else:
                    tx.put("message", entry.message_key, replace(message, delivered=delivered).to_bytes())
            if dropped and not entry.message_key and envelope_type(entry.envelope) is EnvelopeType.ACCEPT:
                # Our acceptance itself was refused: the inviter's queue is locked to
                # whoever accepted first (or gone). The contact will never hear from us.
                record_event(
                    tx,
                    self._rng,
                    entry.contact_id,
                    EventKind.INVITATION_USED,
                    "our acceptance was refused: the invitation was already used (intercepted?) or "
                    "withdrawn; ask for a new one",
                    self.now(),
                )
            elif dropped:
                record_event(
                    tx,
                    self._rng,
                    entry.contact_id,
                    EventKind.UNDELIVERABLE,
                    f"not delivered: {dropped}",
                    self.now(),
                )

    # -- receiving ----------------------------------------------------------------------------

    async def receive(self, *, wait: float = 0.0, idle: float = DEFAULT_IDLE) -> InboxResult:
        """Fetch, decrypt, store and acknowledge everything waiting on our queues.

        Listens up to ``wait`` seconds for a first delivery, then until the relays have
        been quiet for ``idle`` seconds. Returns the messages not shown before (each is
        shown once: they are marked shown, burn-on-read ones deleted), the anomalies
        noticed, relays that could not be reached, and contacts made by acceptances of
        our invitations.

        Raises:
            IdentityExpiredError: the burner has expired.
            RelayError: every relay was unreachable.
        """
        self._check_alive()
        await self._finish_moves()
        known_contacts = {c.alias for c in all_contacts(self._vault)}
        seen_events = {key for key, _ in self._vault.items("event")}
        queued = {key for key, _ in self._vault.items("outbox")}
        retired = self._retired()
        # The outbox goes out while we listen: a peer's relay that is down must not delay
        # what our own relays hold for us.
        flushed, drained = await asyncio.gather(self.flush_outbox(), self._drain(timeout=wait, idle=idle))
        await self._obey_order()
        unreachable = flushed + drained
        if any(key not in queued for key, _ in self._vault.items("outbox")):
            # A delivery queued an answer (a relay move's MoveDone): it goes out now.
            unreachable += await self.flush_outbox()
        # A queue retired before this drain, on a relay it reached, has given us all its
        # contact sent to it before switching: only such a queue may be deleted now.
        await self._drop_orphans(retired={key for key, url in retired.items() if url not in drained})
        with self._vault.transaction() as tx:  # after the drain: what it brought may end a silence
            checkin.record_silences(tx, self._rng, self.now())
        return self._news(seen_events, known_contacts, unreachable)

    def _retired(self) -> dict[bytes, str]:
        """The queues a relay move retired (their contact may still have sent to them), by key."""
        out: dict[bytes, str] = {}
        for key, data in self._vault.items("orphan"):
            orphan = Orphan.from_bytes(data)
            if orphan.contact_id:
                out[key] = orphan.relay_url
        return out

    def _owners(self) -> dict[bytes, QueueOwner]:
        out = owners(all_contacts(self._vault), self._vault.items("invite"), self._vault.items("orphan"))
        issuer = load_record(self._vault.get)
        if issuer is not None:  # the order queue (§17.9): subscribed, and burned, as the others
            out[issuer.queue.recipient_id] = QueueOwner(
                "order", issuer.order_id, issuer.relay_url, issuer.queue
            )
        return out

    async def follow(self, on_result: Callable[[InboxResult], None]) -> None:
        """Receive until cancelled, handing each delivery's news to ``on_result``.

        Each delivery is stored and acknowledged as it arrives; ``on_result`` gets what it
        added: new messages (each shown once), new contacts and anomalies.

        Raises:
            IdentityExpiredError: the burner has expired.
            RelayError: every relay was unreachable at the start (later outages are
                ridden out by the relay clients' reconnects).
        """
        self._check_alive()
        await self._finish_moves()
        await self.flush_outbox()
        seen_events = {key for key, _ in self._vault.items("event")}
        known_contacts = {c.alias for c in all_contacts(self._vault)}
        queued = {key for key, _ in self._vault.items("outbox")}
        flushes: set[asyncio.Task[list[str]]] = set()

        def report() -> None:
            fresh = {key for key, _ in self._vault.items("outbox")} - queued
            if fresh:
                # A delivery queued an answer (a relay move's MoveDone): send it now.
                queued.update(fresh)
                task = asyncio.get_running_loop().create_task(self.flush_outbox())
                flushes.add(task)
                task.add_done_callback(flushes.discard)
            news = self._news(seen_events, known_contacts, [])
            if news.messages or news.events or news.new_contacts:
                on_result(news)

        # A long session counts as being alive: it checks in and sends heartbeats (§17.8).
        keep_alive = asyncio.get_running_loop().create_task(self._keep_alive(report))
        try:
            await self._drain(timeout=0.0, on_delivery=report)
        finally:
            keep_alive.cancel()
            for task in list(flushes):
                task.cancel()
        await self._obey_order()

    async def _drain(
        self,
        *,
        timeout: float,
        idle: float = DEFAULT_IDLE,
        until_invite: bytes | None = None,
        on_delivery: Callable[[], None] | None = None,
    ) -> list[str]:
        """Subscribe to every queue and process deliveries; returns unreachable relays.

        Each owner's queues (a contact's, an invitation's) are subscribed on a connection
        of their own (:meth:`_party`, docs/protocol.md §14.13a). Without ``until_invite``:
        stop once the relays were quiet for ``idle`` seconds after the first delivery, or
        after ``timeout`` if nothing came. With it: stop as soon as that invitation has
        been accepted, or after ``timeout``. With ``on_delivery``: never stop by itself,
        call it after each delivery, and each quiet second subscribe to the queues made
        meanwhile (by an ``invite`` or a ``relay set`` in another process, say), on their
        owner's connection, opened for them if need be.
        """
        links: dict[tuple[str, bytes], list[QueueOwner]] = {}
        for owner in self._owners().values():
            links.setdefault((owner.relay_url, self._party(owner)), []).append(owner)
        if on_delivery is not None and all(url != self.relay_url for url, _ in links):
            # A face's status line shows our relay's link even before any queue is there.
            links[(self.relay_url, b"")] = []
        urls = {url for url, _ in links}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        got_first = asyncio.Event()
        done = asyncio.Event()
        failed: list[str] = []
        #: Every queue subscribed, on whichever connection: an invitation's queue that
        #: became a contact's stays on the invitation's connection (subscribing it on
        #: another would end the first subscription, which reads as a clone, §17.5).
        held: dict[bytes, QueueOwner] = {}

        def finished() -> bool:
            if until_invite is None:
                return self._burn_ordered  # a pairing leaves the order on the relay for the next receive
            return self._vault.get("invite", until_invite) is None

        async def subscribe(client: RelayClient, owners: list[QueueOwner]) -> None:
            # Marked held before the first await, so no other connection takes them meanwhile.
            for owner in owners:
                held[owner.creds.recipient_id] = owner
            for owner in owners:
                with contextlib.suppress(RelayRejectedError):  # AUTH: the queue is gone
                    await client.subscribe(owner.creds)

        def unheld(url: str, party: bytes) -> list[QueueOwner]:
            return [
                o
                for o in self._owners().values()
                if o.relay_url == url and self._party(o) == party and o.creds.recipient_id not in held
            ]

        async def one_link(url: str, party: bytes, owners: list[QueueOwner]) -> None:
            try:
                async with self._client(url, party) as client:
                    await subscribe(client, owners)
                    while not done.is_set():
                        remaining = deadline - loop.time()
                        if on_delivery is not None:
                            limit = 1.0
                        elif until_invite is not None:
                            if remaining <= 0:
                                return
                            limit = min(remaining, 0.25)
                        elif got_first.is_set() or remaining <= 0:
                            limit = idle
                        else:
                            limit = min(remaining, 0.25)
                        try:
                            event = await client.next_delivery(timeout=limit)
                        except RelayTimeoutError:
                            if on_delivery is not None:
                                await subscribe(client, unheld(url, party))
                                continue
                            if until_invite is None and (got_first.is_set() or loop.time() >= deadline):
                                return
                            continue
                        owner = held.get(event.recipient_id)
                        if owner is not None:
                            await self._handle(client, owner, event)
                        got_first.set()
                        if on_delivery is not None:
                            on_delivery()
                        if finished():
                            done.set()
            except RelayError as exc:
                if url not in failed:
                    failed.append(url)
                causes[url] = exc
                self._unreachable[url] = _unreachable_text(url, exc)

        causes: dict[str, RelayError] = {}
        if on_delivery is None:
            await asyncio.gather(*(one_link(url, party, owners) for (url, party), owners in links.items()))
        else:
            await self._follow_links(links, one_link, unheld)
        if urls and set(failed) == urls and until_invite is None:
            _raise_unreachable(causes)
        return failed

    async def _follow_links(
        self,
        links: dict[tuple[str, bytes], list[QueueOwner]],
        one_link: Callable[[str, bytes, list[QueueOwner]], Coroutine[None, None, None]],
        unheld: Callable[[str, bytes], list[QueueOwner]],
    ) -> None:
        """Run ``one_link`` for each connection, and each second for an owner we have queues of since.

        A new contact, or a ``relay set`` in another process while we follow, gives us
        queues of an owner (or on a relay) we were not listening to: without this, what
        they send would wait until the next start. Returns once every connection's loop has
        ended (each relay unreachable); cancelled, it cancels them all.
        """
        tasks = {key: asyncio.create_task(one_link(*key, owners)) for key, owners in links.items()}
        try:
            while not all(task.done() for task in tasks.values()):
                await asyncio.wait(tasks.values(), timeout=_FOLLOW_NEW_RELAYS)
                for task in tasks.values():
                    error = task.exception() if task.done() and not task.cancelled() else None
                    if error is not None:
                        raise error  # a bug, not an outage: those end in `failed`
                owners = self._owners().values()
                for key in {(o.relay_url, self._party(o)) for o in owners} - tasks.keys():
                    fresh = unheld(*key)
                    if fresh:
                        tasks[key] = asyncio.create_task(one_link(*key, fresh))
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def _handle(self, client: RelayClient, owner: QueueOwner, event: RelayEvent) -> None:
        """Store what one relay event means, then acknowledge it (never before the commit).

        ``owner`` is who owned the queue when we subscribed; who owns it now (an
        acceptance may have turned an invitation's queue into a contact's) is looked up
        inside the transaction that stores the delivery.
        """
        if isinstance(event, SubscriptionEnded):
            detail = (
                "another device subscribed to our queue: this burner's keys may be cloned"
                if event.code is None
                else f"the relay ended the subscription ({event.code})"
            )
            with self._vault.transaction() as tx:
                now_owner = owner_of(tx, event.recipient_id)
                contact_id = now_owner.key if now_owner is not None and now_owner.kind == "contact" else b""
                record_event(tx, self._rng, contact_id, EventKind.DISPLACED, detail, self.now())
            return
        now = self.now()
        if isinstance(event, ReceivedMessage) and owner.kind == "order":
            with self._vault.transaction() as tx:
                ordered = take_order(
                    tx, self._rng, event.body, now, msg_id=event.msg_id, sender_refused=event.sender_refused
                )
            if ordered:
                # Not acknowledged: the burn deletes it with the queue, and a burn cut short
                # before its first step meets it again (§17.9.4).
                self._burn_ordered = True
                return
        elif isinstance(event, ReceivedMessage):
            with self._vault.transaction() as tx:
                process_delivery(
                    tx,
                    self._rng,
                    event.recipient_id,
                    event.body,
                    now,
                    msg_id=event.msg_id,
                    sender_refused=event.sender_refused,
                )
        else:  # the relay's queue layer did not open
            with self._vault.transaction() as tx:
                now_owner = owner_of(tx, event.recipient_id)
                contact_id = now_owner.key if now_owner is not None and now_owner.kind == "contact" else b""
                record_event(
                    tx,
                    self._rng,
                    contact_id,
                    EventKind.UNREADABLE_DELIVERY,
                    "a delivery's relay layer did not open",
                    now,
                )
        # Only now, with what it means committed, may the relay delete the message.
        await client.ack(owner.creds, event.msg_id)

    async def _drop_orphans(self, *, retired: set[bytes] | None = None) -> None:
        """Delete the relay queues of contacts that were re-paired (best effort).

        A queue whose relay is unreachable stays listed and is tried again by the next
        run, or by the burn. A queue a relay move retired is deleted only if its key is in
        ``retired``: :meth:`receive` names those it drained after they were retired.
        """
        keep = set(self._retired()) - (retired or set())
        now = self.now()
        orphans = [
            orphan_owner(data)
            for key, data in self._vault.items("orphan")
            if key not in keep and Orphan.from_bytes(data).keep_until <= now
        ]
        if not orphans:
            return
        deleted = await delete_queues(self._client, orphans)
        with self._vault.transaction() as tx:
            for owner in deleted:
                tx.delete("orphan", owner.key)
                tx.delete("delivery", owner.creds.recipient_id)

    # -- moving to another relay ---------------------------------------------------------------

    async def relay_set(self, url: str, *, insecure: bool = False) -> list[RelayMove]:
        """Move this burner to the relay at ``url``: its new queues go there from now on.

        Each contact gets a next queue on ``url`` and a Move in its session naming it
        (sent now, or by a later run if their relay is unreachable); we keep receiving on
        the old queue until the contact's first message on the next one (its MoveDone)
        confirms the move, and a later run deletes the old queue. Open invitations stay
        on the old relay until accepted or expired; the contacts they make move next.
        Killed at any point, running it again (or the next inbox) finishes the move.

        Args:
            url: the new relay's URL, perhaps pinned (docs/protocol.md §14.13).
            insecure: allow ``ws://`` to a host other than this machine.

        Returns:
            Each contact and where its move stands.

        Raises:
            UsageError: a bad relay URL.
            IdentityExpiredError: the burner has expired.
            RelayError: the relay at ``url`` is unreachable (nothing changed).
        """
        self._check_alive()
        # Before anything changes: a relay we cannot reach must not become our relay.
        await self.check_relay(
            url, insecure=insecure, timeout=self._relay_timeout, connect_timeout=self._connect_timeout
        )
        if self.relay_url != url or _needing_move(self._vault, url):
            # Also on a re-run: contacts a killed or half-failed run left without a next queue.
            await self._prepare_moves(url, switch_profile=True)
        await self.flush_outbox()
        return self._move_states()

    async def _finish_moves(self) -> None:
        """Give each contact not yet on our relay a next queue there (an interrupted move)."""
        url = self.relay_url
        if _needing_move(self._vault, url):
            with contextlib.suppress(RelayError):  # tried again by the next run
                await self._prepare_moves(url, switch_profile=False)

    async def _prepare_moves(self, url: str, *, switch_profile: bool) -> None:
        """Make a next queue on ``url`` for each contact that needs one, then announce them.

        One transaction stores the queues, a Move for each in the outbox, and (with
        ``switch_profile``) ``url`` as the burner's relay.

        Raises:
            RelayError: ``url`` made no queue at all (nothing changed).
        """
        made: list[tuple[bytes, QueueCredentials]] = []
        needing = _needing_move(self._vault, url)
        errors: list[RelayError] = []

        async def one_contact(contact: Contact) -> None:
            # Each contact's next queue is made on the contact's own connection (§14.13a).
            try:
                async with self._client(url, contact.contact_id) as client:
                    made.append((contact.contact_id, await client.create_queue(sender_secured=True)))
            except RelayError as exc:
                errors.append(exc)

        await asyncio.gather(*(one_contact(contact) for contact in needing))
        if errors and not made:
            raise errors[0]
        # A relay lost half way: what it made is kept (the rest waits for a re-run).
        now = self.now()
        with self._vault.transaction() as tx:
            if switch_profile:
                tx.put("profile", _PROFILE_KEY, replace(self._profile(tx), relay_url=url).to_bytes())
            # Re-read: another process may have removed or moved a contact meanwhile.
            still = {c.contact_id: c for c in _needing_move(tx, url)}
            for contact_id, creds in made:
                current = still.get(contact_id)
                if current is None:
                    tx.put("orphan", creds.recipient_id, orphan_bytes(url, creds))
                else:
                    self._announce_move(tx, current, url, creds, now)

    def _announce_move(
        self, tx: VaultTransaction, contact: Contact, url: str, creds: QueueCredentials, now: float
    ) -> None:
        """Store ``creds`` as the contact's next queue and a Move naming it in the outbox."""
        if contact.next_queue is not None:
            # A move to a third relay overtakes one not yet confirmed: the contact may
            # already send to that queue, so it is retired as its old queue would be.
            tx.put(
                "orphan",
                contact.next_queue.recipient_id,
                orphan_bytes(contact.next_queue_relay, contact.next_queue, contact.contact_id),
            )
        session = Session.from_bytes(contact.session, rng=self._rng)
        envelope = session.send(Move(QueueAddress(url, creds.sender_id)).encode(), now=now)
        entry = OutboxEntry(
            self._rng.random_bytes(_SEND_ID_SIZE),
            contact.contact_id,
            contact.peer,
            envelope,
            int(now * 1000),
            b"",
        )
        contact = replace(contact, session=session.to_bytes(), next_queue_relay=url, next_queue=creds)
        tx.put("contact", contact.contact_id, contact.to_bytes())
        tx.put("outbox", entry.send_id, entry.to_bytes())

    def _move_states(self) -> list[RelayMove]:
        """Where each contact's move to our relay stands, by alias."""
        url = self.relay_url
        waiting = {OutboxEntry.from_bytes(data).contact_id for _, data in self._vault.items("outbox")}
        out = []
        for contact in all_contacts(self._vault):
            if contact.next_queue is None:
                state = "moved" if contact.queue_relay == url else "waiting"
            else:
                state = "queued" if contact.contact_id in waiting else "pending"
            out.append(RelayMove(contact.alias, state))
        return sorted(out, key=lambda move: move.alias)

    # -- burning ------------------------------------------------------------------------------

    async def burn(self, *, erase_conversations: bool = False) -> BurnReport:
        """Burn this burner: journal, key, notices, queues, files (docs/protocol.md §17.7).

        Every contact gets a burn notice signed by our identity for it (with
        ``erase_conversations``, asking it to delete the conversation); every relay queue we
        own is deleted; the vault's key is destroyed before either, and its files after.
        Killed at any step, the next start with the passphrase finishes it. Relays that
        cannot be reached are counted, not retried: the key is gone either way, and without
        it nobody can read or link what they hold. The messenger is unusable afterwards.
        """
        decoy = duress.decoy_of(self._vault)
        journal = burning.prepare_journal(
            self._vault,
            self.name,
            self._owned_queues(),
            erase=erase_conversations,
            now=self.now(),
            rng=self._rng,
        )
        mark_burning(self._directory, self._rng, self._vault.seal_burn_journal(journal.padded()))
        # In a hurry: no jitter between its connections (§17.7 says what the relay learns).
        self.connections.policy = dataclasses.replace(self.connections.policy, jitter=0.0)
        # A face watching our links would read the vault, which is about to close for good.
        self._link_watcher = None
        burning.checkpoint("journal")
        self.gone = True
        self._vault.destroy_key()
        if decoy is not None:  # a decoy left alone would still unlock under the burner's name
            duress.shred_decoy(self.home, decoy)
        sent, unsent, deleted, failed = await burning.carry_out(
            journal, self.home, self._directory, self._client
        )
        return BurnReport(self.name, deleted, failed, sent, unsent)

    def arm_duress(self, duress_passphrase: str, alert: list[str] | None = None) -> None:
        """Arm (or re-arm) the duress passphrase: mint a decoy of this burner (§17.11).

        Each contact of ``alert`` (aliases) gets a one-time alert key in the outbox
        (:meth:`flush_outbox` sends it), and the decoy what it needs to alert it.

        Raises:
            UsageError: the duress passphrase is this burner's own; a contact that cannot
                be alerted.
            NotFoundError: no contact of that name.
            VaultError: the decoy could not be written.
        """
        contacts = tuple(find_contact(self._vault, alias) for alias in dict.fromkeys(alert or []))
        vault, rng, now = self._vault, self._rng, self.now()
        duress.arm(self.home, self._directory, vault, duress_passphrase, rng=rng, alert=contacts, now=now)

    def disarm_duress(self) -> bool:
        """Shred the decoy; False if duress was not armed (§17.11)."""
        return duress.disarm(self.home, self._vault)

    @property
    def duress_armed(self) -> bool:
        """Whether a duress passphrase is armed for this burner."""
        return duress.decoy_of(self._vault) is not None

    def duress_alerts(self) -> tuple[list[str], list[str]]:
        """The contacts a duress unlock alerts, and those its kit no longer reaches (§17.11)."""
        return duress.stale_alerts(self._vault)

    async def _obey_order(self) -> None:
        """Burn, if a valid burn order arrived during the last receive (§17.9.4).

        Raises:
            BurnOrderedError: the burner is burned; the messenger is unusable.
        """
        if not self._burn_ordered:
            return
        report = await self.burn()
        raise BurnOrderedError(
            f"burner {report.name!r} was burned by its issuer's order: vault shredded, "
            f"{report.queues_deleted} relay queue(s) deleted"
            + (f", {report.queues_failed} unreachable" if report.queues_failed else "")
        )

    # -- the issuer (docs/protocol.md §17.9) --------------------------------------------------

    def cross_border(self) -> None:
        """Seal the vault key to the issuer and destroy it here (border mode, docs/protocol.md §17.12).

        The messenger is unusable afterwards; 'burner border return' brings the burner back.

        Raises:
            UsageError: the burner carries no issuer key to hold its key (nothing changed).
        """
        self._check_alive()
        self._link_watcher = None
        border.cross(self._vault, self._directory, self.name, self._rng)

    async def cross_border_to(self, alias: str) -> None:
        """Leave the vault key with contact ``alias`` and destroy it here (border mode, §17.12).

        The key goes in a message of content 0x09 sent straight to the contact's relay, not
        through the outbox: the crossing goes on only once the relay took it, and an entry
        left behind would send the key later to a burner that never crossed. The session
        is advanced and saved first (never two messages under one key); a refusal then
        costs one message number, which the contact may note as a gap.

        Raises:
            NotFoundError: no such contact.
            ContactBurnedError, IdentityChangedError: not a contact to trust with the key.
            RelayError: the relay did not take the key (nothing else changed: not crossed).
        """
        self._check_alive()
        await self.flush_outbox()  # what waits for the contact goes first, in order
        with self._vault.transaction() as tx:
            contact = _living(find_contact(tx, alias))
            if contact.key_changed:
                raise IdentityChangedError(
                    f"{alias}'s identity key changed since you paired: verify it before leaving "
                    f"your key with them ('burner verify {alias}')"
                )
            # A write now takes the once-per-unlock key rotation (§15.11), so the key read
            # next is the one the records stay sealed under until the crossing.
            tx.put("contact", contact.contact_id, contact.to_bytes())
        vault_key = self._vault.border_key()
        escrow_id = self._rng.random_bytes(border.ESCROW_ID_SIZE)
        with self._vault.transaction() as tx:
            contact = find_contact(tx, alias)
            session = Session.from_bytes(contact.session, rng=self._rng)
            envelope = session.send(Escrow(escrow_id, vault_key).encode(), now=self.now())
            tx.put("contact", contact.contact_id, replace(contact, session=session.to_bytes()).to_bytes())
        peer = contact.peer
        try:
            async with self._client(peer.relay_url, contact.contact_id) as client:
                await client.send(
                    peer.sender_id,
                    envelope,
                    send_id=self._rng.random_bytes(_SEND_ID_SIZE),
                    sender_key=SigningKey.from_bytes(contact.sender_key) if contact.sender_key else None,
                )
        except RelayError as exc:
            raise RelayError(
                f"{alias}'s relay did not take your key ({exc}): you have not crossed and nothing "
                "else changed; try again where the relay can be reached"
            ) from exc
        self._link_watcher = None
        border.cross_to_contact(self._vault, self._directory, self.name, escrow_id, vault_key)

    def release_border_key(self, alias: str, request: border.ReturnRequest, code: str) -> str:
        """The release of the key ``alias`` left with us, for its return ``request`` (§17.12.3).

        Raises:
            NotFoundError: no such contact.
            BorderReleaseError: we hold no key from ``alias`` for this request, or the code
                does not match (nothing is released).
        """
        contact = find_contact(self._vault, alias)
        return border.contact_release(self._vault.get, contact.contact_id, alias, request, code, self._rng)

    async def carry_issuer(self, issuer: IssuerPublicKey) -> OrderAddress:
        """Carry ``issuer``'s key from now on: make the order queue on our relay, return its address.

        Burn orders signed by ``issuer`` and sent to the address burn this burner
        (:func:`burnerkit.app.issuer.judge`); :meth:`seal_report` seals to it.

        Raises:
            AlreadyExistsError: the burner carries an issuer key already.
            IdentityExpiredError: the burner has expired.
            RelayError: our relay could not make the queue (nothing changed).
        """
        self._check_alive()
        if self._vault.get(ISSUER_KIND, ISSUER_KEY) is not None:
            raise AlreadyExistsError(f"burner {self.name!r} carries an issuer key already")
        relay_url = self.relay_url
        async with self._client(relay_url) as client:
            record = await _open_order_queue(client, relay_url, issuer, self._rng)
        with self._vault.transaction() as tx:
            tx.put(ISSUER_KIND, ISSUER_KEY, record.to_bytes())
        return record.address()

    def order_address(self) -> OrderAddress | None:
        """The order address of this burner's issuer, if it carries one."""
        record = load_record(self._vault.get)
        return None if record is None else record.address()

    def seal_report(self) -> bytes:
        """The debrief so far (:meth:`debrief`, never content) as a report sealed to the issuer.

        Raises:
            UsageError: the burner carries no issuer key.
        """
        record = load_record(self._vault.get)
        if record is None:
            raise UsageError(
                f"burner {self.name!r} carries no issuer key: there is nobody to seal a report to"
            )
        return _seal_report(record.issuer, self.debrief().to_json(), self._rng)

    def _owned_queues(self) -> list[QueueOwner]:
        """Every queue this burner owns on a relay: contacts', invitations', orphans', links'."""
        owned = self._owners()
        out = list(owned.values()) + [
            orphan_owner(data) for key, data in self._vault.items("orphan") if key not in owned
        ]
        # A short link's queue is no receive queue (nothing subscribes to it): listed apart.
        out += [
            QueueOwner("link", invite.link_queue.recipient_id, invite.queue_relay, invite.link_queue)
            for invite in (Invite.from_bytes(data) for _, data in self._vault.items("invite"))
            if invite.link_queue is not None
        ]
        return out

    # -- for the chat view -------------------------------------------------------------------
    # What `burner chat` (burnerkit.tui) reads beyond the methods above, and its one setting.

    #: Told (relay url, up) when one of our relay connections comes up or is lost.
    _link_watcher: Callable[[str, bool], None] | None = None

    def watch_links(self, watcher: Callable[[str, bool], None] | None) -> None:
        """Tell ``watcher`` (relay url, up) whenever a relay connection comes up or is lost.

        The receive loop's connections reconnect by themselves; this is how a face learns
        that they had to (a status line). None stops it.
        """
        self._link_watcher = watcher

    def outbox_size(self) -> int:
        """How many sealed messages wait in the outbox for their relay."""
        return len(self._vault.items("outbox"))

    def set_disappearing(self, alias: str, timer: int, burn_on_read: bool) -> ContactView:
        """Set ``alias``'s disappearing policy for our messages from the next one on.

        ``timer`` in seconds (0: off); the policy travels with each message, as
        ``send(timer=..., burn_on_read=...)`` sets it.

        Raises:
            NotFoundError: no such contact.
            UsageError: a timer out of range.
        """
        if timer and not MIN_TIMER <= timer <= MAX_TIMER:
            raise UsageError("a disappearing timer runs from 30s to 4w")
        with self._vault.transaction() as tx:
            contact = replace(find_contact(tx, alias), timer=timer, burn_on_read=burn_on_read)
            tx.put("contact", contact.contact_id, contact.to_bytes())
        return self._view(contact)

    def forget_expired(self) -> None:
        """Delete the disappearing messages past their time now (opening does it too)."""
        self._purge_expired()


def finish_burn(home: Home, directory: Path) -> None:
    """Shred what is left of a burner's directory (no passphrase needed) and remove it.

    The marker goes last, after the vault's files, so a crash before it leaves a burn
    that the next start finishes; then the directory goes, and the home too if that was
    its last burner (docs/protocol.md §15.1).
    """
    Vault.shred(directory)
    clear_burning(directory)
    with contextlib.suppress(OSError):
        directory.rmdir()
    home.remove_if_empty()


def _open_journal(directory: Path, passphrase: str) -> burning.BurnJournal | None:
    """The journal of the burn in progress in ``directory``, if the passphrase opens it."""
    marker = burn_marker(directory)
    if marker is None:
        return None
    try:
        with marker.open("rb") as f:
            sealed = f.read(burning.MAX_JOURNAL_SIZE)
    except OSError:
        return None
    if not sealed:
        return None
    try:
        return burning.BurnJournal.from_padded(open_burn_journal(sealed, passphrase))
    except (VaultLockedError, RemoteProtocolError):
        return None


def _held_name(vault: Vault, legacy: str | None) -> str | None:
    """The name of the burner in ``vault``: its old directory's, else its profile's (None: no profile yet)."""
    if legacy is not None:
        return legacy
    data = vault.get("profile", _PROFILE_KEY)
    return None if data is None else Profile.from_bytes(data).name


def _orphan_link_queue(tx: VaultTransaction, invite: Invite) -> None:
    """Keep the link queue of an invitation withdrawn or expired as an orphan: a later run deletes it."""
    if invite.link_queue is not None:
        tx.put("orphan", invite.link_queue.recipient_id, orphan_bytes(invite.queue_relay, invite.link_queue))


def _delivery_status(message: StoredMessage, waiting: set[bytes]) -> str:
    if not message.outgoing:
        return ""
    if message.delivered:
        return "delivered"
    return "queued" if message.key in waiting else "refused"


def _contact_or_none(tx: VaultTransaction, alias: str) -> Contact | None:
    try:
        return find_contact(tx, alias)
    except NotFoundError:
        return None


def _living(contact: Contact) -> Contact:
    """``contact``, unless it burned.

    Raises:
        ContactBurnedError: it burned; nothing can be sent to it any more (§17.7).
    """
    if contact.burned:
        raise ContactBurnedError(
            f"{contact.alias} burned their burner: nothing can be sent to them any more "
            f"('burner contacts remove {contact.alias}' forgets them)"
        )
    return contact


def _needing_move(reader: RecordReader, url: str) -> list[Contact]:
    """The contacts whose queue is not on ``url`` and who have no next queue there."""
    return [
        c
        for c in all_contacts(reader)
        if not c.burned
        and (
            (c.next_queue is None and c.queue_relay != url)
            or (c.next_queue is not None and c.next_queue_relay != url)
        )
    ]


def _check_peer_relay(raw: bytes, *, insecure: bool) -> None:
    """Refuse an invitation whose inviter receives on ``ws://`` off this machine, unless ``insecure``.

    A link is a URL from a person like any other: our acceptance, and every message
    after it, would go there. An invitation that does not parse is left to the
    acceptance, which says it is damaged.
    """
    try:
        peer = QueueAddress.from_bytes(Invitation.from_bytes(raw).reply_address)
    except RemoteProtocolError:
        return
    check_relay_url(peer.relay_url, insecure=insecure)


def _raise_unreachable(causes: dict[str, RelayError]) -> None:
    """Raise the error for relays that could not be reached, each with its URL and cause."""
    parts = [(url.partition("#")[0], _cause_of(causes[url])) for url in sorted(causes)]
    listed = "; ".join(f"{url} ({cause})" for url, cause in parts)
    first_url, first_cause = parts[0]
    message = f"relay unreachable: {listed}" if len(parts) == 1 else f"relays unreachable: {listed}"
    raise RelayUnavailableError(message, url=first_url, cause=first_cause)


def _unreachable_text(url: str, exc: RelayError) -> str:
    """``URL (cause)``: which relay could not be reached and why, without its pin."""
    return f"{url.partition('#')[0]} ({_cause_of(exc)})"


def _cause_of(exc: RelayError) -> str:
    if isinstance(exc, RelayUnavailableError) and exc.cause:
        return exc.cause
    return _cause_text(exc)


def _cause_text(exc: RelayError) -> str:
    if isinstance(exc, RelayTimeoutError):
        return "no answer in time"
    return str(exc)
