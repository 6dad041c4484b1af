"""The app's vault records (docs/protocol.md §17.4): layout, round trips, corruption, repr."""

from __future__ import annotations

from typing import Any

import pytest

from burnerkit.app.addresses import QueueAddress
from burnerkit.app.queues import orphan_bytes as _orphan_bytes
from burnerkit.app.queues import orphan_owner as _orphan_from_bytes
from burnerkit.app.records import (
    ALERT_KINDS,
    CONTACT_ID_SIZE,
    Alert,
    Contact,
    EventKind,
    EventRecord,
    Invite,
    LastDelivery,
    Orphan,
    OutboxEntry,
    PendingDelivery,
    Profile,
    StoredMessage,
    replace,
)
from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import VaultCorruptedError
from burnerkit.relay.client import QueueCredentials

T0 = 1_800_000_000
URL = "wss://relay.example.org"
CONTACT_ID = bytes(range(16))
SECRET_SESSION = b"SESSION-SECRET-STATE"
SECRET_PENDING = b"PENDING-SECRET-STATE"
SECRET_ENVELOPE = b"ENVELOPE-CIPHERTEXT"
SECRET_TEXT = "the text nobody may log"
IDENTITY = b"I" * 64
SENDER_KEY = b"K" * 32


def credentials(seed: bytes = b"creds") -> QueueCredentials:
    rng = DeterministicRandom(seed)
    return QueueCredentials(
        recipient_id=b"R" * 24,
        sender_id=b"S" * 24,
        recipient_key=SigningKey.generate(rng),
        queue_key=b"K" * 32,
    )


PEER = QueueAddress("ws://peer.example:8080", b"P" * 24)


def records() -> dict[str, Any]:
    message = StoredMessage(
        message_id=b"M" * 8,
        contact_id=CONTACT_ID,
        outgoing=False,
        seq=2**64 - 1,
        sent_at=T0 * 1000,
        received_at=T0,
        text=SECRET_TEXT,
        expires_at=T0 + 60,
        burn_on_read=True,
        shown=True,
        delivered=False,
    )
    return {
        "profile": Profile("trip-1", URL, T0, T0 + 86400, T0 + 5),
        "contact": Contact(
            contact_id=CONTACT_ID,
            alias="alice",
            created_at=T0,
            queue_relay=URL,
            queue=credentials(),
            peer=PEER,
            session=SECRET_SESSION,
            identity=IDENTITY,
            verified=True,
            key_changed=True,
            timer=30,
            burn_on_read=True,
            sender_key=SENDER_KEY,
        ),
        "contact_defaults": Contact(CONTACT_ID, "b", 0, URL, credentials(), PEER, b"", b""),
        "contact_moving": Contact(
            CONTACT_ID,
            "c",
            0,
            URL,
            credentials(),
            PEER,
            b"",
            b"",
            next_queue_relay=PEER.relay_url,
            next_queue=credentials(b"next"),
        ),
        "invite": Invite(b"V" * 16, "contact-1", T0, T0 + 3600, URL, credentials(), SECRET_PENDING, True),
        "message": message,
        "message_defaults": StoredMessage(b"m" * 8, CONTACT_ID, True, 0, 0, 0, ""),
        "outbox": OutboxEntry(b"O" * 16, CONTACT_ID, PEER, SECRET_ENVELOPE, T0 * 1000, message.key),
        "outbox_no_message": OutboxEntry(b"o" * 16, CONTACT_ID, PEER, SECRET_ENVELOPE, 0, b""),
        "event": EventRecord(b"E" * 16, CONTACT_ID, T0, EventKind.FORK, "at 3: \N{WARNING SIGN}"),
        "event_no_contact": EventRecord(b"e" * 16, b"", T0, EventKind.DISPLACED, ""),
        "alert": Alert(frozenset({EventKind.FORK, EventKind.COUNTER_BOMB}), T0, T0 + 9),
        "pending": PendingDelivery(b"R" * 24, 7, T0, SECRET_ENVELOPE),
        "delivery": LastDelivery(b"D" * 24),
    }


RECORDS = records()
NAMES = sorted(RECORDS)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip(name: str) -> None:
    record = RECORDS[name]
    data = record.to_bytes()
    assert data[0] == type(record).VERSION
    assert type(record).from_bytes(data) == record
    assert type(record).from_bytes(bytearray(data)) == record


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_event_kind_round_trips(kind: EventKind) -> None:
    record = EventRecord(b"e" * 16, CONTACT_ID, T0, kind, kind.name)
    assert EventRecord.from_bytes(record.to_bytes()) == record


