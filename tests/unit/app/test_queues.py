"""Who owns a receive queue while a relay move is under way (app/queues.py, docs/protocol.md §17.6)."""

from __future__ import annotations

from burnerkit.app.addresses import QueueAddress
from burnerkit.app.queues import QueueOwner, orphan_bytes, owners
from burnerkit.app.records import Contact
from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.relay.client import QueueCredentials

OLD, NEW = "ws://127.0.0.1:7000", "ws://127.0.0.1:7001"
PEER = QueueAddress("ws://127.0.0.1:7002", b"P" * 24)


def creds(tag: bytes) -> QueueCredentials:
    return QueueCredentials(
        tag * 24, tag.lower() * 24, SigningKey.generate(DeterministicRandom(tag)), b"K" * 32
    )


def contact(
    contact_id: bytes, queue: QueueCredentials, next_queue: QueueCredentials | None = None
) -> Contact:
    return Contact(
        contact_id,
        "bob",
        0,
        OLD,
        queue,
        PEER,
        b"",
        b"",
        next_queue_relay=NEW if next_queue else "",
        next_queue=next_queue,
    )


def test_a_contact_owns_its_queue_and_its_next_queue() -> None:
    queue, following = creds(b"A"), creds(b"B")
    found = owners([contact(b"c" * 16, queue, following)], [])
    assert found == {
        queue.recipient_id: QueueOwner("contact", b"c" * 16, OLD, queue),
        following.recipient_id: QueueOwner("contact", b"c" * 16, NEW, following),
    }


def test_a_retired_queue_is_its_contacts_until_deleted_and_nobodys_once_the_contact_is_gone() -> None:
    queue, retired, other = creds(b"A"), creds(b"R"), creds(b"O")
    orphans = [
        (retired.recipient_id, orphan_bytes(OLD, retired, b"c" * 16)),
        (other.recipient_id, orphan_bytes(OLD, other)),  # a re-paired contact's: nobody's
    ]
    found = owners([contact(b"c" * 16, queue)], [], orphans)
    assert found[retired.recipient_id] == QueueOwner("contact", b"c" * 16, OLD, retired)
    assert other.recipient_id not in found
    # The contact removed: its retired queue is nobody's, deleted as any orphan.
    assert owners([contact(b"d" * 16, queue)], [], orphans).keys() == {queue.recipient_id}
