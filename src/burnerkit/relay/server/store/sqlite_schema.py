"""The SQLite store's schema, its migrations (applied when a file opens) and its shared statements.

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`; docs/protocol.md §14.8b)::

    queues(recipient_id BLOB PK, sender_id BLOB UNIQUE, recipient_key, queue_key,
           sender_key[32] (zeros: none yet), sender_secured, send_ids[256 x 16])
                                                                  WITHOUT ROWID
    messages(recipient_id, qseq, msg_id BLOB UNIQUE, send_id, received_at,
             quota_marker, body, sender_refused, PK (recipient_id, qseq))
                                                                  WITHOUT ROWID

What the layout leaves out, on purpose: no rowid and no global counter (nothing orders
queues by creation, or messages of two queues by arrival); no foreign key (a queue's
messages are deleted with it by the store, so that a queue row can be deleted and
written again without taking its messages along); no index on ``received_at`` (the hourly
sweep scans); no per-queue counter: ``qseq`` starts at a random number whenever a queue
is empty, and a queue's remembered send ids are a fixed ring of 256 slots, filled with
random bytes when the queue is made, whose write position is kept in memory only. Every
queue row has the same size, so a KEY or a retired send id overwrites it in place.

Version 2 (before sender-secured queues) gets the two flag columns first (version 3);
version 3 (a ``send_ids`` table numbering each deletion per queue, foreign keys) is
rewritten into version 4 in one transaction: the newest 256 retired send ids of each
queue go into its ring, the rest of the ring is random, waiting messages keep their order
under new numbers, and the old tables are dropped (their pages zeroed: ``secure_delete``).
"""

from __future__ import annotations

import sqlite3
from typing import Final

from burnerkit.crypto.rng import Random
from burnerkit.errors import StoreError
from burnerkit.relay.server.store.base import QueueRecord, StoredMessage
from burnerkit.relay.server.store.memory import RETIRED_SEND_IDS

__all__ = [
    "NEIGHBOURS",
    "NO_SENDER_KEY",
    "QSEQ_STARTS",
    "SCHEMA_VERSION",
    "SLOT_SIZE",
    "first_qseq",
    "insert_message",
    "insert_queue",
    "migrate",
    "new_ring",
    "ring_has",
    "ring_ids",
    "select_queue",
]

#: ``PRAGMA user_version`` of the schema this module writes.
SCHEMA_VERSION: Final = 4  # 2: no rowids; 3: sender-secured flags; 4: send-id rings, no counters
#: Bytes of one send id, one slot of a queue's ring.
SLOT_SIZE: Final = 16
#: What ``sender_key`` holds while a queue has none (no Ed25519 key is all zeros: KEY refuses it).
NO_SENDER_KEY: Final = bytes(32)
#: Queue rows on either side (by recipient id) written again with a new queue, in key order.
NEIGHBOURS: Final = 32
#: A queue's first message is numbered at random in ``[1, QSEQ_STARTS]``: below 10^9, so
#: no number of this table can pass for a time of day.
QSEQ_STARTS: Final = 1 << 29

_QUEUES: Final = """CREATE TABLE queues (
    recipient_id   BLOB PRIMARY KEY NOT NULL,
    sender_id      BLOB NOT NULL UNIQUE,
    recipient_key  BLOB NOT NULL,
    queue_key      BLOB NOT NULL,
    sender_key     BLOB NOT NULL,
    sender_secured INTEGER NOT NULL DEFAULT 0,
    send_ids       BLOB NOT NULL
) WITHOUT ROWID"""
_MESSAGES: Final = """CREATE TABLE messages (
    recipient_id   BLOB NOT NULL,
    qseq           INTEGER NOT NULL,
    msg_id         BLOB NOT NULL UNIQUE,
    send_id        BLOB NOT NULL,
    received_at    INTEGER NOT NULL,
    quota_marker   INTEGER NOT NULL,
    body           BLOB NOT NULL,
    sender_refused INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (recipient_id, qseq)
) WITHOUT ROWID"""
_MIGRATE_2_TO_3: Final = (
    "ALTER TABLE queues ADD COLUMN sender_secured INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE messages ADD COLUMN sender_refused INTEGER NOT NULL DEFAULT 0",
)
_INSERT_QUEUE: Final = (
    "INSERT INTO queues (recipient_id, sender_id, recipient_key, queue_key, sender_key, sender_secured,"
    " send_ids) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_NEIGHBOURS_BELOW: Final = (
    "SELECT recipient_id, sender_id, recipient_key, queue_key, sender_key, sender_secured, send_ids"
    " FROM queues WHERE recipient_id < ? ORDER BY recipient_id DESC LIMIT ?"
)
_NEIGHBOURS_ABOVE: Final = (
    "SELECT recipient_id, sender_id, recipient_key, queue_key, sender_key, sender_secured, send_ids"
    " FROM queues WHERE recipient_id >= ? ORDER BY recipient_id LIMIT ?"
)


