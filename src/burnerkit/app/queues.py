"""The relay queues a burner owns, and deleting them.

Every receive queue belongs to a contact (its queue, and the next one while a relay move
is under way), to an invitation waiting for its acceptance, or to nobody any more (an
orphan: an alias paired again, an invitation that expired, a queue a relay move retired).
A burn deletes all three kinds; orphans are also deleted by ordinary runs. A retired
queue stays its contact's until then, for what the contact sent to it before switching
(docs/protocol.md §17.4 orphans, §17.6 relay moves).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from burnerkit.app.records import Contact, Invite, Orphan
from burnerkit.errors import RelayError, RelayRejectedError
from burnerkit.relay.client import QueueCredentials, RelayClient

__all__ = ["QueueOwner", "delete_queues", "orphan_bytes", "orphan_owner", "owners"]


@dataclass(frozen=True, slots=True)
class QueueOwner:
    """Who a receive queue belongs to; ``key`` is that record's vault key."""

    kind: str  # "contact" | "invite" | "orphan" | "order" (an issuer's burn orders, §17.9)
    key: bytes
    relay_url: str
    creds: QueueCredentials


def owners(
    contacts: Iterable[Contact],
    invites: Iterable[tuple[bytes, bytes]],
    orphans: Iterable[tuple[bytes, bytes]] = (),
) -> dict[bytes, QueueOwner]:
    """The owner of every live receive queue, by recipient id.

    ``orphans`` (the vault's ``orphan`` items): a queue a relay move retired still belongs
    to its contact, if that contact is still there, until its relay deletes it.
    """
    out: dict[bytes, QueueOwner] = {}
    by_id: dict[bytes, Contact] = {}
    for contact in contacts:
        by_id[contact.contact_id] = contact
        out[contact.queue.recipient_id] = QueueOwner(
            "contact", contact.contact_id, contact.queue_relay, contact.queue
        )
        if contact.next_queue is not None:
            out[contact.next_queue.recipient_id] = QueueOwner(
                "contact", contact.contact_id, contact.next_queue_relay, contact.next_queue
            )
    for key, data in invites:
        invite = Invite.from_bytes(data)
        out[invite.queue.recipient_id] = QueueOwner("invite", key, invite.queue_relay, invite.queue)
    for _, data in orphans:
        orphan = Orphan.from_bytes(data)
        if orphan.contact_id in by_id:
            out.setdefault(
                orphan.queue.recipient_id,
                QueueOwner("contact", orphan.contact_id, orphan.relay_url, orphan.queue),
            )
    return out


def orphan_bytes(
    relay_url: str, creds: QueueCredentials, contact_id: bytes = b"", *, keep_until: int = 0
) -> bytes:
    """The vault value of an orphaned queue (docs/protocol.md §17.4).

    ``contact_id``: the contact a relay move retired the queue from (it stays theirs).
    ``keep_until``: not deleted before then, but by a burn (a used short link's queue).
    """
    return Orphan(relay_url, creds, contact_id, keep_until).to_bytes()


def orphan_owner(data: bytes) -> QueueOwner:
    """An orphan record as a queue owner; its key is the queue's recipient id."""
    orphan = Orphan.from_bytes(data)
    return QueueOwner("orphan", orphan.queue.recipient_id, orphan.relay_url, orphan.queue)


async def delete_queues(
    connect: Callable[[str, bytes], AbstractAsyncContextManager[RelayClient]],
    queues: list[QueueOwner],
) -> list[QueueOwner]:
    """Delete ``queues`` from their relays, all at once; returns those now gone.

    ``connect(url, party)`` gives a connection of the party's own: each owner's queues
    are deleted on their owner's connection, so a burn does not link its contacts'
    queues on one connection (docs/protocol.md §14.13a; ``connect`` may share them).
    A queue the relay no longer knows (``AUTH``) counts as gone; a relay that cannot be
    reached keeps its queues out of the result.
    """
    gone: list[QueueOwner] = []

    async def one_link(url: str, party: bytes, batch: list[QueueOwner]) -> None:
        with contextlib.suppress(RelayError):
            async with connect(url, party) as client:
                for owner in batch:
                    with contextlib.suppress(RelayRejectedError):
                        await client.delete_queue(owner.creds)
                    gone.append(owner)

    links: dict[tuple[str, bytes], list[QueueOwner]] = {}
    for owner in queues:
        links.setdefault((owner.relay_url, owner.key), []).append(owner)
    await asyncio.gather(*(one_link(url, party, batch) for (url, party), batch in links.items()))
    return gone
