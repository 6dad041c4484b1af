"""The relay queues a burner owns, and deleting them.

Every receive queue belongs to a contact, to an invitation waiting for its acceptance,
or to nobody any more (an orphan: an alias paired again, an invitation that expired).
A burn deletes all three kinds; orphans are also deleted by ordinary runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from burnerkit.app.records import Contact, Invite, Orphan
from burnerkit.errors import RelayError, RelayRejectedError
from burnerkit.relay.client import QueueCredentials, RelayClient

__all__ = ["QueueOwner", "by_relay", "delete_queues", "orphan_bytes", "orphan_owner", "owners"]


@dataclass(frozen=True, slots=True)
class QueueOwner:
    """Who a receive queue belongs to; ``key`` is that record's vault key."""

    kind: str  # "contact" | "invite" | "orphan"
    key: bytes
    relay_url: str
    creds: QueueCredentials


def owners(contacts: Iterable[Contact], invites: Iterable[tuple[bytes, bytes]]) -> dict[bytes, QueueOwner]:
    """The owner of every live receive queue, by recipient id."""
    out: dict[bytes, QueueOwner] = {}
    for contact in contacts:
        out[contact.queue.recipient_id] = QueueOwner(
            "contact", contact.contact_id, contact.queue_relay, contact.queue
        )
    for key, data in invites:
        invite = Invite.from_bytes(data)
        out[invite.queue.recipient_id] = QueueOwner("invite", key, invite.queue_relay, invite.queue)
    return out


def orphan_bytes(relay_url: str, creds: QueueCredentials) -> bytes:
    """The vault value of an orphaned queue (docs/protocol.md §17.4)."""
    return Orphan(relay_url, creds).to_bytes()


def orphan_owner(data: bytes) -> QueueOwner:
    """An orphan record as a queue owner; its key is the queue's recipient id."""
    orphan = Orphan.from_bytes(data)
    return QueueOwner("orphan", orphan.queue.recipient_id, orphan.relay_url, orphan.queue)


def by_relay(queues: Iterable[QueueOwner]) -> dict[str, list[QueueOwner]]:
    """The queues grouped by relay URL, so each relay gets one connection."""
    out: dict[str, list[QueueOwner]] = {}
    for owner in queues:
        out.setdefault(owner.relay_url, []).append(owner)
    return out


async def delete_queues(connect: Callable[[str], RelayClient], queues: list[QueueOwner]) -> list[QueueOwner]:
    """Delete ``queues`` from their relays, all relays at once; returns those now gone.

    A queue the relay no longer knows (``AUTH``) counts as gone; a relay that cannot be
    reached keeps its queues out of the result.
    """
    gone: list[QueueOwner] = []

    async def one_relay(url: str, batch: list[QueueOwner]) -> None:
        with contextlib.suppress(RelayError):
            async with connect(url) as client:
                for owner in batch:
                    with contextlib.suppress(RelayRejectedError):
                        await client.delete_queue(owner.creds)
                    gone.append(owner)

    await asyncio.gather(*(one_relay(url, batch) for url, batch in by_relay(queues).items()))
    return gone
