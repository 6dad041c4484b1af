"""The sans-IO relay protocol: frames, transmissions, signatures and the queue layer."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import DecryptionError, RemoteProtocolError
from burnerkit.relay.protocol import (
    CORR_ID_SIZE,
    FRAME_SIZE,
    MAX_BODY_SIZE,
    Ack,
    AckMac,
    ClientTransmission,
    Del,
    Delivery,
    End,
    Err,
    ErrorCode,
    Hello,
    Ids,
    Key,
    Msg,
    New,
    Ok,
    Ping,
    Pong,
    QueueIds,
    Send,
    Sub,
    decode_client_frame,
    decode_frame,
    decode_server_frame,
    derive_ack_key,
    derive_queue_key,
    encode_client_frame,
    encode_frame,
    encode_server_frame,
    open_delivery,
    open_ids,
    seal_delivery,
    seal_ids,
    server_frame_parts,
    verify_ack_mac,
    verify_ack_mac_of_queue,
    verify_signature,
)

RNG = DeterministicRandom(b"relay-protocol-tests")
CORR = bytes(range(CORR_ID_SIZE))
QID = bytes(range(100, 124))
SESSION = bytes(32)
KEY = SigningKey.generate(RNG)

COMMANDS = [
    (b"", New(KEY.verify_key.raw, X25519PrivateKey.generate(RNG).public_key.raw)),
    (QID, Sub()),
    (QID, Key(SigningKey.generate(RNG).verify_key.raw)),
    (QID, Send(bytes(16), b"x" * MAX_BODY_SIZE)),
    (QID, Send(bytes(range(16)), b"")),
    (QID, Ack(bytes(24))),
    (QID, Del()),
    (b"", Ping()),
]
RESPONSES = [
    (b"", Hello(bytes(32))),
    (b"", Ids(bytes(32), bytes(76))),
    (QID, Ok()),
    (QID, Err(ErrorCode.AUTH)),
    (QID, Msg(bytes(24), bytes(15_911))),
    (QID, End()),
    (b"", Pong()),
]


@pytest.mark.parametrize(("entity", "command"), COMMANDS)
def test_every_client_frame_is_exactly_frame_size_and_roundtrips(entity, command):
    for signing_key in (None, KEY):
        frame = encode_client_frame(CORR, entity, command, session_id=SESSION, signing_key=signing_key)
        assert len(frame) == FRAME_SIZE
        parsed = decode_client_frame(frame)
        assert (parsed.corr_id, parsed.entity, parsed.command) == (CORR, entity, command)
        assert len(parsed.signature) == (0 if signing_key is None else 64)


@pytest.mark.parametrize(("entity", "response"), RESPONSES)
def test_every_server_frame_is_exactly_frame_size_and_roundtrips(entity, response):
    frame = encode_server_frame(CORR, entity, response)
    assert len(frame) == FRAME_SIZE
    assert decode_server_frame(frame).response == response


@pytest.mark.parametrize(("entity", "response"), RESPONSES)
def test_server_frame_parts_join_to_the_frame(entity, response):
    assert b"".join(server_frame_parts(CORR, entity, response)) == encode_server_frame(CORR, entity, response)


@given(
    corr=st.binary(min_size=CORR_ID_SIZE, max_size=CORR_ID_SIZE),
    sealed=st.binary(max_size=FRAME_SIZE - 80),
    code=st.sampled_from(list(ErrorCode)),
)
def test_hot_path_server_frames_in_parts_are_the_frames(corr, sealed, code):
    for response in (Ok(), Err(code), Msg(bytes(range(24)), sealed)):
        parts = server_frame_parts(corr, QID, response)
        assert sum(len(part) for part in parts) == FRAME_SIZE
        assert b"".join(parts) == encode_server_frame(corr, QID, response)


def test_a_msg_too_large_for_a_frame_is_refused_in_parts_too():
    with pytest.raises(ValueError):
        server_frame_parts(CORR, QID, Msg(bytes(24), bytes(FRAME_SIZE)))


def test_frame_with_nonzero_padding_is_rejected():
    frame = bytearray(encode_frame(b"abc"))
    frame[-1] = 1
    with pytest.raises(RemoteProtocolError):
        decode_frame(bytes(frame))


@pytest.mark.parametrize("size", [0, 1, FRAME_SIZE - 1, FRAME_SIZE + 1])
def test_truncated_or_oversized_frame_is_rejected(size):
    with pytest.raises(RemoteProtocolError):
        decode_frame(bytes(size))


def test_frame_length_beyond_the_frame_is_rejected():
    with pytest.raises(RemoteProtocolError):
        decode_frame(b"\xff\xff" + bytes(FRAME_SIZE - 2))


def test_signed_command_replayed_on_another_connection_is_refused():
    frame = encode_client_frame(CORR, QID, Sub(), session_id=SESSION, signing_key=KEY)
    tx = decode_client_frame(frame)
    assert verify_signature(KEY.verify_key.raw, tx, SESSION)
    assert not verify_signature(KEY.verify_key.raw, tx, bytes([1]) * 32)


def test_missing_queue_and_wrong_key_both_fail_verification():
    frame = encode_client_frame(CORR, QID, Sub(), session_id=SESSION, signing_key=KEY)
    tx = decode_client_frame(frame)
    other = SigningKey.generate(RNG).verify_key.raw
    assert verify_signature(None, tx, SESSION) is False
    assert verify_signature(other, tx, SESSION) is False
    assert verify_signature(b"\x01" + bytes(31), tx, SESSION) is False  # a small-order key


QUEUE_KEY = bytes(range(7, 39))


def test_ack_mac_is_bound_to_its_session_and_queue():
    ack_key = derive_ack_key(QUEUE_KEY, SESSION)
    tx = decode_client_frame(
        encode_client_frame(CORR, QID, Ack(bytes(24)), session_id=SESSION, ack_key=ack_key)
    )
    assert len(tx.signature) == 32
    assert verify_ack_mac(ack_key, tx, SESSION)
    assert verify_ack_mac_of_queue(QUEUE_KEY, tx, SESSION)
    other_session = bytes([1]) * 32
    assert not verify_ack_mac(ack_key, tx, other_session)
    assert not verify_ack_mac(derive_ack_key(QUEUE_KEY, other_session), tx, other_session)
    assert not verify_ack_mac_of_queue(QUEUE_KEY, tx, other_session)
    assert not verify_ack_mac(derive_ack_key(bytes(32), SESSION), tx, SESSION)  # another queue
    assert verify_ack_mac(None, tx, SESSION) is False  # no key: dummy, same work
    assert verify_ack_mac_of_queue(None, tx, SESSION) is False
    # A MAC is no signature, and a signature no MAC.
    assert verify_signature(KEY.verify_key.raw, tx, SESSION) is False
    signed = decode_client_frame(
        encode_client_frame(CORR, QID, Ack(bytes(24)), session_id=SESSION, signing_key=KEY)
    )
    assert verify_ack_mac(ack_key, signed, SESSION) is False


def test_a_mac_authenticates_only_an_ack():
    with pytest.raises(ValueError, match="ACK only"):
        encode_client_frame(CORR, QID, Sub(), session_id=SESSION, ack_key=bytes(32))
    with pytest.raises(ValueError, match="ACK only"):
        encode_client_frame(CORR, QID, Ack(bytes(24)), session_id=SESSION, ack_key=bytes(32), signing_key=KEY)
    signed = decode_client_frame(encode_client_frame(CORR, QID, Sub(), session_id=SESSION)).signed
    with pytest.raises(RemoteProtocolError):
        decode_client_frame(encode_frame(bytes([32]) + bytes(32) + signed))


def test_unsigned_command_never_verifies():
    tx = decode_client_frame(encode_client_frame(CORR, QID, Sub(), session_id=SESSION))
    assert verify_signature(KEY.verify_key.raw, tx, SESSION) is False


def test_queue_layer_hides_which_upload_a_download_is():
    server, recipient = X25519PrivateKey.generate(RNG), X25519PrivateKey.generate(RNG)
    key = derive_queue_key(server, recipient.public_key.raw)
    assert key == derive_queue_key(recipient, server.public_key.raw)
    body = b"e2e-envelope" * 100
    msg_id = bytes(range(24))
    first = seal_delivery(key, msg_id, Delivery(7, False, body), RNG)
    second = seal_delivery(key, msg_id, Delivery(7, False, body), RNG)
    assert body not in first
    assert first != second  # a fresh nonce every time
    assert len(first) == len(seal_delivery(key, msg_id, Delivery(7, True, b""), RNG))
    assert open_delivery(key, msg_id, first) == Delivery(7, False, body)


def test_delivery_bound_to_its_message_id():
    server, recipient = X25519PrivateKey.generate(RNG), X25519PrivateKey.generate(RNG)
    key = derive_queue_key(server, recipient.public_key.raw)
    sealed = seal_delivery(key, bytes(24), Delivery(1, False, b"x"), RNG)
    with pytest.raises(DecryptionError):
        open_delivery(key, bytes([1]) * 24, sealed)


def test_ids_are_sealed_to_the_recipient():
    server, recipient = X25519PrivateKey.generate(RNG), X25519PrivateKey.generate(RNG)
    key = derive_queue_key(server, recipient.public_key.raw)
    ids = QueueIds(bytes(range(24)), bytes(range(24, 48)))
    sealed = seal_ids(key, ids, RNG)
    assert ids.recipient_id not in sealed
    assert ids.sender_id not in sealed
    assert open_ids(key, sealed) == ids
    with pytest.raises(DecryptionError):
        open_ids(bytes(32), sealed)


def test_small_order_queue_dh_key_is_refused():
    with pytest.raises(RemoteProtocolError):
        derive_queue_key(X25519PrivateKey.generate(RNG), bytes(32))


def test_oversize_send_body_parses_so_the_server_can_answer_large():
    frame = encode_client_frame(CORR, QID, Send(bytes(16), b"x" * (MAX_BODY_SIZE + 1)), session_id=SESSION)
    command = decode_client_frame(frame).command
    assert isinstance(command, Send)
    assert len(command.body) == MAX_BODY_SIZE + 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=FRAME_SIZE))
def test_fuzzed_client_frame_decoder_raises_only_remote_protocol_error(data):
    frame = encode_frame(data) if len(data) <= FRAME_SIZE - 2 else data
    with contextlib.suppress(RemoteProtocolError):
        decode_client_frame(frame)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=FRAME_SIZE))
def test_fuzzed_server_frame_decoder_raises_only_remote_protocol_error(data):
    frame = encode_frame(data) if len(data) <= FRAME_SIZE - 2 else data
    with contextlib.suppress(RemoteProtocolError):
        decode_server_frame(frame)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, FRAME_SIZE - 1), st.integers(1, 255))
def test_mutated_genuine_frame_parses_or_raises_remote_protocol_error(index, flip):
    frame = bytearray(encode_client_frame(CORR, QID, Send(bytes(16), b"body"), session_id=SESSION))
    frame[index] ^= flip
    with contextlib.suppress(RemoteProtocolError):
        decode_client_frame(bytes(frame))


def test_max_body_is_exactly_one_envelope():
    from burnerkit.protocol.envelope import ENVELOPE_SIZE

    assert MAX_BODY_SIZE == ENVELOPE_SIZE


def _general_or_none(content: bytes) -> ClientTransmission | None:
    from burnerkit.relay.protocol.commands import _decode_client_content

    try:
        return _decode_client_content(content)
    except RemoteProtocolError:
        return None


_HOT_CONTENTS = st.builds(
    lambda command, auth, sig_len: (
        decode_frame(encode_client_frame(CORR, QID, command, session_id=SESSION, **auth))
        if sig_len is None
        else bytes([sig_len])
        + bytes(sig_len)
        + decode_frame(encode_client_frame(CORR, QID, command, session_id=SESSION))[1:]
    ),
    st.one_of(
        st.builds(Send, st.binary(min_size=16, max_size=16), st.binary(max_size=300)),
        st.builds(Ack, st.binary(min_size=24, max_size=24)),
    ),
    st.sampled_from([{}, {"signing_key": KEY}]),
    st.sampled_from([None, 0, 32, 64]),
)


@settings(max_examples=400, deadline=None)
@given(
    _HOT_CONTENTS,
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=3),
    st.integers(0, 3),
)
def test_fast_send_and_ack_parser_agrees_with_the_general_parser(content, flips, cut):
    """The relay's offset parser for SEND and ACK (the hot path) accepts exactly what the
    general parser accepts, with the same value, on genuine, mutated and truncated input."""
    from burnerkit.relay.protocol.commands import _decode_send_or_ack

    mutated = bytearray(content)
    for index, value in flips:
        if index < len(mutated):
            mutated[index] = value
    data = bytes(mutated[: len(mutated) - cut])
    fast = _decode_send_or_ack(data)
    general = _general_or_none(data)
    if fast is not None:
        assert fast == general
    assert (decode_client_frame(encode_frame(data)) if general is not None else None) == general


@settings(max_examples=60, deadline=None)
@given(
    queue_key=st.binary(min_size=32, max_size=32),
    session=st.binary(min_size=32, max_size=32),
    msg_id=st.binary(min_size=24, max_size=24),
    use_mac=st.sampled_from(["right", "other session", "signature", "none"]),
    flip=st.integers(min_value=-1, max_value=31),
)
def test_a_keyed_ack_mac_answers_as_verify_ack_mac(
    queue_key: bytes, session: bytes, msg_id: bytes, use_mac: str, flip: int
) -> None:
    ack_key = derive_ack_key(queue_key, session)
    if use_mac == "signature":
        frame = encode_client_frame(CORR, QID, Ack(msg_id), session_id=session, signing_key=KEY)
    elif use_mac == "none":
        frame = encode_client_frame(CORR, QID, Sub(), session_id=session)
    else:
        # The other session differs from this one in one bit, whatever hypothesis draws.
        other_session = bytes([session[0] ^ 1]) + session[1:]
        key = ack_key if use_mac == "right" else derive_ack_key(queue_key, other_session)
        frame = encode_client_frame(CORR, QID, Ack(msg_id), session_id=session, ack_key=key)
    tx = decode_client_frame(frame)
    if flip >= 0 and len(tx.signature) > flip:  # a MAC or signature one bit off
        signature = bytearray(tx.signature)
        signature[flip] ^= 1
        tx = dataclasses.replace(tx, signature=bytes(signature))
    expected = verify_ack_mac(ack_key, tx, session)
    assert AckMac(ack_key, session).verify(tx) is expected
    assert expected is (use_mac == "right" and flip < 0)
    assert repr(AckMac(ack_key, session)) == "AckMac(<key>)"  # no secret in a repr