def test_profile_layout() -> None:
    data = Profile("ab", "ws://c", 1, 2, 3).to_bytes()
    assert data == (
        b"\x01" + b"\x00\x02ab" + b"\x00\x06ws://c"
        + (1).to_bytes(8, "big") + (2).to_bytes(8, "big") + (3).to_bytes(8, "big")
    )  # fmt: skip


def test_contact_layout() -> None:
    contact = RECORDS["contact"]
    data = contact.to_bytes()
    queue, peer = contact.queue.to_bytes(), contact.peer.to_bytes()
    expected = (
        b"\x04" + CONTACT_ID + b"\x00\x05alice" + T0.to_bytes(8, "big") + len(URL).to_bytes(2, "big")
        + URL.encode() + b"\x00\x71" + queue + len(peer).to_bytes(2, "big") + peer
        + len(SECRET_SESSION).to_bytes(4, "big") + SECRET_SESSION + b"\x00\x40" + IDENTITY
        + b"\x01\x01" + (30).to_bytes(4, "big") + b"\x01" + b"\x00\x20" + SENDER_KEY
        + b"\x00\x00" + b"\x00\x00"  # no move under way: no next relay, no next queue
        + b"\x00" + bytes(8) + b"\x00"  # not burned; no expiry told either way
    )  # fmt: skip
    assert data == expected
    assert len(queue) == 113
    # Layout 3 (not burned, no expiry) still loads.
    assert Contact.from_bytes(b"\x03" + data[1:-10]) == contact
    # Layout 2 (no next queue) still loads, as a contact with no move under way.
    assert Contact.from_bytes(b"\x02" + data[1:-14]) == contact
    # Layout 1 (no sender key either) still loads, as a contact whose SENDs go unsigned.
    legacy = Contact.from_bytes(b"\x01" + data[1:-48])
    assert legacy == replace(contact, sender_key=b"")


def test_contact_layout_with_a_next_queue() -> None:
    contact = RECORDS["contact_moving"]
    data = contact.to_bytes()
    url, creds = PEER.relay_url.encode(), credentials(b"next").to_bytes()
    assert data.endswith(len(url).to_bytes(2, "big") + url + b"\x00\x71" + creds + bytes(10))
    with pytest.raises(ValueError, match="next queue"):
        replace(contact, next_queue=None)


def test_alert_kinds_are_bits_in_a_fixed_order() -> None:
    data = RECORDS["alert"].to_bytes()
    bits = (1 << ALERT_KINDS.index(EventKind.FORK)) | (1 << ALERT_KINDS.index(EventKind.COUNTER_BOMB))
    assert data == b"\x01" + bits.to_bytes(2, "big") + T0.to_bytes(8, "big") + (T0 + 9).to_bytes(8, "big")
    for bad in (0, 1 << len(ALERT_KINDS)):
        with pytest.raises(VaultCorruptedError):
            Alert.from_bytes(b"\x01" + bad.to_bytes(2, "big") + data[3:])
    with pytest.raises(ValueError, match="alert kinds"):
        Alert(frozenset({EventKind.GAP}), T0, T0)


def test_message_key_is_contact_id_then_message_id() -> None:
    message = RECORDS["message"]
    assert message.key == CONTACT_ID + b"M" * 8
    assert len(message.key) == CONTACT_ID_SIZE + 8


@pytest.mark.parametrize("name", NAMES)
def test_every_truncation_is_corruption(name: str) -> None:
    record = RECORDS[name]
    data = record.to_bytes()
    for end in range(len(data)):
        with pytest.raises(VaultCorruptedError, match="does not parse"):
            type(record).from_bytes(data[:end])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("extra", [b"\x00", b"\x01\x02\x03"])
def test_trailing_bytes_are_corruption(name: str, extra: bytes) -> None:
    record = RECORDS[name]
    with pytest.raises(VaultCorruptedError):
        type(record).from_bytes(record.to_bytes() + extra)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("version", [0, 9, 0xFF])
def test_unknown_version_is_corruption(name: str, version: int) -> None:
    record = RECORDS[name]
    data = record.to_bytes()
    with pytest.raises(VaultCorruptedError):
        type(record).from_bytes(bytes([version]) + data[1:])


def test_a_boolean_other_than_0_or_1_is_corruption() -> None:
    data = RECORDS["message"].to_bytes()
    for last in (2, 0xFF):
        with pytest.raises(VaultCorruptedError):
            StoredMessage.from_bytes(data[:-1] + bytes([last]))


def test_an_unknown_event_kind_is_corruption() -> None:
    data = EventRecord(b"e" * 16, b"", T0, EventKind.GAP, "d").to_bytes()
    assert b"\x00\x03gap" in data
    with pytest.raises(VaultCorruptedError):
        EventRecord.from_bytes(data.replace(b"\x00\x03gap", b"\x00\x03gas"))


