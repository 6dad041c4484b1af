"""The app's codecs fuzzed with hypothesis (docs/protocol.md §17).

Round trips: every encoder's output decodes to the same value, and whatever decodes is
canonical (encoding it again gives the same bytes). Contracts for bytes from elsewhere:

* ``QueueAddress.from_bytes``, ``decode_content`` (peer bytes): a value or
  ``RemoteProtocolError``;
* ``Profile``/``Contact``/``Invite``/``StoredMessage``/``OutboxEntry``/``EventRecord``
  ``.from_bytes`` (vault bytes): a value or ``VaultCorruptedError``; a damaged peer address
  inside a contact or an outbox entry still surfaces as ``RemoteProtocolError``
  (``tests/unit/app/test_records.py::test_damaged_peer_address_is_corruption``, xfail);
* ``decode_link`` (typed text): bytes or ``UsageError``; ``parse_duration``: a positive
  number of seconds or ``UsageError``; ``check_name``: the name or ``UsageError``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from burnerkit.app.addresses import LINK_PREFIX, MAX_URL_SIZE, QueueAddress, decode_link, encode_link
from burnerkit.app.content import MAX_TIMER, MIN_TIMER, Hello, Text, decode_content
from burnerkit.app.durations import format_duration, parse_duration
from burnerkit.app.home import check_name
from burnerkit.app.records import (
    Contact,
    EventKind,
    EventRecord,
    Invite,
    OutboxEntry,
    Profile,
    StoredMessage,
)
from burnerkit.crypto.keys import SigningKey
from burnerkit.errors import RemoteProtocolError, UsageError, VaultCorruptedError
from burnerkit.relay.client import QueueCredentials
from tests.property.test_codec_roundtrip import Mutation, damaged, mutations

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies ------------------------------------------------------------------------------

u32s = st.integers(0, 2**32 - 1)
u64s = st.integers(0, 2**64 - 1)
short_text = st.text(max_size=40)
relay_urls = st.builds(lambda scheme, rest: scheme + rest, st.sampled_from(["ws://", "wss://"]), short_text)
long_relay_urls = st.integers(0, MAX_URL_SIZE - 6).map(lambda n: "wss://" + "r" * n)
addresses = st.builds(
    QueueAddress, st.one_of(relay_urls, long_relay_urls), st.binary(min_size=24, max_size=24)
)
timers = st.one_of(st.just(0), st.integers(MIN_TIMER, MAX_TIMER))
texts = st.builds(Text, st.text(max_size=200), timers, st.booleans())
contents = st.one_of(texts, st.builds(Hello, addresses))


def _credentials(ids: bytes, seed: bytes, queue_key: bytes) -> QueueCredentials:
    return QueueCredentials(ids[:24], ids[24:], SigningKey.from_bytes(seed), queue_key)


credentials = st.builds(
    _credentials,
    st.binary(min_size=48, max_size=48),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
)
ids16 = st.binary(min_size=16, max_size=16)

profiles = st.builds(Profile, short_text, short_text, u64s, u64s, u64s)
contacts = st.builds(
    Contact,
    contact_id=ids16,
    alias=short_text,
    created_at=u64s,
    queue_relay=short_text,
    queue=credentials,
    peer=addresses,
    session=st.binary(max_size=300),
    identity=st.binary(max_size=80),
    verified=st.booleans(),
    key_changed=st.booleans(),
    timer=u32s,
    burn_on_read=st.booleans(),
)
invites = st.builds(
    Invite,
    invite_id=ids16,
    alias=short_text,
    created_at=u64s,
    expires_at=u64s,
    queue_relay=short_text,
    queue=credentials,
    pending=st.binary(max_size=300),
    verified=st.booleans(),
)
messages = st.builds(
    StoredMessage,
    message_id=st.binary(min_size=8, max_size=8),
    contact_id=ids16,
    outgoing=st.booleans(),
    seq=u64s,
    sent_at=u64s,
    received_at=u64s,
    text=st.text(max_size=200),
    expires_at=u64s,
    burn_on_read=st.booleans(),
    shown=st.booleans(),
    delivered=st.booleans(),
)
outbox_entries = st.builds(
    OutboxEntry,
    send_id=ids16,
    contact_id=ids16,
    peer=addresses,
    envelope=st.binary(max_size=300),
    created_at=u64s,
    message_key=st.one_of(st.just(b""), st.binary(min_size=24, max_size=24)),
)
events = st.builds(
    EventRecord,
    ids16,
    st.one_of(st.just(b""), ids16),
    u64s,
    st.sampled_from(list(EventKind)),
    short_text,
)
records = st.one_of(profiles, contacts, invites, messages, outbox_entries, events)
RECORD_TYPES: list[Any] = [Profile, Contact, Invite, StoredMessage, OutboxEntry, EventRecord]


def record_errors(kind: Any) -> tuple[type[Exception], ...]:
    """What decoding a damaged record of ``kind`` may raise (see the module docstring)."""
    if kind in (Contact, OutboxEntry):
        return (VaultCorruptedError, RemoteProtocolError)
    return (VaultCorruptedError,)


# -- round trips -----------------------------------------------------------------------------


@FUZZ
@given(address=addresses)
def test_address_round_trip(address: QueueAddress) -> None:
    data = address.to_bytes()
    assert len(data) == 26 + len(address.relay_url.encode())
    assert QueueAddress.from_bytes(data) == address


@FUZZ
@given(content=contents)
def test_content_round_trip(content: Text | Hello) -> None:
    assert decode_content(content.encode()) == content


@FUZZ
@given(record=records)
def test_record_round_trip(record: Any) -> None:
    assert type(record).from_bytes(record.to_bytes()) == record


@FUZZ
@given(invitation=st.binary(min_size=1, max_size=2000), cuts=st.lists(st.integers(0, 3000), max_size=6))
def test_link_round_trip_with_whitespace(invitation: bytes, cuts: list[int]) -> None:
    link = encode_link(invitation)
    assert link.startswith(LINK_PREFIX)
    assert decode_link(link) == invitation
    # Line breaks and spaces anywhere, as a mail client or a terminal might add them.
    for cut in sorted({c % (len(link) + 1) for c in cuts}, reverse=True):
        link = link[:cut] + "\n " + link[cut:]
    assert decode_link(link) == invitation


@FUZZ
@given(seconds=st.integers(1, 10**9))
def test_duration_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


# -- arbitrary and damaged bytes -------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=300))
def test_address_decode_any_bytes(data: bytes) -> None:
    try:
        address = QueueAddress.from_bytes(data)
    except RemoteProtocolError:
        return
    assert address.to_bytes() == data


@FUZZ
@given(head=st.sampled_from([b"", b"\x01", b"\x02", b"\x02\x00", b"\x02\x01"]), data=st.binary(max_size=300))
def test_content_decode_any_bytes(head: bytes, data: bytes) -> None:
    try:
        content = decode_content(head + data)
    except RemoteProtocolError:
        return
    assert content.encode() == head + data


@FUZZ
@given(content=contents, mutation=mutations)
def test_content_decode_damaged_bytes(content: Text | Hello, mutation: Mutation) -> None:
    data = damaged(content.encode(), mutation)
    try:
        decoded = decode_content(data)
    except RemoteProtocolError:
        return
    assert decoded.encode() == data


@FUZZ
@given(kind=st.sampled_from(RECORD_TYPES), data=st.binary(max_size=400), versioned=st.booleans())
def test_record_decode_any_bytes(kind: Any, data: bytes, versioned: bool) -> None:
    data = b"\x01" + data if versioned else data
    try:
        record = kind.from_bytes(data)
    except record_errors(kind):
        return
    assert record.to_bytes() == data


@FUZZ
@given(record=records, mutation=mutations)
def test_record_decode_damaged_bytes(record: Any, mutation: Mutation) -> None:
    kind = type(record)
    data = damaged(record.to_bytes(), mutation)
    try:
        decoded = kind.from_bytes(data)
    except record_errors(kind):
        return
    assert decoded.to_bytes() == data


@FUZZ
@given(record=records, other=st.sampled_from(RECORD_TYPES))
def test_record_read_as_another_kind(record: Any, other: Any) -> None:
    assume(other is not type(record))
    try:
        decoded = other.from_bytes(record.to_bytes())
    except record_errors(other):
        return
    assert decoded.to_bytes() == record.to_bytes()


# -- typed text ------------------------------------------------------------------------------


@FUZZ
@given(text=st.one_of(st.text(max_size=60), st.text(max_size=60).map(lambda t: LINK_PREFIX + t)))
def test_decode_link_any_text(text: str) -> None:
    try:
        data = decode_link(text)
    except UsageError:
        return
    assert encode_link(data) == "".join(text.split())  # only a canonical link decodes


@FUZZ
@given(text=st.one_of(st.text(max_size=20), st.text(alphabet="0123456789smhdwx -+.", max_size=20)))
def test_parse_duration_any_text(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except UsageError:
        return
    assert seconds > 0


@FUZZ
@given(name=st.one_of(st.text(max_size=40), st.text(alphabet="abc019_-./A \n", max_size=40)))
def test_check_name_any_text(name: str) -> None:
    try:
        assert check_name(name) == name
    except UsageError:
        return
    assert 1 <= len(name) <= 32
    assert "/" not in name
    assert "\\" not in name
    assert "." not in name
    assert name == name.lower()
    assert name.isascii()
