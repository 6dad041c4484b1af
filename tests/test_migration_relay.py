"""A relay database of the previous schema still opens: version 3 becomes version 4 at start.

``tests/migration_data/relay_v3.json`` holds, byte for byte (zlib, base64), a database the
relay of schema version 3 wrote (a ``send_ids`` table numbering each queue's deletions,
foreign keys, an age index) and what its users know: an open queue locked to a sender key
with two messages acknowledged and one waiting, a sender-secured queue holding a
refused-sender notice, and a queue that carried 300 messages (its window: the newest 256
send ids). Opened by today's store it must keep every queue, key and waiting message, still
refuse the retries it remembered, forget what it had forgotten, and hold no trace of the
old layout: no counter, no old table (docs/protocol.md §14.8b).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import pytest

from burnerkit.relay.server.store.base import PutResult, QueueRecord, StoredMessage
from burnerkit.relay.server.store.sqlite import SCHEMA_VERSION, SqliteStore

DATA: dict[str, Any] = json.loads(
    (Path(__file__).parent / "migration_data" / "relay_v3.json").read_text(encoding="utf-8")
)
QUOTA = 128


def h(value: str) -> bytes:
    return bytes.fromhex(value)


@pytest.fixture
def old_database(tmp_path: Path) -> Path:
    path = tmp_path / "relay.sqlite"
    path.write_bytes(zlib.decompress(base64.b64decode(DATA["database_zlib_base64"])))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM send_ids WHERE retired IS NOT NULL").fetchone()[0] > 256
    conn.close()
    return path


def queue(entry: dict[str, Any], *, sender_key: bytes | None = None, secured: bool = False) -> QueueRecord:
    return QueueRecord(
        h(entry["recipient_id"]), h(entry["sender_id"]), h(entry["recipient_key"]), h(entry["queue_key"]),
        sender_key, secured,
    )  # fmt: skip


@pytest.mark.asyncio
async def test_relay_database_of_schema_3_opens_with_every_queue_and_message(old_database: Path) -> None:
    locked, secured, busy = DATA["open_locked"], DATA["secured_with_notice"], DATA["busy"]
    store = await SqliteStore.open(old_database)
    try:
        a = queue(locked, sender_key=h(locked["sender_key"]))
        b = queue(secured, secured=True)
        c = queue(busy)
        for record in (a, b, c):
            assert await store.queue_by_recipient(record.recipient_id) == record
            assert await store.queue_by_sender(record.sender_id) == record
        waiting = locked["waiting"]
        assert await store.first_message(a.recipient_id) == StoredMessage(
            h(waiting["msg_id"]), waiting["received_at"], False, h(waiting["body"])
        )
        notice = secured["notice"]
        assert await store.first_message(b.recipient_id) == StoredMessage(
            h(notice["msg_id"]), notice["received_at"], False, b"", True
        )

        # The retries it remembered are still duplicates: the waiting message's, the two
        # acknowledged ones', and the busy queue's newest 256; its 44 oldest were forgotten.
        async def retry(record: QueueRecord, send_id: str) -> PutResult:
            message = StoredMessage(os.urandom(24), 1_800_000_100, False, b"retry")
            return await store.put_message(record.sender_id, h(send_id), message, quota=QUOTA)

        for send_id in [locked["waiting_send_id"], *locked["acknowledged_send_ids"]]:
            assert await retry(a, send_id) is PutResult.DUPLICATE
        acknowledged = busy["acknowledged_send_ids"]
        assert [await retry(c, s) for s in acknowledged[-256:]] == [PutResult.DUPLICATE] * 256
        assert await retry(c, acknowledged[-257]) is PutResult.STORED
        assert await retry(c, acknowledged[0]) is PutResult.STORED
    finally:
        await store.close()

    with sqlite3.connect(old_database) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (4,)
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"queues", "messages"}
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # No trace of the old numbering: every queue's ring is full-size, no deletion count.
        rings = conn.execute("SELECT length(send_ids) FROM queues").fetchall()
        assert rings == [(4096,)] * 3
        qseqs = [n for (n,) in conn.execute("SELECT qseq FROM messages")]
    conn.close()
    # Numbers start at random (below 2^29): not the old 1, 2, 3 (a 2^-27 chance of a false alarm).
    assert min(qseqs) > 3
    raw = old_database.read_bytes()
    assert b"send_ids_by_retirement" not in raw
    assert b"messages_by_age" not in raw


@pytest.mark.asyncio
async def test_migrated_relay_database_reopens_as_it_is(old_database: Path) -> None:
    store = await SqliteStore.open(old_database)
    await store.close()
    first = old_database.read_bytes()
    store = await SqliteStore.open(old_database)
    try:
        locked = DATA["open_locked"]
        assert await store.queue_by_recipient(h(locked["recipient_id"])) == queue(
            locked, sender_key=h(locked["sender_key"])
        )
    finally:
        await store.close()
    assert old_database.read_bytes() == first  # nothing left to migrate: no write
