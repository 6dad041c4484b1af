"""Frozen relay vectors (tests/vectors/relay_v1.json): every frame and the queue layer, byte for byte.

A change to a relay frame, the queue layer or the credentials layout fails here until it
is made on purpose (docs/protocol.md §14) and the vectors are regenerated.
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from burnerkit.relay.client import QueueCredentials
from burnerkit.relay.protocol import (
    FRAME_SIZE,
    Ack,
    Err,
    ErrorCode,
    Hello,
    Msg,
    New,
    Send,
    decode_client_frame,
    decode_server_frame,
    open_delivery,
    open_ids,
)
from tests import vectorio
from tests.vectors.generate_relay import build

V = vectorio.load("relay_v1")


def h(name: str) -> bytes:
    return bytes.fromhex(V[name])


def frame(hex_content: str) -> bytes:
    return bytes.fromhex(hex_content).ljust(FRAME_SIZE, b"\0")


def hkdf_sha256(ikm: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.digest(bytes(32), ikm, "sha256")  # empty salt is a block of zeros (RFC 5869)
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        out += block
        counter += 1
    return out[:length]


def test_every_relay_vector_regenerates_byte_for_byte():
    assert build() == V


def test_stored_client_frames_decode_to_what_they_claim():
    new = decode_client_frame(frame(V["client_frames"]["new"]))
    assert new.corr_id == h("corr_id")
    assert new.entity == b""
    assert isinstance(new.command, New)
    send = decode_client_frame(frame(V["client_frames"]["send_unsigned"]))
    assert send.entity == h("sender_id")
    assert send.signature == b""
    assert send.command == Send(h("send_id"), h("body"))
    ack = decode_client_frame(frame(V["client_frames"]["ack"]))
    assert ack.command == Ack(h("msg_id"))


def test_recipient_signature_is_ed25519_over_label_session_and_transmission():
    content = bytes.fromhex(V["client_frames"]["sub"])[2:]
    assert content[0] == 64
    signature, signed = content[1:65], content[65:]
    assert signed[0] == 0x01
    assert signed[1:25] == h("corr_id")
    assert signed[25] == 24
    assert signed[26:50] == h("recipient_id")
    assert signed[50:] == b"\x02"  # SUB
    key = ed25519.Ed25519PrivateKey.from_private_bytes(h("recipient_seed")).public_key()
    key.verify(signature, b"burner/v1/relay/auth" + h("session_id") + signed)


def test_queue_key_and_sealed_ids_rederived_independently():
    server = x25519.X25519PrivateKey.from_private_bytes(h("server_dh_private"))
    recipient = x25519.X25519PrivateKey.from_private_bytes(h("recipient_dh_private"))
    shared = server.exchange(recipient.public_key())
    first, second = sorted(
        (server.public_key().public_bytes_raw(), recipient.public_key().public_bytes_raw())
    )
    queue_key = hkdf_sha256(shared, b"burner/v1/relay/queue-layer" + first + second, 32)
    assert queue_key == h("queue_key")
    ids_key = hkdf_sha256(queue_key, b"burner/v1/relay/ids", 32)
    sealed = h("sealed_ids")
    plain = AESGCM(ids_key).decrypt(sealed[:12], sealed[12:], b"burner/v1/relay/ids")
    assert plain == h("recipient_id") + h("sender_id")
    assert open_ids(queue_key, sealed).sender_id == h("sender_id")


def test_delivery_layout_rederived_independently():
    sealed = h("sealed_delivery")
    plain = AESGCM(h("queue_key")).decrypt(
        sealed[:12], sealed[12:], b"burner/v1/relay/queue-layer" + h("msg_id")
    )
    body = h("body")
    assert len(plain) == 15_883
    assert plain[:8] == (1_800_000_000).to_bytes(8, "big")
    assert plain[8] == 0
    assert plain[9:11] == len(body).to_bytes(2, "big")
    assert plain[11 : 11 + len(body)] == body
    assert plain[11 + len(body) :] == bytes(len(plain) - 11 - len(body))
    assert open_delivery(h("queue_key"), h("msg_id"), sealed).body == body


def test_stored_server_frames_decode_to_what_they_claim():
    frames = V["server_frames"]
    assert decode_server_frame(frame(frames["hello"])).response == Hello(h("session_id"))
    assert decode_server_frame(frame(frames["err_auth"])).response == Err(ErrorCode.AUTH)
    msg = decode_server_frame(frame(frames["msg"]))
    assert msg.corr_id == bytes(24)
    assert msg.entity == h("recipient_id")
    assert msg.response == Msg(h("msg_id"), h("sealed_delivery"))


def test_credentials_layout_by_hand():
    data = h("credentials")
    assert len(data) == 113
    assert data[0] == 1
    assert data[1:25] == h("recipient_id")
    assert data[25:49] == h("sender_id")
    assert data[49:81] == h("recipient_seed")
    assert data[81:] == h("queue_key")
    assert QueueCredentials.from_bytes(data).to_bytes() == data


def test_ack_mac_is_hmac_under_a_session_bound_key_rederived_independently():
    """§14.4: ack_key = HKDF(queue_key, "", "burner/v1/relay/ack-mac" ‖ session_id, 32);
    the ACK's auth is HMAC-SHA256(ack_key, "burner/v1/relay/auth" ‖ session_id ‖ signed)."""
    ack_key = hkdf_sha256(h("queue_key"), b"burner/v1/relay/ack-mac" + h("session_id"), 32)
    assert ack_key == h("ack_key")
    content = bytes.fromhex(V["client_frames"]["ack_mac"])[2:]
    assert content[0] == 32
    mac, signed = content[1:33], content[33:]
    signed_ack = bytes.fromhex(V["client_frames"]["ack"])[2:][65:]
    assert signed == signed_ack  # the same transmission as the signed ACK, another auth
    assert mac == hmac.digest(ack_key, b"burner/v1/relay/auth" + h("session_id") + signed, "sha256")
    tx = decode_client_frame(frame(V["client_frames"]["ack_mac"]))
    assert tx.command == Ack(h("msg_id"))
    assert tx.signature == mac