def migrate(conn: sqlite3.Connection, rng: Random) -> None:
    """Create the schema in a new file, or bring an older one up to :data:`SCHEMA_VERSION`.

    One transaction (statement by statement: ``executescript`` would COMMIT first).

    Raises:
        StoreError: the file holds an unknown schema version.
        sqlite3.Error: the file cannot be read or written.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == 0:
            conn.execute(_QUEUES)
            conn.execute(_MESSAGES)
        elif version in (2, 3):
            if version == 2:
                for statement in _MIGRATE_2_TO_3:
                    conn.execute(statement)
            _migrate_3_to_4(conn, rng)
        elif version != SCHEMA_VERSION:
            raise StoreError("sqlite store has an unsupported schema version")
        if version != SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _migrate_3_to_4(conn: sqlite3.Connection, rng: Random) -> None:
    conn.execute(_QUEUES.replace("TABLE queues", "TABLE queues_v4"))
    conn.execute(_MESSAGES.replace("TABLE messages", "TABLE messages_v4"))
    queues = conn.execute(
        "SELECT recipient_id, sender_id, recipient_key, queue_key, sender_key, sender_secured FROM queues"
        " ORDER BY recipient_id"
    ).fetchall()
    for recipient_id, sender_id, recipient_key, queue_key, sender_key, secured in queues:
        retired = conn.execute(
            "SELECT send_id FROM send_ids WHERE recipient_id = ? AND retired IS NOT NULL"
            " ORDER BY retired DESC LIMIT ?",
            (recipient_id, RETIRED_SEND_IDS),
        ).fetchall()
        ring = bytearray(new_ring(rng))
        for slot, (send_id,) in enumerate(retired):  # newest first; which slot is which is not kept
            ring[slot * SLOT_SIZE : (slot + 1) * SLOT_SIZE] = bytes(send_id)
        key = NO_SENDER_KEY if sender_key is None else bytes(sender_key)
        conn.execute(
            _INSERT_QUEUE.replace("INTO queues", "INTO queues_v4"),
            (recipient_id, sender_id, recipient_key, queue_key, key, secured, bytes(ring)),
        )
        waiting = conn.execute(
            "SELECT msg_id, send_id, received_at, quota_marker, body, sender_refused FROM messages"
            " WHERE recipient_id = ? ORDER BY qseq",
            (recipient_id,),
        ).fetchall()
        start = first_qseq(rng)
        for offset, row in enumerate(waiting):
            conn.execute(
                "INSERT INTO messages_v4 (recipient_id, qseq, msg_id, send_id, received_at, quota_marker,"
                " body, sender_refused) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (recipient_id, start + offset, *row),
            )
    # Children first: with foreign keys on, dropping a parent deletes (cascades) what it holds.
    for table in ("send_ids", "messages", "queues"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("ALTER TABLE queues_v4 RENAME TO queues")
    conn.execute("ALTER TABLE messages_v4 RENAME TO messages")


def new_ring(rng: Random) -> bytes:
    """A new queue's send-id ring: 256 random slots, indistinguishable from retired send ids."""
    return rng.random_bytes(RETIRED_SEND_IDS * SLOT_SIZE)


