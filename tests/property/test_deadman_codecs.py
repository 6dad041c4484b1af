"""The dead-man switch's codecs fuzzed with hypothesis (docs/protocol.md §17.8).

Round trips for the Heartbeat content and the ``checkin`` and ``liveness`` records;
peer bytes starting with the Heartbeat's kind decode to a Heartbeat or raise
``RemoteProtocolError``, and what decodes is canonical; vault bytes decode to a record
or raise ``VaultCorruptedError``.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from burnerkit.app.checkin import CheckIn
from burnerkit.app.content import MIN_CHECK_IN, Heartbeat, decode_content
from burnerkit.app.liveness import PeerLiveness
from burnerkit.errors import RemoteProtocolError, VaultCorruptedError

windows = st.integers(MIN_CHECK_IN, 0xFFFFFFFF)
times = st.integers(0, 2**64 - 1)


@given(windows)
def test_heartbeat_round_trip(window: int) -> None:
    data = Heartbeat(window).encode()
    assert len(data) == 5
    assert decode_content(data) == Heartbeat(window)


@given(st.binary(max_size=12))
def test_heartbeat_kind_with_any_bytes_decodes_canonically_or_is_refused(rest: bytes) -> None:
    data = b"\x07" + rest
    try:
        content = decode_content(data)
    except RemoteProtocolError:
        return
    assert isinstance(content, Heartbeat)
    assert content.encode() == data


@given(windows, times, times)
def test_checkin_record_round_trip(window: int, checked_in_at: int, heartbeat_at: int) -> None:
    record = CheckIn(window, checked_in_at, heartbeat_at)
    assert CheckIn.from_bytes(record.to_bytes()) == record


@given(st.binary(min_size=16, max_size=16), windows, times, times)
def test_liveness_record_round_trip(contact_id: bytes, window: int, heard_at: int, silent_at: int) -> None:
    record = PeerLiveness(contact_id, window, heard_at, silent_at)
    assert PeerLiveness.from_bytes(record.to_bytes()) == record


@given(st.binary(max_size=48))
def test_records_from_any_bytes_parse_or_are_corruption(data: bytes) -> None:
    for kind in (CheckIn, PeerLiveness):
        try:
            record = kind.from_bytes(data)
        except VaultCorruptedError:
            continue
        assert record.to_bytes() == data