def test_new_carries_a_flags_byte_and_a_secured_new_sets_bit_zero():
    """§14.4: NEW = tag ‖ recipient_key[32] ‖ recipient_dh[32] ‖ u8(flags), signed by recipient_key."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(h("recipient_seed")).public_key()
    dh = x25519.X25519PrivateKey.from_private_bytes(h("recipient_dh_private")).public_key()
    for name, flags in (("new", 0), ("new_secured", 1)):
        content = bytes.fromhex(V["client_frames"][name])[2:]
        assert content[0] == 64
        signature, signed = content[1:65], content[65:]
        assert signed[1:25] == h("corr_id")
        assert signed[25] == 0  # no entity
        command = signed[26:]
        assert command == b"\x01" + key.public_bytes_raw() + dh.public_bytes_raw() + bytes([flags])
        key.verify(signature, b"burner/v1/relay/auth" + h("session_id") + signed)
        assert decode_client_frame(frame(V["client_frames"][name])).command == New(
            key.public_bytes_raw(), dh.public_bytes_raw(), flags == 1
        )


def test_a_new_without_its_flags_byte_is_an_unsecured_new():
    """Clients before the flags byte send 64 bytes of fields: read as flags = 0."""
    content = bytes.fromhex(V["client_frames"]["new_secured"])[2:-1]
    legacy = len(content).to_bytes(2, "big") + content
    assert decode_client_frame(frame(legacy.hex())).command == New(
        content[-64:-32], content[-32:], sender_secured=False
    )


def test_signed_send_carries_its_sender_key_after_the_body_and_is_signed_by_it():
    """§14.4: SEND = tag ‖ send_id[16] ‖ var16(body) ‖ sender_key[32], signed by sender_key."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(h("sender_seed")).public_key()
    content = bytes.fromhex(V["client_frames"]["send_signed"])[2:]
    assert content[0] == 64
    signature, signed = content[1:65], content[65:]
    assert signed[25] == 24
    assert signed[26:50] == h("sender_id")
    body = h("body")
    assert signed[50:] == (
        b"\x04" + h("send_id") + len(body).to_bytes(2, "big") + body + key.public_bytes_raw()
    )
    key.verify(signature, b"burner/v1/relay/auth" + h("session_id") + signed)
    tx = decode_client_frame(frame(V["client_frames"]["send_signed"]))
    assert tx.command == Send(h("send_id"), body, key.public_bytes_raw())


def test_refused_sender_notice_is_a_delivery_with_flag_bit_one_and_no_body():
    """§14.7: flags bit 1, SENDER_REFUSED; the body is empty, the delivery as long as any."""
    sealed = h("sealed_delivery_sender_refused")
    assert len(sealed) == len(h("sealed_delivery"))
    plain = AESGCM(h("queue_key")).decrypt(
        sealed[:12], sealed[12:], b"burner/v1/relay/queue-layer" + h("refused_msg_id")
    )
    assert plain[:8] == (1_800_000_001).to_bytes(8, "big")
    assert plain[8] == 0x02
    assert plain[9:] == bytes(len(plain) - 9)
    delivery = open_delivery(h("queue_key"), h("refused_msg_id"), sealed)
    assert (delivery.sender_refused, delivery.quota_marker, delivery.body) == (True, False, b"")
    msg = decode_server_frame(frame(V["server_frames"]["msg_sender_refused"]))
    assert msg.response == Msg(h("refused_msg_id"), sealed)
