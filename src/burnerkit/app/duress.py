"""The duress passphrase: a decoy burner whose unlock destroys the real one (docs/protocol.md §17.11).

Theory of operation
-------------------
Arming duress (``burner duress NAME``, or ``burner new --duress``) mints a *decoy*: an
ordinary vault of its own in the home (a random directory id like any burner's, the same
name, relay and validity in its sealed profile, no contacts) sealed under the duress
passphrase, with the KDF parameters of the real vault. A duress unlock is therefore an
ordinary unlock of another vault: the same Argon2id derivations in the same random trial
order over the home's vaults (:meth:`~burnerkit.app.home.Home.trial_order`). The duress
passphrase never opens the real vault, so a copy of the files plus the duress passphrase
opens only the decoy.

The decoy holds a :class:`Guard` naming the directory of the burner it guards. Unlocking
it (:func:`after_unlock`) overwrites both key slots of that burner's ``vault.key`` in place
first, then deletes the guard, then lets the decoy open as any burner does. Nothing
is removed and no file appears: the real directory stays as it was, with a header that
opens nothing, as a header after a key rotation looks.

The real vault holds a :class:`Decoy` naming the decoy's directory and the header slot its
key is in. So that the two unlocks touch the same set of files, every unlock of the real
burner writes too (an exception to §15.11's read-only rule, for burners that armed
duress): it rewrites its ``Decoy`` record (a first write, so its key rotates) and
overwrites the decoy's spare key slot with random bytes in place, as a rotation's last
step does. A normal unlock then writes the real vault's three files and the decoy's
header; a duress unlock writes the decoy's three files and the real burner's header.

Alerts. Arming may name contacts to alert (``--alert ALIAS``). For each, the burner draws
a one-time alert key, sends it to the contact inside the session (content ``0x08``,
:class:`~burnerkit.app.content.DuressKey`; the contact keeps the newest one), and puts in
the decoy a :class:`KitEntry`: the contact's queue (relay, sender id, our sender key) and
that key. A duress unlock reads the kit and deletes it with the guard, after the real key
is gone, then sends each contact one body sealed under its key, padded as every envelope
(:func:`alert_body`), in the background (:func:`start_alerts`) so that the command shows
the decoy, and ends, when a normal unlock's would.
The contact, before its session sees a delivery, tries the key it holds for that contact
(:func:`take_alert`): a body that opens is a ``duress`` alert, once; the key is then spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hmac
import os
import re
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from burnerkit.app.connections import ConnectionPolicy, RelayConnections
from burnerkit.app.content import DURESS_KEY_SIZE, DuressKey
from burnerkit.app.home import Home
from burnerkit.app.records import (
    CONTACT_ID_SIZE,
    SENDER_KEY_SIZE,
    Contact,
    OutboxEntry,
    Profile,
    _Record,
    replace,
)
from burnerkit.crypto import aead
from burnerkit.crypto.kdf import LABEL_DURESS_ALERT
from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.rng import Random
from burnerkit.errors import (
    DecryptionError,
    NotFoundError,
    RelayError,
    UsageError,
    VaultError,
    VaultLockedError,
)
from burnerkit.protocol.session import Session
from burnerkit.relay.client import RelayClient
from burnerkit.relay.protocol import MAX_BODY_SIZE, QUEUE_ID_SIZE
from burnerkit.vault import Vault, VaultTransaction
from burnerkit.wire import Reader, Writer

__all__ = [
    "DURESS_KIND",
    "HELD_KEY_KIND",
    "MAX_ALERTED",
    "Decoy",
    "Guard",
    "HeldKey",
    "Kit",
    "KitEntry",
    "after_unlock",
    "alert_body",
    "arm",
    "decoy_of",
    "disarm",
    "join_alerts",
    "keep_key",
    "send_alerts",
    "shred_decoy",
    "stale_alerts",
    "start_alerts",
    "take_alert",
]

#: The vault kind of both records: :class:`Decoy` in the real vault, :class:`Guard` in the decoy.
DURESS_KIND: Final = "duress"
_DECOY_KEY: Final = b"decoy"
_GUARD_KEY: Final = b"guard"
_KIT_KEY: Final = b"kit"
#: The vault kind of the alert keys a contact holds for us, key: the contact id.
HELD_KEY_KIND: Final = "duress-key"
#: At most this many contacts are alerted.
MAX_ALERTED: Final = 16
_ALERT_PLAINTEXT_SIZE: Final = MAX_BODY_SIZE - aead.NONCE_SIZE - aead.TAG_SIZE
_PROFILE_KIND: Final = "profile"
_PROFILE_KEY: Final = b"burner"
#: A directory id is 26 characters of a-z 2-7 (app/home.py).
_ID_SIZE: Final = 26
_ID: Final = re.compile(r"[a-z2-7]{26}")


def _check_id(directory: str) -> None:
    if not _ID.fullmatch(directory):
        raise ValueError("a directory id is 26 characters of a-z 2-7")


@dataclass(frozen=True, slots=True)
class Decoy(_Record):
    """In the real vault: where its decoy is, and which contacts its kit alerts.

    ``slot`` is the header slot the decoy's key is in; ``alerted`` pairs each chosen
    contact's id with the sender id of its queue when the kit was made, so that a later
    move of that queue shows (:func:`stale_alerts`).
    """

    directory: str
    slot: int
    alerted: tuple[tuple[bytes, bytes], ...] = ()

    def __post_init__(self) -> None:
        _check_id(self.directory)
        if self.slot not in (0, 1):
            raise ValueError("a key slot is 0 or 1")
        if len(self.alerted) > MAX_ALERTED or any(
            len(cid) != CONTACT_ID_SIZE or len(sid) != QUEUE_ID_SIZE for cid, sid in self.alerted
        ):
            raise ValueError("at most 16 (contact id, sender id) pairs of 16 and 24 bytes")

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.directory.encode("ascii")).u8(self.slot).u8(len(self.alerted))
        for contact_id, sender_id in self.alerted:
            w.raw(contact_id).raw(sender_id)

    @classmethod
    def read(cls, r: Reader) -> Decoy:  # noqa: D102
        directory, slot, count = r.take(_ID_SIZE).decode("ascii"), r.u8(), r.u8()
        alerted = tuple((r.take(CONTACT_ID_SIZE), r.take(QUEUE_ID_SIZE)) for _ in range(count))
        return cls(directory, slot, alerted)


@dataclass(frozen=True, slots=True)
class Guard(_Record):
    """In the decoy: the directory of the burner whose key its unlock destroys."""

    directory: str

    def __post_init__(self) -> None:
        _check_id(self.directory)

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.directory.encode("ascii"))

    @classmethod
    def read(cls, r: Reader) -> Guard:  # noqa: D102
        return cls(r.take(_ID_SIZE).decode("ascii"))


@dataclass(frozen=True, slots=True)
class KitEntry:
    """What the decoy needs to alert one contact: its queue, our sender key, the alert key."""

    relay_url: str
    sender_id: bytes = field(repr=False)
    sender_key: bytes = field(repr=False)
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.sender_id) != QUEUE_ID_SIZE or len(self.sender_key) != SENDER_KEY_SIZE:
            raise ValueError("a queue's sender id is 24 bytes and a sender key 32")
        if len(self.key) != DURESS_KEY_SIZE or not self.relay_url:
            raise ValueError("an alert key is 32 bytes, and a relay URL is not empty")

    def __repr__(self) -> str:
        return f"KitEntry({self.relay_url!r})"


@dataclass(frozen=True, slots=True)
class Kit(_Record):
    """In the decoy: the alerts its unlock sends, one entry per chosen contact."""

    entries: tuple[KitEntry, ...]

    def __post_init__(self) -> None:
        if len(self.entries) > MAX_ALERTED:
            raise ValueError(f"at most {MAX_ALERTED} contacts are alerted")

    def write(self, w: Writer) -> None:  # noqa: D102
        w.u8(len(self.entries))
        for e in self.entries:
            w.var16(e.relay_url.encode("utf-8")).raw(e.sender_id).raw(e.sender_key).raw(e.key)

    @classmethod
    def read(cls, r: Reader) -> Kit:  # noqa: D102
        count = r.u8()
        return cls(
            tuple(
                KitEntry(
                    r.var16().decode("utf-8"),
                    r.take(QUEUE_ID_SIZE),
                    r.take(SENDER_KEY_SIZE),
                    r.take(DURESS_KEY_SIZE),
                )
                for _ in range(count)
            )
        )


@dataclass(frozen=True, slots=True)
class HeldKey(_Record):
    """At a contact: the newest alert key it sent us, and whether its alert came already."""

    key: bytes = field(repr=False)
    spent: bool = False

    def __post_init__(self) -> None:
        if len(self.key) != DURESS_KEY_SIZE:
            raise ValueError("an alert key is 32 bytes")

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.key).u8(self.spent)

    @classmethod
    def read(cls, r: Reader) -> HeldKey:  # noqa: D102
        key, spent = r.take(DURESS_KEY_SIZE), r.u8()
        if spent > 1:
            raise ValueError("spent is 0 or 1")
        return cls(key, bool(spent))


def decoy_of(vault: Vault | VaultTransaction) -> Decoy | None:
    """The real vault's :class:`Decoy`, if duress is armed."""
    data = vault.get(DURESS_KIND, _DECOY_KEY)
    return None if data is None else Decoy.from_bytes(data)


