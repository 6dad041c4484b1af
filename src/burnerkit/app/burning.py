"""The burn protocol: a journal, then the key, the notices, the queues and the files (docs/protocol.md §17.7).

Theory of operation
-------------------
Once the vault key is gone nothing in the vault can be read, so everything the later
steps need is prepared first, while the vault is open, into a :class:`BurnJournal`: a
signed burn notice sealed through each contact's session (with where and how to send it),
and the credentials of every relay queue the burner owns. Then, in this order, each step
durable before the next:

1. ``journal``: the journal, sealed under the vault's KEK and padded, is written and
   fsynced as the burn marker (a file named by a fresh id, :func:`~burnerkit.app.home.mark_burning`);
2. ``key``: both key slots of ``vault.key`` are overwritten in place (``Vault.erase_key``):
   from here on the vault opens for nobody;
3. ``notices``: each notice goes to its contact's queue (the relay's idempotency key makes
   a resend after a crash store it once);
4. ``queues``: every queue is deleted from its relay;
5. ``files``: the vault's files are shredded (§15.7);
6. the journal is zeroed in place, fsynced and removed; then the directory, and the home
   if it is empty.

Killed anywhere, the next start of any ``burner`` command that unlocks finds the marker
and, with the passphrase, opens the journal and runs steps 2-6 again (each is idempotent);
a marker whose journal does not open, next to a vault that does, is a burn killed before
its key went: it starts again from its journal. :data:`ENV_KILL_AFTER` is a test-only
fault hook that kills the process after a named step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from burnerkit.app.addresses import QueueAddress
from burnerkit.app.content import BurnNotice
from burnerkit.app.home import Home, clear_burning
from burnerkit.app.ledger import all_contacts
from burnerkit.app.queues import QueueOwner, delete_queues
from burnerkit.app.records import SENDER_KEY_SIZE
from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.rng import Random
from burnerkit.errors import RelayError, RelayRejectedError, RemoteProtocolError
from burnerkit.protocol.session import Session
from burnerkit.relay.client import QueueCredentials, RelayClient
from burnerkit.vault import Vault
from burnerkit.wire import CodecError, Reader, Writer

if TYPE_CHECKING:
    from burnerkit.app.messenger import Messenger
    from burnerkit.app.views import BurnReport

__all__ = [
    "BURN_STEPS",
    "ENV_KILL_AFTER",
    "JOURNAL_BUCKET",
    "MAX_JOURNAL_SIZE",
    "BurnJournal",
    "JournalNotice",
    "JournalQueue",
    "burn_from_open",
    "carry_out",
    "checkpoint",
    "prepare_journal",
    "run_sync",
]

#: Test only: the name of a step of :data:`BURN_STEPS` after which the burning process
#: kills itself (SIGKILL), as a crash there would. Never set it otherwise.
ENV_KILL_AFTER: Final = "BURNER_TEST_KILL_BURN_AFTER"
#: The steps, in order; each is durable before the next starts.
BURN_STEPS: Final = ("journal", "key", "notices", "queues", "files")
#: The journal pads to a power of two of at least this many bytes (four notices fit).
JOURNAL_BUCKET: Final = 1 << 16
#: The most of a marker file read as a journal (a planted huge file is not read whole).
MAX_JOURNAL_SIZE: Final = 1 << 26
_JOURNAL_VERSION: Final = 1
_FLAG_ERASE: Final = 0x01
_SEND_ID_SIZE: Final = 16

T = TypeVar("T")
Connect = Callable[[str, bytes], AbstractAsyncContextManager[RelayClient]]


@dataclass(frozen=True, slots=True)
class JournalNotice:
    """One burn notice, sealed, and how to send it: to ``peer``, signed with ``sender_key``."""

    party: bytes  #: the contact's id: the notice goes on the contact's own connection (§14.13a)
    send_id: bytes = field(repr=False)
    peer: QueueAddress
    sender_key: bytes = field(repr=False)
    envelope: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class JournalQueue:
    """One relay queue of ours to delete, on its owner's connection (``party``)."""

    party: bytes
    relay_url: str
    creds: QueueCredentials = field(repr=False)


