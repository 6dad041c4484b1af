"""The SQLite store's schema, its migrations (applied when a file opens) and its shared statements.

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    queues(recipient_id BLOB PK, sender_id BLOB UNIQUE, recipient_key, queue_key, sender_key NULL,
           sender_secured)                                        WITHOUT ROWID
    messages(recipient_id FK CASCADE, qseq, msg_id BLOB UNIQUE, send_id, received_at,
             quota_marker, body, sender_refused, PK (recipient_id, qseq))
                                                                  WITHOUT ROWID, index (received_at)
    send_ids(recipient_id FK CASCADE, send_id, retired NULL, PK (recipient_id, send_id))
                                                                  index (recipient_id, retired)

A file of version 2 (before sender-secured queues) gets the two flag columns with their
default 0 (no queue of it is secured, no message of it is a notice). A refused-sender
notice has an empty send id, which no SEND has, so it never has a ``send_ids`` row.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from burnerkit.errors import StoreError
from burnerkit.relay.server.store.base import QueueRecord, StoredMessage
from burnerkit.relay.server.store.memory import RETIRED_SEND_IDS

__all__ = ["RETIRED", "SCHEMA_VERSION", "SEEN", "insert_message", "migrate", "retire", "select_queue"]

#: Deletions per queue between two prunings of its forgotten send ids.
PRUNE_EVERY: Final = 64

#: ``PRAGMA user_version`` of the schema this module writes.
SCHEMA_VERSION: Final = 3  # 2: no rowids, per-queue message numbers (nothing shipped v1); 3: flags

_SCHEMA: Final = (
    """CREATE TABLE queues (
    recipient_id  BLOB PRIMARY KEY NOT NULL,
    sender_id     BLOB NOT NULL UNIQUE,
    recipient_key BLOB NOT NULL,
    queue_key     BLOB NOT NULL,
    sender_key    BLOB,
    sender_secured INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID""",
    """CREATE TABLE messages (
    recipient_id  BLOB NOT NULL REFERENCES queues (recipient_id) ON DELETE CASCADE,
    qseq          INTEGER NOT NULL,
    msg_id        BLOB NOT NULL UNIQUE,
    send_id       BLOB NOT NULL,
    received_at   INTEGER NOT NULL,
    quota_marker  INTEGER NOT NULL,
    body          BLOB NOT NULL,
    sender_refused INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (recipient_id, qseq)
) WITHOUT ROWID""",
    "CREATE INDEX messages_by_age ON messages (received_at)",
    """CREATE TABLE send_ids (
    recipient_id  BLOB NOT NULL REFERENCES queues (recipient_id) ON DELETE CASCADE,
    send_id       BLOB NOT NULL,
    retired       INTEGER,
    PRIMARY KEY (recipient_id, send_id)
) WITHOUT ROWID""",
    "CREATE INDEX send_ids_by_retirement ON send_ids (recipient_id, retired)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_MIGRATE_2_TO_3: Final = (
    "ALTER TABLE queues ADD COLUMN sender_secured INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE messages ADD COLUMN sender_refused INTEGER NOT NULL DEFAULT 0",
    "PRAGMA user_version = 3",
)


def migrate(conn: sqlite3.Connection) -> None:
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
            statements: tuple[str, ...] = _SCHEMA
        elif version == 2:
            statements = _MIGRATE_2_TO_3
        elif version == SCHEMA_VERSION:
            statements = ()
        else:
            raise StoreError("sqlite store has an unsupported schema version")
        for statement in statements:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


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
    """Append ``message`` to the queue as its ``qseq``-th, marked or not."""
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
    sender_key = None if row[4] is None else bytes(row[4])
    return QueueRecord(bytes(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]), sender_key, bool(row[5]))


def retire(conn: sqlite3.Connection, recipient_id: bytes, send_id: bytes) -> None:
    """Number ``send_id`` as the queue's latest deletion; now and then, drop the forgotten ones.

    Only the latest :data:`RETIRED_SEND_IDS` numbers count as remembered (see ``SEEN``), so
    the rows below that window go in bulk every :data:`PRUNE_EVERY` deletions. A notice's
    empty send id has no row: nothing to number.
    """
    row = conn.execute(
        "UPDATE send_ids SET retired ="
        " (SELECT coalesce(max(retired), 0) + 1 FROM send_ids WHERE recipient_id = ?1)"
        " WHERE recipient_id = ?1 AND send_id = ?2 RETURNING retired",
        (recipient_id, send_id),
    ).fetchone()
    if row is not None and row[0] % PRUNE_EVERY == 0:
        conn.execute(
            "DELETE FROM send_ids WHERE recipient_id = ? AND retired <= ?",
            (recipient_id, row[0] - RETIRED_SEND_IDS),
        )


_SELECT_QUEUE: Final = (
    "SELECT recipient_id, sender_id, recipient_key, queue_key, sender_key, sender_secured FROM queues"
)
_QUEUE_BY: Final = {
    "recipient_id": _SELECT_QUEUE + " WHERE recipient_id = ?",
    "sender_id": _SELECT_QUEUE + " WHERE sender_id = ?",
}
#: Whether queue ?1 remembers send id ?2: while its message waits (``retired`` NULL), or
#: while it is among the queue's ?3 latest deletions (older rows may linger until pruned).
SEEN: Final = (
    "SELECT 1 FROM send_ids WHERE recipient_id = ?1 AND send_id = ?2 AND (retired IS NULL OR retired >"
    " (SELECT coalesce(max(retired), 0) FROM send_ids WHERE recipient_id = ?1) - ?3)"
)
#: The queue's window of retired send ids, oldest deletion first.
RETIRED: Final = (
    "SELECT send_id FROM send_ids WHERE recipient_id = ?1 AND retired IS NOT NULL AND retired >"
    " (SELECT coalesce(max(retired), 0) FROM send_ids WHERE recipient_id = ?1) - ?2 ORDER BY retired"
)
