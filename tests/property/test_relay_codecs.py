"""Property tests of the relay codec's sender-secured fields (docs/protocol.md §14.4, §14.7).

NEW's flags byte, SEND's optional sender key and the delivery's flags: every value
round-trips, the hot-path SEND parser agrees with the general one on keyed SENDs, and
whatever else the bytes say is refused with the codec's typed error.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import DecryptionError, RemoteProtocolError
from burnerkit.relay.protocol import (
    CORR_ID_SIZE,
    MAX_BODY_SIZE,
    QUEUE_ID_SIZE,
    ClientTransmission,
    Delivery,
    New,
    Send,
    decode_client_frame,
    decode_frame,
    encode_client_frame,
    encode_frame,
    open_delivery,
    seal_delivery,
)

RNG = DeterministicRandom(b"relay-codec-properties")
KEY = SigningKey.generate(RNG)
SESSION = bytes(range(32))
keys32 = st.binary(min_size=32, max_size=32)
corr_ids = st.binary(min_size=CORR_ID_SIZE, max_size=CORR_ID_SIZE)
queue_ids = st.binary(min_size=QUEUE_ID_SIZE, max_size=QUEUE_ID_SIZE)
news = st.builds(New, keys32, keys32, st.booleans())
sends = st.builds(
    Send, st.binary(min_size=16, max_size=16), st.binary(max_size=600), st.one_of(st.none(), keys32)
)


def _roundtrip(corr_id: bytes, entity: bytes, command: New | Send, signed: bool) -> ClientTransmission:
    frame = encode_client_frame(
        corr_id, entity, command, session_id=SESSION, signing_key=KEY if signed else None
    )
    return decode_client_frame(frame)


@given(corr_ids, news, st.booleans())
def test_new_with_its_flags_roundtrips(corr_id: bytes, command: New, signed: bool) -> None:
    tx = _roundtrip(corr_id, b"", command, signed)
    assert (tx.corr_id, tx.entity, tx.command) == (corr_id, b"", command)


@given(corr_ids, news)
def test_a_new_without_the_flags_byte_is_not_secured(corr_id: bytes, command: New) -> None:
    content = decode_frame(encode_client_frame(corr_id, b"", command, session_id=SESSION))
    assert decode_client_frame(encode_frame(content[:-1])).command == New(
        command.recipient_key, command.recipient_dh, sender_secured=False
    )


@given(corr_ids, news, st.integers(2, 255))
def test_a_new_with_unknown_flag_bits_is_refused(corr_id: bytes, command: New, flags: int) -> None:
    content = decode_frame(encode_client_frame(corr_id, b"", command, session_id=SESSION))
    with pytest.raises(RemoteProtocolError):
        decode_client_frame(encode_frame(content[:-1] + bytes([flags])))
    with pytest.raises(RemoteProtocolError):  # nor anything after the flags
        decode_client_frame(encode_frame(content + b"\x00"))


@given(corr_ids, queue_ids, sends, st.booleans())
def test_send_with_or_without_its_sender_key_roundtrips(
    corr_id: bytes, entity: bytes, command: Send, signed: bool
) -> None:
    tx = _roundtrip(corr_id, entity, command, signed)
    assert (tx.corr_id, tx.entity, tx.command) == (corr_id, entity, command)
    assert len(tx.signature) == (64 if signed else 0)


@given(corr_ids, queue_ids, sends, st.integers(1, 64).filter(lambda n: n != 32))
def test_a_send_whose_trailing_bytes_are_no_key_is_refused(
    corr_id: bytes, entity: bytes, command: Send, extra: int
) -> None:
    content = decode_frame(
        encode_client_frame(corr_id, entity, Send(command.send_id, command.body), session_id=SESSION)
    )
    with pytest.raises(RemoteProtocolError):
        decode_client_frame(encode_frame(content + bytes(extra)))


@settings(max_examples=300, deadline=None)
@given(
    sends,
    st.booleans(),
    st.lists(st.tuples(st.integers(0, 800), st.integers(0, 255)), max_size=3),
    st.integers(0, 40),
)
def test_fast_send_parser_agrees_with_the_general_parser_on_keyed_sends(
    command: Send, signed: bool, flips: list[tuple[int, int]], cut: int
) -> None:
    from burnerkit.relay.protocol.commands import _decode_client_content, _decode_send_or_ack

    content = bytearray(
        decode_frame(
            encode_client_frame(
                bytes(CORR_ID_SIZE),
                bytes(QUEUE_ID_SIZE),
                command,
                session_id=SESSION,
                signing_key=KEY if signed else None,
            )
        )
    )
    for index, value in flips:
        if index < len(content):
            content[index] = value
    data = bytes(content[: max(0, len(content) - cut)])
    general: ClientTransmission | None = None
    with contextlib.suppress(RemoteProtocolError):
        general = _decode_client_content(data)
    fast = _decode_send_or_ack(data)
    if fast is not None:
        assert fast == general


@given(
    st.integers(0, 2**64 - 1),
    st.booleans(),
    st.booleans(),
    st.binary(max_size=MAX_BODY_SIZE).filter(lambda b: len(b) < 2000),
)
def test_delivery_flags_roundtrip(
    received_at: int, quota_marker: bool, sender_refused: bool, body: bytes
) -> None:
    key, msg_id = bytes(range(32)), bytes(range(24))
    delivery = Delivery(received_at, quota_marker, body, sender_refused)
    assert open_delivery(key, msg_id, seal_delivery(key, msg_id, delivery, RNG)) == delivery


@settings(max_examples=50)
@given(st.integers(0, 255).filter(lambda flags: flags & ~0x03))
def test_a_delivery_with_unknown_flag_bits_is_refused(flags: int) -> None:
    """Unknown bits are refused as any bad layout: one opaque error (the sealed bytes here
    are made with the queue key, as only the relay could)."""
    from burnerkit.crypto import aead
    from burnerkit.crypto.kdf import LABEL_RELAY_QUEUE

    key, msg_id = bytes(range(32)), bytes(range(24))
    plain = (7).to_bytes(8, "big") + bytes([flags]) + (0).to_bytes(2, "big")
    plain += bytes(15_883 - len(plain))
    nonce = bytes(12)
    sealed = nonce + aead.seal(key, nonce, plain, LABEL_RELAY_QUEUE + msg_id)
    with pytest.raises(DecryptionError):
        open_delivery(key, msg_id, sealed)