def arm(
    home: Home,
    directory: Path,
    vault: Vault,
    duress_passphrase: str,
    *,
    rng: Random,
    alert: tuple[Contact, ...] = (),
    now: float,
) -> Decoy:
    """Mint the decoy of the burner in ``directory`` (open as ``vault``), replacing any earlier one.

    The decoy copies the real profile (name, relay, creation, expiry, clock) and the real
    vault's KDF parameters, so the two cost the same to unlock. Each contact of ``alert``
    gets a fresh alert key, sealed in its session into the outbox (flush it after), and an
    entry in the decoy's kit.

    Raises:
        UsageError: the duress passphrase opens the real vault (it must differ); a contact
            to alert that is burned, has no sender key, or too many of them.
        VaultError: the decoy could not be written (the burner keeps its earlier decoy, if any).
    """
    if len(alert) > MAX_ALERTED:
        raise UsageError(f"at most {MAX_ALERTED} contacts can be alerted")
    for contact in alert:
        if contact.burned or not contact.sender_key:
            raise UsageError(f"{contact.alias} cannot be alerted: it burned, or was paired by an old version")
    with contextlib.suppress(VaultLockedError):
        Vault.open(directory, duress_passphrase).close()
        raise UsageError("the duress passphrase must differ from the burner's passphrase")
    data = vault.get(_PROFILE_KIND, _PROFILE_KEY)
    if data is None:
        raise NotFoundError("the burner has no profile (an unfinished mint)")
    profile = Profile.from_bytes(data)
    keys = {contact.contact_id: rng.random_bytes(DURESS_KEY_SIZE) for contact in alert}
    kit = Kit(
        tuple(KitEntry(c.peer.relay_url, c.peer.sender_id, c.sender_key, keys[c.contact_id]) for c in alert)
    )
    target = home.new_directory(rng)
    decoy_vault = Vault.create(target, duress_passphrase, rng=rng, kdf=vault.kdf)
    try:
        with decoy_vault.transaction() as tx:
            tx.put(_PROFILE_KIND, _PROFILE_KEY, profile.to_bytes())
            tx.put(DURESS_KIND, _GUARD_KEY, Guard(directory.name).to_bytes())
            if kit.entries:
                tx.put(DURESS_KIND, _KIT_KEY, kit.to_bytes())
        alerted = tuple((c.contact_id, c.peer.sender_id) for c in alert)
        decoy = Decoy(target.name, decoy_vault.key_slot, alerted)
    except BaseException:
        decoy_vault.destroy()
        raise
    decoy_vault.close()
    earlier = decoy_of(vault)
    with vault.transaction() as tx:
        tx.put(DURESS_KIND, _DECOY_KEY, decoy.to_bytes())
        for contact in alert:
            _send_key(tx, rng, contact.contact_id, keys[contact.contact_id], now)
    if earlier is not None:
        shred_decoy(home, earlier)
    return decoy


