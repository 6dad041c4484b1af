"""Generate the frozen relay vectors ``relay_v1.json`` (docs/protocol.md §14).

Run from the repository root after a deliberate change to a relay frame, the queue
layer or the credentials layout::

    .venv/bin/python -m tests.vectors.generate_relay

Everything here is deterministic: keys come from ``DeterministicRandom``, Ed25519
signatures are deterministic, and the queue layer's nonces are drawn from the same
stream. ``tests/test_relay_vectors.py`` rebuilds every frame byte for byte and also
decodes the stored bytes on their own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.relay.client import QueueCredentials
from burnerkit.relay.protocol import (
    Ack,
    ClientCommand,
    Del,
    Delivery,
    End,
    Err,
    ErrorCode,
    Hello,
    Ids,
    Key,
    MailboxEndReason,
    MbAlloc,
    MbDel,
    MbEnd,
    MbGet,
    MbJoin,
    MbMsg,
    MbOpen,
    MbPut,
    Msg,
    New,
    Ok,
    Ping,
    Pong,
    QueueIds,
    Send,
    ServerResponse,
    Sub,
    derive_ack_key,
    derive_queue_key,
    encode_client_frame,
    encode_server_frame,
    seal_delivery,
    seal_ids,
)

__all__ = ["SEED", "build", "main"]

HERE = Path(__file__).parent
SEED = b"burnerkit relay vectors v1"


def _trim(frame: bytes) -> str:
    """A frame as hex without its zero padding (the test pads it back to 16,384 bytes)."""
    return frame[: 2 + int.from_bytes(frame[:2], "big")].hex()


def build() -> dict[str, Any]:
    """Every relay vector, from the seed alone."""
    rng = DeterministicRandom(SEED)
    recipient = SigningKey.generate(rng)
    sender = SigningKey.generate(rng)
    recipient_dh = X25519PrivateKey.generate(rng)
    server_dh = X25519PrivateKey.generate(rng)
    session_id = rng.random_bytes(32)
    ids = QueueIds(rng.random_bytes(24), rng.random_bytes(24))
    msg_id = rng.random_bytes(24)
    corr_id = rng.random_bytes(24)
    send_id = rng.random_bytes(16)
    queue_key = derive_queue_key(server_dh, recipient_dh.public_key.raw)
    sealed_ids = seal_ids(queue_key, ids, rng)
    body = b"an end-to-end envelope would go here"
    sealed_delivery = seal_delivery(queue_key, msg_id, Delivery(1_800_000_000, False, body), rng)

    client: list[tuple[str, bytes, ClientCommand, SigningKey | None]] = [
        ("new", b"", New(recipient.verify_key.raw, recipient_dh.public_key.raw), recipient),
        ("new_secured", b"", New(recipient.verify_key.raw, recipient_dh.public_key.raw, True), recipient),
        ("sub", ids.recipient_id, Sub(), recipient),
        ("key", ids.recipient_id, Key(sender.verify_key.raw), recipient),
        ("send_unsigned", ids.sender_id, Send(send_id, body), None),
        ("send_signed", ids.sender_id, Send(send_id, body, sender.verify_key.raw), sender),
        ("ack", ids.recipient_id, Ack(msg_id), recipient),
        ("del", ids.recipient_id, Del(), recipient),
        ("ping", b"", Ping(), None),
    ]
    zeros = bytes(24)
    server: list[tuple[str, bytes, bytes, ServerResponse]] = [
        ("hello", zeros, b"", Hello(session_id)),
        ("ids", corr_id, b"", Ids(server_dh.public_key.raw, sealed_ids)),
        ("ok", corr_id, ids.recipient_id, Ok()),
        ("err_auth", corr_id, ids.recipient_id, Err(ErrorCode.AUTH)),
        ("msg", zeros, ids.recipient_id, Msg(msg_id, sealed_delivery)),
        ("end", zeros, ids.recipient_id, End()),
        ("pong", corr_id, b"", Pong()),
    ]
    # Pairing mailboxes (§14.12): drawn after everything above, so those values never move.
    nameplate = 7
    token = rng.random_bytes(24)
    mailbox_body = b"a pairing message would go here"
    client += [
        ("mb_alloc", b"", MbAlloc(), None),
        ("mb_join", b"", MbJoin(nameplate), None),
        ("mb_put", token, MbPut(0, mailbox_body), None),
        ("mb_get", token, MbGet(), None),
        ("mb_del", token, MbDel(), None),
    ]
    server += [
        ("mb_open", corr_id, b"", MbOpen(nameplate, token)),
        ("mb_msg", zeros, token, MbMsg(0, mailbox_body)),
        ("mb_end", zeros, token, MbEnd(MailboxEndReason.CROWDED)),
        ("err_mailbox", corr_id, b"", Err(ErrorCode.MAILBOX)),
    ]
    # Sender-secured queues (§14.8): a refused-sender notice, its nonce drawn after the
    # mailbox values so that none of those moves.
    refused_msg_id = rng.random_bytes(24)
    sealed_refused = seal_delivery(queue_key, refused_msg_id, Delivery(1_800_000_001, False, b"", True), rng)
    server += [("msg_sender_refused", zeros, ids.recipient_id, Msg(refused_msg_id, sealed_refused))]
    credentials = QueueCredentials(ids.recipient_id, ids.sender_id, recipient, queue_key)
    # The MAC'd ACK (§14.4): deterministic, draws nothing from the seed.
    ack_key = derive_ack_key(queue_key, session_id)
    ack_mac = encode_client_frame(
        corr_id, ids.recipient_id, Ack(msg_id), session_id=session_id, ack_key=ack_key
    )
    frames = {
        name: _trim(encode_client_frame(corr_id, entity, command, session_id=session_id, signing_key=key))
        for name, entity, command, key in client
    }
    frames["ack_mac"] = _trim(ack_mac)
    return {
        "source": "burnerkit, tests/vectors/generate_relay.py (docs/protocol.md §14)",
        "seed": SEED.hex(),
        "recipient_seed": recipient.private_bytes().hex(),
        "sender_seed": sender.private_bytes().hex(),
        "recipient_dh_private": recipient_dh.private_bytes().hex(),
        "server_dh_private": server_dh.private_bytes().hex(),
        "session_id": session_id.hex(),
        "recipient_id": ids.recipient_id.hex(),
        "sender_id": ids.sender_id.hex(),
        "msg_id": msg_id.hex(),
        "corr_id": corr_id.hex(),
        "send_id": send_id.hex(),
        "body": body.hex(),
        "queue_key": queue_key.hex(),
        "ack_key": ack_key.hex(),
        "sealed_ids": sealed_ids.hex(),
        "sealed_delivery": sealed_delivery.hex(),
        "refused_msg_id": refused_msg_id.hex(),
        "sealed_delivery_sender_refused": sealed_refused.hex(),
        "credentials": credentials.to_bytes().hex(),
        "nameplate": nameplate,
        "mailbox_token": token.hex(),
        "mailbox_body": mailbox_body.hex(),
        "client_frames": frames,
        "server_frames": {
            name: _trim(encode_server_frame(corr, entity, response))
            for name, corr, entity, response in server
        },
    }


def main() -> None:
    """Write ``relay_v1.json``."""
    path = HERE / "relay_v1.json"
    path.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