def test_bad_utf8_is_corruption() -> None:
    data = Profile("ab", URL, 1, 2, 3).to_bytes()
    with pytest.raises(VaultCorruptedError):
        Profile.from_bytes(data.replace(b"\x00\x02ab", b"\x00\x02\xff\xfe"))


def test_damaged_queue_credentials_are_corruption() -> None:
    contact = RECORDS["contact"]
    queue = contact.queue.to_bytes()
    damaged = contact.to_bytes().replace(queue, b"\x02" + queue[1:])  # unknown credentials version
    with pytest.raises(VaultCorruptedError):
        Contact.from_bytes(damaged)


@pytest.mark.parametrize("name", ["contact", "outbox"])
def test_damaged_peer_address_is_corruption(name: str) -> None:
    record = RECORDS[name]
    peer = PEER.to_bytes()
    damaged = record.to_bytes().replace(peer, b"\x02" + peer[1:])  # unknown address version
    with pytest.raises(VaultCorruptedError):
        type(record).from_bytes(damaged)


def test_an_id_of_the_wrong_size_is_refused_at_construction() -> None:
    with pytest.raises(ValueError):
        replace(RECORDS["contact"], contact_id=bytes(15))


# -- the orphan record (app/messenger.py) ---------------------------------------------------


def test_orphan_record_is_a_versioned_url_and_credentials() -> None:
    creds = credentials()
    data = _orphan_bytes(URL, creds)
    assert data == Orphan(URL, creds).to_bytes()
    fields = len(URL).to_bytes(2, "big") + URL.encode() + (113).to_bytes(2, "big") + creds.to_bytes()
    assert data == b"\x03" + fields + b"\x00\x00" + bytes(8)
    owner = _orphan_from_bytes(data)
    assert (owner.kind, owner.key, owner.relay_url, owner.creds) == ("orphan", b"R" * 24, URL, creds)
    # A queue a relay move retired names its contact; a used short link's is kept until a time.
    retired = _orphan_bytes(URL, creds, CONTACT_ID)
    assert retired == b"\x03" + fields + b"\x00\x10" + CONTACT_ID + bytes(8)
    assert Orphan.from_bytes(retired) == Orphan(URL, creds, CONTACT_ID)
    kept = _orphan_bytes(URL, creds, keep_until=1_800_000_000)
    assert kept == b"\x03" + fields + b"\x00\x00" + (1_800_000_000).to_bytes(8, "big")
    assert Orphan.from_bytes(kept) == Orphan(URL, creds, keep_until=1_800_000_000)
    # Layout 2 (no keep_until) and layout 1 (no contact either) still load.
    assert Orphan.from_bytes(b"\x02" + fields + b"\x00\x10" + CONTACT_ID) == Orphan(URL, creds, CONTACT_ID)
    assert Orphan.from_bytes(b"\x01" + fields) == Orphan(URL, creds)


@pytest.mark.parametrize("damage", ["truncated", "short", "version", "credentials_version"])
def test_a_damaged_orphan_record_is_corruption(damage: str) -> None:
    data = _orphan_bytes(URL, credentials())
    damaged = {
        "truncated": data[:-1],
        "short": data[:100],
        "version": b"\x04" + data[1:],
        "credentials_version": data[:-123] + b"\x02" + data[-122:],
    }[damage]
    with pytest.raises(VaultCorruptedError):
        _orphan_from_bytes(damaged)


# -- repr ------------------------------------------------------------------------------------


def test_contact_repr_hides_credentials_session_and_identity() -> None:
    contact = RECORDS["contact"]
    text = repr(contact)
    assert "alice" in text
    assert "SESSION-SECRET" not in text
    assert "IIII" not in text
    assert "RRRR" not in text
    assert "SSSS" not in text
    assert "KKKK" not in text
    assert "QueueCredentials" not in text
    assert "PPPP" not in text  # the peer's sender id (QueueAddress's own repr hides it)


def test_invite_repr_hides_credentials_and_pending_state() -> None:
    text = repr(RECORDS["invite"])
    assert "contact-1" in text
    assert "PENDING-SECRET" not in text
    assert "RRRR" not in text
    assert "KKKK" not in text


def test_outbox_repr_hides_the_envelope() -> None:
    text = repr(RECORDS["outbox"])
    assert "ENVELOPE" not in text
    assert "PPPP" not in text


def test_stored_message_repr_hides_the_text() -> None:
    message = RECORDS["message"]
    assert SECRET_TEXT not in repr(message)
    assert SECRET_TEXT not in str(message)