def _send_key(tx: VaultTransaction, rng: Random, contact_id: bytes, key: bytes, now: float) -> None:
    """Seal ``DuressKey(key)`` in the contact's session into the outbox (the contact as it is now)."""
    data = tx.get("contact", contact_id)
    if data is None:
        raise NotFoundError("a contact to alert was removed meanwhile")
    contact = Contact.from_bytes(data)
    session = Session.from_bytes(contact.session, rng=rng)
    envelope = session.send(DuressKey(key).encode(), now=now)
    entry = OutboxEntry(rng.random_bytes(16), contact_id, contact.peer, envelope, int(now * 1000), b"")
    tx.put("contact", contact_id, replace(contact, session=session.to_bytes()).to_bytes())
    tx.put("outbox", entry.send_id, entry.to_bytes())


def disarm(home: Home, vault: Vault) -> bool:
    """Shred the decoy and forget it; False if duress was not armed.

    Raises:
        VaultError: a file could not be overwritten or removed.
    """
    decoy = decoy_of(vault)
    if decoy is None:
        return False
    with vault.transaction() as tx:
        tx.delete(DURESS_KIND, _DECOY_KEY)
    shred_decoy(home, decoy)
    return True


def stale_alerts(vault: Vault) -> tuple[list[str], list[str]]:
    """The contacts the decoy alerts, and those of them its kit no longer reaches.

    A kit is written when duress is armed (the decoy is sealed under the duress passphrase,
    which the burner does not keep): a chosen contact removed, burned, or whose queue for
    us moved since (a relay move, §17.6) is alerted on a queue that is no longer its own.

    Returns:
        (aliases alerted, aliases stale); a removed contact shows as "a removed contact".
    """
    decoy = decoy_of(vault)
    if decoy is None:
        return [], []
    alerted: list[str] = []
    stale: list[str] = []
    for contact_id, sender_id in decoy.alerted:
        data = vault.get("contact", contact_id)
        if data is None:
            alerted.append("a removed contact")
            stale.append("a removed contact")
            continue
        contact = Contact.from_bytes(data)
        alerted.append(contact.alias)
        if contact.burned or not hmac.compare_digest(contact.peer.sender_id, sender_id):
            stale.append(contact.alias)
    return alerted, stale


