"""The SQLite store's schema and its migrations, applied when a file opens.

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

__all__ = ["SCHEMA_VERSION", "migrate"]

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
