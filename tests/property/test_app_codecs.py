"""The app's codecs fuzzed with hypothesis (docs/protocol.md §17).

Round trips: every encoder's output decodes to the same value, and whatever decodes is
canonical (encoding it again gives the same bytes). Contracts for bytes from elsewhere:

* ``QueueAddress.from_bytes``, ``decode_content`` (peer bytes): a value or
  ``RemoteProtocolError``;
* ``Profile``/``Contact``/``Invite``/``StoredMessage``/``OutboxEntry``/``EventRecord``
  ``.from_bytes`` (vault bytes): a value or ``VaultCorruptedError``; a damaged peer address
  inside a contact or an outbox entry still surfaces as ``RemoteProtocolError``
  (``tests/unit/app/test_records.py::test_damaged_peer_address_is_corruption``, xfail);
* ``decode_link``, ``parse_link`` (typed text): bytes, a ``ShortLink`` or ``UsageError``,
  and only a canonical link parses (a short link: one text per value, §17.2); ``parse_duration``: a positive
  number of seconds or ``UsageError``; ``check_name``: the name or ``UsageError``.
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from burnerkit.app.addresses import (
    LINK_PREFIX,
    MAX_URL_SIZE,
    QueueAddress,
    decode_link,
    encode_link,
    parse_link,
)
from burnerkit.app.content import MAX_TIMER, MIN_TIMER, BurnNotice, Hello, Text, decode_content
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
from burnerkit.app.shortlink import SHORT_LINK_PREFIX, ShortLink
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
expiries = st.one_of(st.just(0), st.integers(1, 2**64 - 1))
texts = st.builds(Text, st.text(max_size=200), timers, st.booleans(), expiries)
notices = st.builds(BurnNotice, u64s, st.booleans(), st.binary(min_size=64, max_size=64))
contents = st.one_of(texts, st.builds(Hello, addresses, expiries), notices)


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
    burned=st.booleans(),
    peer_expires_at=u64s,
    expiry_told=st.booleans(),
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
    link_queue=st.none() | credentials,
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
def test_content_round_trip(content: Text | Hello | BurnNotice) -> None:
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


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
pins = st.binary(min_size=32, max_size=32).map(
    lambda pin: "#sha256=" + base64.urlsafe_b64encode(pin).rstrip(b"=").decode()
)
short_links = st.builds(
    ShortLink,
    st.builds(
        lambda url, pin: url + pin,
        st.one_of(relay_urls, long_relay_urls).filter(lambda u: len(u.encode()) <= MAX_URL_SIZE - 51),
        st.one_of(st.just(""), pins, st.just("#sha256=short")),
    ).filter(lambda u: u not in ("ws://", "wss://") and not u.startswith(("ws://#", "wss://#"))),
    st.binary(min_size=24, max_size=24),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
)


@FUZZ
@given(link=short_links, cuts=st.lists(st.integers(0, 600), max_size=4))
def test_short_link_round_trip_with_whitespace(link: ShortLink, cuts: list[int]) -> None:
    text = link.to_text()
    assert text.startswith(SHORT_LINK_PREFIX)
    for cut in sorted({c % (len(text) + 1) for c in cuts}, reverse=True):
        text = text[:cut] + "\n " + text[cut:]
    parsed = parse_link(text)
    assert isinstance(parsed, ShortLink)
    assert (parsed.relay_url, parsed.recipient_id, parsed.server_dh, parsed.secret) == (
        link.relay_url,
        link.recipient_id,
        link.server_dh,
        link.secret,
    )


@FUZZ
@given(link=short_links, mutation=mutations)
def test_damaged_short_link_is_refused_or_canonical(link: ShortLink, mutation: Mutation) -> None:
    payload = damaged(link.payload(), mutation)
    text = SHORT_LINK_PREFIX + base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    try:
        parsed = ShortLink.from_text(text)
    except UsageError:
        return
    assert parsed.payload() == payload  # whatever parses is the one encoding of its value


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
@given(
    head=st.sampled_from(
        [b"", b"\x01", b"\x02", b"\x02\x00", b"\x02\x01", b"\x02\x02", b"\x05", b"\x05\x01"]
    ),
    data=st.binary(max_size=300),
)
def test_content_decode_any_bytes(head: bytes, data: bytes) -> None:
    try:
        content = decode_content(head + data)
    except RemoteProtocolError:
        return
    assert content.encode() == head + data


@FUZZ
@given(content=contents, mutation=mutations)
def test_content_decode_damaged_bytes(content: Text | Hello | BurnNotice, mutation: Mutation) -> None:
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
@given(
    text=st.one_of(
        st.text(max_size=60),
        st.text(max_size=200).map(lambda t: SHORT_LINK_PREFIX + t),
        st.text(alphabet=_B64URL, max_size=300).map(lambda t: SHORT_LINK_PREFIX + t),
    )
)
def test_parse_short_link_any_text(text: str) -> None:
    try:
        parsed = parse_link(text)
    except UsageError:
        return
    assert isinstance(parsed, ShortLink)
    assert parsed.to_text() == "".join(text.split())  # only a canonical link parses


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