@dataclass(frozen=True, slots=True)
class BurnJournal:
    """What a burn still has to do once the vault key is gone (docs/protocol.md §17.7)."""

    name: str
    erase: bool
    notices: list[JournalNotice] = field(repr=False)
    queues: list[JournalQueue] = field(repr=False)

    def to_bytes(self) -> bytes:
        """The journal's body (§17.7), unpadded."""
        w = Writer().u8(_JOURNAL_VERSION).u8(_FLAG_ERASE if self.erase else 0).var16(self.name.encode())
        w.u16(len(self.notices))
        for notice in self.notices:
            w.var16(notice.party).raw(notice.send_id).var16(notice.peer.to_bytes())
            w.var16(notice.sender_key).var32(notice.envelope)
        w.u16(len(self.queues))
        for queue in self.queues:
            w.var16(queue.party).var16(queue.relay_url.encode()).var16(queue.creds.to_bytes())
        return w.getvalue()

    def padded(self) -> bytes:
        """``u32 len ‖ body ‖ zeros``, to the next power of two of at least :data:`JOURNAL_BUCKET`."""
        body = self.to_bytes()
        size = JOURNAL_BUCKET
        while size < len(body) + 4:
            size *= 2
        return len(body).to_bytes(4, "big") + body + bytes(size - 4 - len(body))

    @classmethod
    def from_padded(cls, data: bytes) -> BurnJournal:
        """Parse :meth:`padded` output.

        Raises:
            RemoteProtocolError: it does not parse (a bug, or a journal of a later version).
        """
        try:
            r = Reader(bytes(data))
            body = Reader(r.take(r.u32()))
            if any(r.rest()):
                raise CodecError("padding is not zeros")
            if body.u8() != _JOURNAL_VERSION:
                raise CodecError("unknown journal version")
            flags = body.u8()
            if flags & ~_FLAG_ERASE:
                raise CodecError("unknown journal flags")
            name = body.var16().decode()
            notices = [
                JournalNotice(
                    body.var16(),
                    body.take(_SEND_ID_SIZE),
                    QueueAddress.from_bytes(body.var16()),
                    body.var16(),
                    body.var32(),
                )
                for _ in range(body.u16())
            ]
            queues = [
                JournalQueue(body.var16(), body.var16().decode(), QueueCredentials.from_bytes(body.var16()))
                for _ in range(body.u16())
            ]
            body.end()
        except (CodecError, UnicodeDecodeError, ValueError) as exc:
            raise RemoteProtocolError("the burn journal does not parse") from exc
        return cls(name, bool(flags & _FLAG_ERASE), notices, queues)


def prepare_journal(
    vault: Vault,
    name: str,
    queues: list[QueueOwner],
    *,
    erase: bool,
    now: float,
    rng: Random,
) -> BurnJournal:
    """Seal a signed burn notice for every contact not burned, and list ``queues`` (nothing is written).

    The sessions advance in memory only: the vault they would be stored in is about to go.
    """
    notices = []
    for contact in all_contacts(vault):
        if contact.burned:
            continue
        session = Session.from_bytes(contact.session, rng=rng)
        body = BurnNotice.body(int(now), erase)
        notice = BurnNotice(int(now), erase, session.sign_burn_notice(body))
        envelope = session.send(notice.encode(), now=now)
        notices.append(
            JournalNotice(
                contact.contact_id,
                rng.random_bytes(_SEND_ID_SIZE),
                contact.peer,
                contact.sender_key,
                envelope,
            )
        )
    listed = [JournalQueue(owner.key, owner.relay_url, owner.creds) for owner in queues]
    return BurnJournal(name, erase, notices, listed)


def checkpoint(step: str) -> None:
    """The test-only fault hook: die here if :data:`ENV_KILL_AFTER` names ``step``."""
    if os.environ.get(ENV_KILL_AFTER) == step:
        os.kill(os.getpid(), signal.SIGKILL)


async def carry_out(
    journal: BurnJournal, home: Home, directory: Path, connect: Connect
) -> tuple[int, int, int, int]:
    """Steps 2-6 of the burn: key, notices, queues, files, journal; safe to run again.

    Returns:
        (notices sent, notices not sent, queues deleted, queues not deleted): a relay that
        cannot be reached is counted, not retried: the key is gone either way.
    """
    Vault.erase_key(directory)
    checkpoint("key")
    sent = await _send_notices(connect, journal.notices)
    checkpoint("notices")
    owners = [QueueOwner("burn", queue.party, queue.relay_url, queue.creds) for queue in journal.queues]
    deleted = len(await delete_queues(connect, owners))
    checkpoint("queues")
    Vault.shred(directory)
    checkpoint("files")
    clear_burning(directory)
    with contextlib.suppress(OSError):
        directory.rmdir()
    home.remove_if_empty()
    return sent, len(journal.notices) - sent, deleted, len(owners) - deleted


async def _send_notices(connect: Connect, notices: list[JournalNotice]) -> int:
    """Send every notice, each on its contact's own connection, all at once; how many the relays took."""
    taken = 0

    async def one(notice: JournalNotice) -> None:
        nonlocal taken
        with contextlib.suppress(RelayError):
            async with connect(notice.peer.relay_url, notice.party) as client:
                key = (
                    SigningKey.from_bytes(notice.sender_key)
                    if len(notice.sender_key) == SENDER_KEY_SIZE
                    else None
                )
                try:
                    await client.send(
                        notice.peer.sender_id, notice.envelope, send_id=notice.send_id, sender_key=key
                    )
                except RelayRejectedError:
                    return  # their queue is gone (they burned too) or full: nothing more to do
                taken += 1

    await asyncio.gather(*(one(notice) for notice in notices))
    return taken


def run_sync(coro: Coroutine[None, None, T]) -> T:
    """Run ``coro`` to its end from synchronous code, even inside a running event loop.

    ``Messenger.open`` is synchronous and may be called from a running loop (the chat): the
    relay calls get a loop of their own in a worker thread.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def burn_from_open(messenger: Messenger, *, erase_conversations: bool = False) -> BurnReport:
    """Burn ``messenger``'s burner now, from synchronous code such as ``Messenger.open``.

    The one entry point for a burn that the burner decides by itself (its expiry, a missed
    check-in, a verified burn order): the same protocol as ``burner burn``
    (:meth:`Messenger.burn`). The messenger is unusable afterwards.
    """
    return run_sync(messenger.burn(erase_conversations=True) if erase_conversations else messenger.burn())