def shred_decoy(home: Home, decoy: Decoy) -> None:
    """Shred the decoy's directory (a burn of the real burner takes it along).

    Raises:
        VaultError: a file could not be overwritten or removed.
    """
    Vault.shred(home.root / decoy.directory)


def after_unlock(home: Home, vault: Vault) -> tuple[KitEntry, ...]:
    """What an unlock does first, before anything else reads or writes the burner.

    A decoy: destroy the guarded burner's key in place, then delete the guard and the kit
    in one transaction. A real burner with duress armed: the cover write (rewrite the
    :class:`Decoy` record, and overwrite the decoy's spare key slot in place). Anything
    else: nothing.

    Returns:
        The alerts to send (:func:`start_alerts`): the kit of a decoy, else nothing.

    Raises:
        VaultError: a file could not be written; for a decoy, the guarded key may
            already be gone.
    """
    data = vault.get(DURESS_KIND, _GUARD_KEY)
    if data is not None:
        guarded = home.root / Guard.from_bytes(data).directory
        Vault.erase_key(guarded)
        # At the border its key is with a holder (§17.12): its way back goes instead.
        # Imported here: border imports the issuer, which imports the ledger, which imports us.
        from burnerkit.app.border import BORDER_FILE, BORDER_TEMP

        for name in (BORDER_FILE, BORDER_TEMP):
            _overwrite(guarded / name)
        with vault.transaction() as tx:
            kit = tx.get(DURESS_KIND, _KIT_KEY)
            tx.delete(DURESS_KIND, _GUARD_KEY)
            tx.delete(DURESS_KIND, _KIT_KEY)
        return () if kit is None else Kit.from_bytes(kit).entries
    decoy = decoy_of(vault)
    if decoy is None:
        return ()
    with vault.transaction() as tx:
        tx.put(DURESS_KIND, _DECOY_KEY, decoy.to_bytes())
    Vault.scrub_spare_slot(home.root / decoy.directory, 1 - decoy.slot)
    return ()


