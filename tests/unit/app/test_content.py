"""The message content codec (docs/protocol.md §17.3)."""

from __future__ import annotations

import struct

import pytest

from burnerkit.app.addresses import QueueAddress
from burnerkit.app.content import (
    MAX_TEXT_SIZE,
    MAX_TIMER,
    MIN_TIMER,
    BurnNotice,
    Hello,
    Move,
    MoveDone,
    Text,
    decode_content,
)
from burnerkit.errors import RemoteProtocolError
from burnerkit.protocol.envelope import MAX_CONTENT_SIZE

ADDRESS = QueueAddress("wss://relay.example.org", bytes(range(24)))


def text_bytes(text: bytes, timer: int = 0, flags: int = 0) -> bytes:
    return struct.pack(">BBI", 2, flags, timer) + text


def test_limits() -> None:
    assert MIN_TIMER == 30
    assert MAX_TIMER == 4 * 7 * 24 * 3600 == 2_419_200
    assert MAX_TEXT_SIZE == MAX_CONTENT_SIZE - 6 == 12_182


def test_hello_round_trip_and_layout() -> None:
    hello = Hello(ADDRESS)
    assert hello.encode() == b"\x01" + ADDRESS.to_bytes()
    assert decode_content(hello.encode()) == hello


def test_move_and_move_done_round_trip_and_layout() -> None:
    move = Move(ADDRESS)
    assert move.encode() == b"\x03" + ADDRESS.to_bytes()
    assert decode_content(move.encode()) == move
    assert MoveDone().encode() == b"\x04"
    assert decode_content(b"\x04") == MoveDone()


def test_a_move_whose_address_does_not_parse_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="malformed queue address"):
        decode_content(Move(ADDRESS).encode()[:-1])
    with pytest.raises(RemoteProtocolError, match="malformed queue address"):
        decode_content(b"\x03")


def test_a_move_done_with_anything_after_it_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="malformed message content"):
        decode_content(b"\x04\x00")


@pytest.mark.parametrize(
    "text", [Text(""), Text("hi"), Text("\N{CHECK MARK} ok", timer=30, burn_on_read=True),
             Text("x", timer=MAX_TIMER), Text("a" * MAX_TEXT_SIZE)],
)  # fmt: skip
def test_text_round_trip(text: Text) -> None:
    assert decode_content(text.encode()) == text


def test_text_layout() -> None:
    assert Text("hi", 3600, True).encode() == b"\x02\x01\x00\x00\x0e\x10hi"
    assert Text("hi").encode() == b"\x02\x00\x00\x00\x00\x00hi"


@pytest.mark.parametrize("timer", [-1, 1, MIN_TIMER - 1, MAX_TIMER + 1, 2**32 - 1])
def test_timer_out_of_bounds_is_refused(timer: int) -> None:
    with pytest.raises(ValueError, match="timer"):
        Text("hi", timer)
    if 0 <= timer < 2**32:
        with pytest.raises(RemoteProtocolError):
            decode_content(text_bytes(b"hi", timer))


@pytest.mark.parametrize("timer", [0, MIN_TIMER, 3600, MAX_TIMER])
def test_timer_in_bounds_is_accepted(timer: int) -> None:
    assert decode_content(text_bytes(b"hi", timer)) == Text("hi", timer)


def test_text_size_limit_counts_utf8_bytes() -> None:
    Text("a" * MAX_TEXT_SIZE)
    with pytest.raises(ValueError, match="at most"):
        Text("a" * (MAX_TEXT_SIZE + 1))
    with pytest.raises(ValueError, match="at most"):
        Text("\N{CHECK MARK}" * (MAX_TEXT_SIZE // 3 + 1))  # 3 bytes each
    with pytest.raises(RemoteProtocolError):
        decode_content(text_bytes(b"a" * (MAX_TEXT_SIZE + 1)))


@pytest.mark.parametrize("flags", [0x04, 0x05, 0x80, 0xFF])
def test_unknown_text_flags_are_refused(flags: int) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed message content"):
        decode_content(text_bytes(b"hi", flags=flags))


@pytest.mark.parametrize("kind", [0x00, 0x06, 0x07, 0x10, 0xFF])
def test_unknown_kind_is_refused(kind: int) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed message content"):
        decode_content(bytes([kind]) + b"hello")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x02", b"\x02\x00", b"\x02\x00\x00\x00\x00", text_bytes(b"\xff"), text_bytes(b"\xc3"),
     b"\x01", b"\x01" + ADDRESS.to_bytes() + b"\x00", b"\x01" + ADDRESS.to_bytes()[:-1]],
)  # fmt: skip
def test_malformed_content_is_refused(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_content(data)


def test_text_repr_hides_the_text() -> None:
    assert "secret words" not in repr(Text("secret words", 60))


def test_hello_and_text_carry_the_senders_expiry() -> None:
    expiry = (1_900_000_000).to_bytes(8, "big")
    assert Hello(ADDRESS, 1_900_000_000).encode() == b"\x01" + ADDRESS.to_bytes() + expiry
    assert decode_content(b"\x01" + ADDRESS.to_bytes() + expiry) == Hello(ADDRESS, 1_900_000_000)
    assert Hello(ADDRESS).encode() == b"\x01" + ADDRESS.to_bytes()  # 0: left out, as before
    assert (
        Text("hi", 30, True, 1_900_000_000).encode() == b"\x02\x03" + (30).to_bytes(4, "big") + expiry + b"hi"
    )
    assert decode_content(Text("hi", 0, False, 5).encode()) == Text("hi", 0, False, 5)
    # The 8 bytes come out of the text's room.
    with pytest.raises(ValueError, match="at most"):
        Text("a" * MAX_TEXT_SIZE, expires_at=5)


@pytest.mark.parametrize(
    "data",
    [b"\x01" + ADDRESS.to_bytes() + bytes(8),  # an expiry of 0 is left out, never written
     b"\x01" + ADDRESS.to_bytes() + b"\x00" * 7 + b"\x01" + b"\x00",  # a tail of 9
     text_bytes(bytes(8) + b"hi", flags=0x02),
     text_bytes(b"\x00" * 7, flags=0x02)],
)  # fmt: skip
def test_expiry_of_zero_or_cut_short_is_refused(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_content(data)


def test_burn_notice_round_trip_and_layout() -> None:
    notice = BurnNotice(1_900_000_000, True, bytes(range(64)))
    data = notice.encode()
    assert data == b"\x05\x01" + (1_900_000_000).to_bytes(8, "big") + bytes(range(64))
    assert notice.signed_body() == data[:10] == BurnNotice.body(1_900_000_000, True)
    assert decode_content(data) == notice
    assert repr(notice) == "BurnNotice(burned_at=1900000000, erase=True)"


@pytest.mark.parametrize(
    "data",
    [b"\x05", b"\x05\x00" + bytes(8) + bytes(63), b"\x05\x00" + bytes(8) + bytes(65),
     b"\x05\x02" + bytes(8) + bytes(64), b"\x05\x80" + bytes(8) + bytes(64)],
)  # fmt: skip
def test_malformed_burn_notice_is_refused(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed message content"):
        decode_content(data)