def first_qseq(rng: Random) -> int:
    """The number of a message put to an empty queue: random, so that no number counts messages."""
    return 1 + int.from_bytes(rng.random_bytes(4), "big") % QSEQ_STARTS


def ring_has(ring: bytes | bytearray, send_id: bytes) -> bool:
    """Whether ``send_id`` fills one of the ring's slots."""
    at = ring.find(send_id)
    while at != -1:
        if at % SLOT_SIZE == 0:
            return True
        at = ring.find(send_id, at + 1)
    return False


def ring_ids(ring: bytes, oldest: int) -> list[bytes]:
    """The ring's slots from slot ``oldest`` round: oldest retirement first."""
    slots = [ring[i : i + SLOT_SIZE] for i in range(0, len(ring), SLOT_SIZE)]
    return slots[oldest:] + slots[:oldest]


def insert_queue(conn: sqlite3.Connection, queue: QueueRecord, ring: bytes) -> None:
    """Store a new queue, then write its neighbourhood again (:data:`NEIGHBOURS` rows each side).

    SQLite places a new cell where its page has room, so the bytes of a page would keep
    the order its rows were inserted in: that of queue creation. Deleting the new row's
    neighbours and inserting them again, in key order, in the same transaction, makes the
    new row one of ``2 * NEIGHBOURS + 1`` rows written at once in an order set by their
    random ids (the whole table while it holds that few).
    """
    key = NO_SENDER_KEY if queue.sender_key is None else queue.sender_key
    row = (queue.recipient_id, queue.sender_id, queue.recipient_key, queue.queue_key, key)
    conn.execute(_INSERT_QUEUE, (*row, int(queue.sender_secured), ring))
    # Up to 2 * NEIGHBOURS on each side, then the window of 2 * NEIGHBOURS + 1 rows that holds
    # the new one, as centred as the table's ends allow (so a small table is written whole).
    width = 2 * NEIGHBOURS + 1
    below = conn.execute(_NEIGHBOURS_BELOW, (queue.recipient_id, width - 1)).fetchall()
    above = conn.execute(_NEIGHBOURS_ABOVE, (queue.recipient_id, width)).fetchall()
    start = max(0, min(len(below) - NEIGHBOURS, len(below) + len(above) - width))
    rows = (below[::-1] + above)[start : start + width]
    conn.execute("DELETE FROM queues WHERE recipient_id BETWEEN ? AND ?", (rows[0][0], rows[-1][0]))
    conn.executemany(_INSERT_QUEUE, rows)


def insert_message(
    conn: sqlite3.Connection,
    recipient_id: bytes,
    qseq: int,
    send_id: bytes,
    message: StoredMessage,
    marker: bool,
    *,
    sender_refused: bool = False,
) -> None:
    """Append ``message`` to the queue under number ``qseq``, marked or not."""
    conn.execute(
        "INSERT INTO messages (recipient_id, qseq, msg_id, send_id, received_at, quota_marker, body,"
        " sender_refused)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            recipient_id,
            qseq,
            message.msg_id,
            send_id,
            message.received_at,
            int(marker),
            message.body,
            int(sender_refused),
        ),
    )


def select_queue(conn: sqlite3.Connection, column: str, value: bytes) -> QueueRecord | None:
    """The queue whose ``column`` (recipient_id or sender_id) is ``value``, if any."""
    row = conn.execute(_QUEUE_BY[column], (value,)).fetchone()
    if row is None:
        return None
    sender_key = None if row[4] == NO_SENDER_KEY else bytes(row[4])
    return QueueRecord(bytes(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]), sender_key, bool(row[5]))


_SELECT_QUEUE: Final = (
    "SELECT recipient_id, sender_id, recipient_key, queue_key, sender_key, sender_secured FROM queues"
)
_QUEUE_BY: Final = {
    "recipient_id": _SELECT_QUEUE + " WHERE recipient_id = ?",
    "sender_id": _SELECT_QUEUE + " WHERE sender_id = ?",
}
