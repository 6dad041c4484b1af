"""Envelopes, padded bodies and the receive log (docs/protocol.md §4 and §6)."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from burnerkit.crypto.kdf import LABEL_CHAIN_START, LABEL_MSG_HASH, sha256
from burnerkit.errors import DecryptionError
from burnerkit.protocol.envelope import (
    ACCEPT_FIELDS_SIZE,
    BODY_HEADER_SIZE,
    ENVELOPE_SIZE,
    MAX_CONTENT_SIZE,
    MISSING_WINDOW,
    RECENT_WINDOW,
    Body,
    Direction,
    EnvelopeType,
    ReceiveLog,
    body_size,
    chain_start,
    envelope_prefix,
    message_hash,
)
from burnerkit.protocol.events import (
    ForkDetected,
    ForkReason,
    GapDetected,
    MessageReceived,
    MessageReordered,
)
from burnerkit.protocol.ratchet import HEADER_CIPHERTEXT_SIZE, HEADER_SIZE, RATCHET_OVERHEAD
from burnerkit.wire import CodecError, Reader, Writer
from tests.helpers import ALICE, BOB, SessionPair

TRANSCRIPT = bytes(range(32))
START = chain_start(TRANSCRIPT, Direction.ACCEPTOR_TO_INVITER)


# ----------------------------------------------------------------------------- sizes


def test_size_constants():
    assert ENVELOPE_SIZE == 15_872
    assert ENVELOPE_SIZE + 512 == 16_384
    assert ACCEPT_FIELDS_SIZE == 1264
    assert BODY_HEADER_SIZE == 50
    assert HEADER_SIZE == 32 + 1184 + 1088 + 8
    assert HEADER_CIPHERTEXT_SIZE == 12 + HEADER_SIZE + 16
    assert RATCHET_OVERHEAD == HEADER_CIPHERTEXT_SIZE + 12 + 16
    assert MAX_CONTENT_SIZE == ENVELOPE_SIZE - 2 - ACCEPT_FIELDS_SIZE - RATCHET_OVERHEAD - BODY_HEADER_SIZE
    assert MAX_CONTENT_SIZE == 12_188


def test_body_size_fills_the_envelope():
    assert body_size(2) == ENVELOPE_SIZE - 2 - RATCHET_OVERHEAD
    assert body_size(2 + ACCEPT_FIELDS_SIZE) - BODY_HEADER_SIZE == MAX_CONTENT_SIZE


def test_envelope_prefix():
    assert envelope_prefix(EnvelopeType.MESSAGE) == b"\x01\x12"
    assert envelope_prefix(EnvelopeType.ACCEPT, b"fields") == b"\x01\x11fields"


def test_envelope_types_are_fixed():
    assert [int(t) for t in EnvelopeType] == [0x10, 0x11, 0x12]
    assert [int(d) for d in Direction] == [1, 2]


@pytest.mark.parametrize("size", [0, 1, 100, MAX_CONTENT_SIZE - 1, MAX_CONTENT_SIZE])
def test_every_envelope_is_exactly_envelope_size(size):
    pair = SessionPair()
    content = bytes([0xA5]) * size
    accept = pair.send(BOB, content)  # Bob has not heard back: an ACCEPT envelope
    assert accept[:2] == b"\x01\x11"
    assert len(accept) == ENVELOPE_SIZE
    message = pair.send(ALICE, content)
    assert message[:2] == b"\x01\x12"
    assert len(message) == ENVELOPE_SIZE
    assert pair.deliver(message, to=BOB) == [MessageReceived(1, pair.sent_at, content)]
    reply = pair.send(BOB, content)  # heard back: MESSAGE from now on
    assert reply[:2] == b"\x01\x12"
    assert len(reply) == ENVELOPE_SIZE
    assert pair.deliver(accept, to=ALICE) == [MessageReceived(2, pair.sent_at, content)]
    assert pair.deliver(reply, to=ALICE) == [MessageReceived(3, pair.sent_at, content)]


@pytest.mark.parametrize("size", [MAX_CONTENT_SIZE + 1, ENVELOPE_SIZE])
def test_content_over_max_content_size_raises_value_error(size):
    pair = SessionPair()
    for party in (ALICE, BOB):
        before = pair.sessions[party].to_bytes()
        with pytest.raises(ValueError, match=f"at most {MAX_CONTENT_SIZE} bytes"):
            pair.send(party, bytes(size))
        assert pair.sessions[party].to_bytes() == before


# ------------------------------------------------------------------------------ body


def test_body_round_trip():
    padded, digest = Body.encode(7, START, 1234, b"content", 200)
    assert len(padded) == 200
    body = Body.decode(padded)
    assert body == Body(7, START, 1234, b"content", digest)


def test_body_layout_and_hash():
    padded, digest = Body.encode(7, START, 1234, b"abc", 100)
    unpadded = struct.pack(">Q32sQH", 7, START, 1234, 3) + b"abc"
    assert padded == unpadded + bytes(100 - len(unpadded))
    assert digest == message_hash(unpadded) == sha256(LABEL_MSG_HASH, unpadded)


def test_body_of_exactly_the_maximum_content():
    padded, _ = Body.encode(1, START, 0, b"x" * 50, BODY_HEADER_SIZE + 50)
    assert Body.decode(padded).content == b"x" * 50
    with pytest.raises(ValueError, match="at most 50 bytes"):
        Body.encode(1, START, 0, b"x" * 51, BODY_HEADER_SIZE + 50)


def test_empty_body_content():
    padded, _ = Body.encode(1, START, 0, b"", 64)
    assert Body.decode(padded).content == b""


def _bad_bodies() -> Iterator[tuple[str, bytes]]:
    good, _ = Body.encode(3, START, 0, b"abc", 100)
    yield "too short", good[: BODY_HEADER_SIZE - 1]
    yield "seq zero", struct.pack(">Q", 0) + good[8:]
    yield "nonzero padding", good[:-1] + b"\x01"
    yield "length past the end", good[:48] + struct.pack(">H", 51) + good[50:]


@pytest.mark.parametrize(("why", "data"), list(_bad_bodies()), ids=lambda x: x if isinstance(x, str) else "")
def test_malformed_body_raises_the_opaque_decryption_error(why, data):
    with pytest.raises(DecryptionError) as info:
        Body.decode(data)
    assert str(info.value) == "message could not be decrypted"


def test_chain_start_separates_directions_and_sessions():
    a = chain_start(TRANSCRIPT, Direction.ACCEPTOR_TO_INVITER)
    b = chain_start(TRANSCRIPT, Direction.INVITER_TO_ACCEPTOR)
    c = chain_start(bytes(32), Direction.ACCEPTOR_TO_INVITER)
    assert len({a, b, c}) == 3
    assert a == sha256(LABEL_CHAIN_START, TRANSCRIPT, b"\x01")


# ------------------------------------------------------------------------ receive log


def _chain(count: int, start: bytes = START, tag: bytes = b"") -> list[Body]:
    """``count`` consecutive bodies starting at seq 1, each naming the one before."""
    bodies, prev = [], start
    for seq in range(1, count + 1):
        padded, prev = Body.encode(seq, prev, 0, tag + bytes([seq % 256]), 128)
        bodies.append(Body.decode(padded))
    return bodies


def test_in_order_messages_give_no_events():
    log = ReceiveLog(START)
    assert [log.record(b) for b in _chain(5)] == [[]] * 5
    assert log.highest == 5
    assert log.missing == {}


def test_gap_then_reorder():
    b = _chain(5)
    log = ReceiveLog(START)
    assert log.record(b[0]) == []
    assert log.record(b[4]) == [GapDetected(2, 4)]
    assert list(log.missing) == [2, 3, 4]
    assert log.record(b[2]) == [MessageReordered(3)]
    assert log.record(b[1]) == [MessageReordered(2)]
    assert log.record(b[3]) == [MessageReordered(4)]
    assert log.missing == {}
    assert log.highest == 5


def test_gap_at_the_start():
    log = ReceiveLog(START)
    assert log.record(_chain(3)[2]) == [GapDetected(1, 2)]


def test_same_sequence_number_twice_is_always_a_fork():
    # The ratchet refuses exact replays before the log sees them, so a second
    # authentic body with a known number came from a second sender, even if equal.
    b = _chain(2)
    log = ReceiveLog(START)
    log.record(b[0])
    log.record(b[1])
    assert log.record(b[1]) == [ForkDetected(2, ForkReason.SEQUENCE_REUSED)]
    assert log.highest == 2


def test_sequence_reused_by_a_different_message():
    log = ReceiveLog(START)
    log.record(_chain(1)[0])
    other = _chain(1, tag=b"other")[0]
    assert log.record(other) == [ForkDetected(1, ForkReason.SEQUENCE_REUSED)]


def test_first_message_not_chained_to_this_session():
    log = ReceiveLog(START)
    stranger = _chain(1, start=bytes(32))[0]
    assert log.record(stranger) == [ForkDetected(1, ForkReason.PREVIOUS_HASH_MISMATCH)]


def test_previous_hash_mismatch():
    real = _chain(2)
    forked = _chain(2, tag=b"clone")
    log = ReceiveLog(START)
    log.record(real[0])
    assert log.record(forked[1]) == [ForkDetected(2, ForkReason.PREVIOUS_HASH_MISMATCH)]


def test_next_hash_mismatch_with_reorder():
    real = _chain(3)
    forked = _chain(3, tag=b"clone")
    log = ReceiveLog(START)
    log.record(real[0])
    log.record(real[2])
    assert log.record(forked[1]) == [
        MessageReordered(2),
        ForkDetected(2, ForkReason.PREVIOUS_HASH_MISMATCH),
        ForkDetected(2, ForkReason.NEXT_HASH_MISMATCH),
    ]


def test_missing_window_is_bounded():
    log = ReceiveLog(START)
    far = Body(MISSING_WINDOW * 3, bytes(32), 0, b"", bytes(32))
    assert log.record(far) == [GapDetected(1, MISSING_WINDOW * 3 - 1)]
    assert len(log.missing) == MISSING_WINDOW
    assert min(log.missing) == MISSING_WINDOW * 2


def test_recent_window_is_bounded():
    log = ReceiveLog(START)
    for body in _chain(RECENT_WINDOW + 10):
        log.record(body)
    assert len(log.recent) == RECENT_WINDOW
    assert min(log.recent) == 11


def _log_bytes(log: ReceiveLog) -> bytes:
    w = Writer()
    log.write(w)
    return w.getvalue()


def test_receive_log_round_trip():
    b = _chain(6)
    log = ReceiveLog(START)
    for i in (0, 4, 2):
        log.record(b[i])
    data = _log_bytes(log)
    r = Reader(data)
    restored = ReceiveLog.read(r)
    r.end()
    assert _log_bytes(restored) == data
    assert restored.highest == 5
    assert list(restored.missing) == [2, 4]
    assert restored.record(b[1]) == [MessageReordered(2)]


def test_receive_log_read_refuses_bad_version_and_bounds():
    data = _log_bytes(ReceiveLog(START))
    with pytest.raises(CodecError):
        ReceiveLog.read(Reader(b"\x02" + data[1:]))
    over = Writer().u8(1).raw(START[:16]).u64(0).u32(MISSING_WINDOW + 1)
    for seq in range(MISSING_WINDOW + 1):
        over.u64(seq + 1)
    over.u32(0)
    with pytest.raises(CodecError, match="over its bounds"):
        ReceiveLog.read(Reader(over.getvalue()))
