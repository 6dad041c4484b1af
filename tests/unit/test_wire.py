"""The byte readers and writers every wire and state format is built on."""

from __future__ import annotations

import pytest

from burnerkit.wire import PROTOCOL_VERSION, CodecError, Reader, Writer


def test_protocol_version_is_one():
    assert PROTOCOL_VERSION == 1


def test_writer_then_reader_round_trip():
    data = (
        Writer()
        .u8(0xAB)
        .u16(0xBEEF)
        .u32(0xDEADBEEF)
        .u64(2**64 - 1)
        .var16(b"short")
        .var32(b"longer field")
        .optional(None)
        .optional(b"xyz")
        .raw(b"tail")
        .getvalue()
    )
    r = Reader(data)
    assert r.u8() == 0xAB
    assert r.u16() == 0xBEEF
    assert r.u32() == 0xDEADBEEF
    assert r.u64() == 2**64 - 1
    assert r.var16() == b"short"
    assert r.var32() == b"longer field"
    assert r.optional(3) is None
    assert r.optional(3) == b"xyz"
    assert r.rest() == b"tail"
    r.end()


def test_integers_are_big_endian():
    assert Writer().u16(1).u32(2).u64(3).getvalue() == bytes.fromhex("0001" + "00000002" + "0000000000000003")


def test_length_prefixes():
    assert Writer().var16(b"ab").getvalue() == b"\x00\x02ab"
    assert Writer().var32(b"").getvalue() == b"\x00\x00\x00\x00"
    assert Writer().optional(None).getvalue() == b"\x00"
    assert Writer().optional(b"q").getvalue() == b"\x01q"


def test_writer_refuses_values_that_do_not_fit():
    with pytest.raises(OverflowError):
        Writer().u8(256)
    with pytest.raises(OverflowError):
        Writer().u16(-1)
    with pytest.raises(OverflowError):
        Writer().var16(bytes(2**16))


def test_empty_writer():
    assert Writer().getvalue() == b""


@pytest.mark.parametrize(
    ("data", "read"),
    [
        (b"", lambda r: r.u8()),
        (b"\x00", lambda r: r.u16()),
        (b"\x00\x00\x00", lambda r: r.u32()),
        (bytes(7), lambda r: r.u64()),
        (b"\x00\x05abcd", lambda r: r.var16()),
        (b"\x00\x00\x00\x02a", lambda r: r.var32()),
        (b"\x01ab", lambda r: r.optional(3)),
        (b"ab", lambda r: r.take(3)),
    ],
    ids=["u8", "u16", "u32", "u64", "var16", "var32", "optional", "take"],
)
def test_truncated_input_raises_codec_error(data, read):
    with pytest.raises(CodecError, match="truncated input"):
        read(Reader(data))


def test_take_refuses_a_negative_length():
    with pytest.raises(CodecError):
        Reader(b"abc").take(-1)


def test_failed_read_does_not_move_the_cursor():
    r = Reader(b"ab")
    with pytest.raises(CodecError):
        r.take(3)
    assert r.take(2) == b"ab"


@pytest.mark.parametrize("flag", [2, 0x80, 0xFF])
def test_optional_refuses_a_bad_presence_flag(flag):
    with pytest.raises(CodecError, match="bad presence flag"):
        Reader(bytes([flag]) + b"abc").optional(3)


def test_end_refuses_trailing_bytes():
    r = Reader(b"ab")
    r.u8()
    with pytest.raises(CodecError, match="trailing bytes"):
        r.end()


def test_rest_consumes_everything():
    r = Reader(b"abc")
    r.u8()
    assert r.rest() == b"bc"
    assert r.rest() == b""
    r.end()


def test_codec_error_is_internal_not_a_burner_error():
    from burnerkit.errors import BurnerError

    assert not issubclass(CodecError, BurnerError)