def _overwrite(path: Path) -> None:
    """Overwrite the regular file ``path`` with random bytes in place, fsync; none is no error.

    Raises:
        VaultError: it could not be overwritten.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise VaultError(f"vault file error ({errno.errorcode.get(exc.errno or 0, 'unknown')})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_size:
            os.pwrite(fd, os.urandom(info.st_size), 0)
            os.fsync(fd)
    except OSError as exc:
        raise VaultError(f"vault file error ({errno.errorcode.get(exc.errno or 0, 'unknown')})") from None
    finally:
        os.close(fd)


# -- alerts ------------------------------------------------------------------------------


def alert_body(key: bytes, rng: Random) -> bytes:
    """``nonce (12) ‖ AES-256-GCM(key, nonce, zeros, AD = label)``: as long as every envelope."""
    nonce = rng.random_bytes(aead.NONCE_SIZE)
    return nonce + aead.seal(key, nonce, bytes(_ALERT_PLAINTEXT_SIZE), LABEL_DURESS_ALERT)


def _opens(key: bytes, body: bytes) -> bool:
    if len(body) != MAX_BODY_SIZE:
        return False
    try:
        aead.open_(key, body[: aead.NONCE_SIZE], body[aead.NONCE_SIZE :], LABEL_DURESS_ALERT)
    except DecryptionError:
        return False
    return True


def keep_key(tx: VaultTransaction, contact_id: bytes, key: DuressKey) -> None:
    """At a contact: keep the newest alert key the contact sent (an earlier one is replaced)."""
    tx.put(HELD_KEY_KIND, contact_id, HeldKey(key.key).to_bytes())


def take_alert(tx: VaultTransaction, contact_id: bytes, body: bytes) -> bool | None:
    """At a contact: whether ``body`` is the contact's coercion alert, tried before its session.

    Returns:
        True for the alert (its key is now spent); False for it again (a replay: nothing
        to do); None for anything else (the session reads it).
    """
    data = tx.get(HELD_KEY_KIND, contact_id)
    if data is None:
        return None
    held = HeldKey.from_bytes(data)
    if not _opens(held.key, body):
        return None
    if held.spent:
        return False
    tx.put(HELD_KEY_KIND, contact_id, dataclasses.replace(held, spent=True).to_bytes())
    return True


async def send_alerts(entries: tuple[KitEntry, ...], *, rng: Random, relay_timeout: float) -> int:
    """Send each contact its alert, each on a connection of its own, opened with the usual jitter.

    Returns:
        How many alerts a relay took. A failure is not retried and not recorded: nothing
        on disk may say an alert was due.
    """
    connections = RelayConnections(
        lambda url, after, on_link: RelayClient(
            url, rng=rng, timeout=relay_timeout, on_link=on_link, open_after=after
        ),
        policy=ConnectionPolicy.from_environ(),
        rng=rng,
    )

    async def one(entry: KitEntry) -> bool:
        try:
            async with connections.lease(entry.relay_url, entry.sender_id) as client:
                signer = SigningKey.from_bytes(entry.sender_key)
                await client.send(entry.sender_id, alert_body(entry.key, rng), sender_key=signer)
        except RelayError:
            return False
        return True

    return sum(await asyncio.gather(*(one(entry) for entry in entries)))


_threads: list[threading.Thread] = []


def start_alerts(
    entries: tuple[KitEntry, ...], *, rng: Random, relay_timeout: float, detach: bool = False
) -> None:
    """Send the alerts in the background.

    ``detach`` (a command that exits as soon as it has shown its result): from a forked
    child in a session of its own, stdio on ``/dev/null``, so that the command ends when a
    normal unlock's would. Otherwise (the chat, which runs on; tests) from a thread, which
    the interpreter waits for before it exits.
    """
    if not entries:
        return
    if detach and hasattr(os, "fork"):
        if os.fork() == 0:  # pragma: no cover - runs in the child, which never returns
            try:
                os.setsid()
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                # A thread of its own: the parent may have forked from inside a running loop.
                sender = threading.Thread(
                    target=lambda: asyncio.run(send_alerts(entries, rng=rng, relay_timeout=relay_timeout))
                )
                sender.start()
                sender.join()
            finally:
                os._exit(0)
        return
    thread = threading.Thread(
        target=lambda: asyncio.run(send_alerts(entries, rng=rng, relay_timeout=relay_timeout)),
        daemon=False,
    )
    _threads.append(thread)
    thread.start()


def join_alerts(timeout: float | None = None) -> None:
    """Wait for the alerts started in this process (tests, and a face that exits at once)."""
    while _threads:
        _threads.pop().join(timeout)
