"""Generate the frozen app-format vectors ``app_v1.json`` (docs/protocol.md §17).

Run from the repository root after a deliberate change to a queue address, the link
format, the content codec or an app vault record::

    .venv/bin/python -m tests.vectors.generate_app

Everything is deterministic: ids, keys and the invitation come from one
``DeterministicRandom`` stream (invitations sign with Ed25519, which is deterministic, and
draw their ML-KEM key from the stream), times are fixed. Opaque values that the app only
carries (a session state, an envelope) are short fixed byte strings: the records do not
look inside them. ``tests/test_app_vectors.py`` rebuilds every value byte for byte, decodes
the stored bytes and re-encodes the simplest ones with ``struct`` alone.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
from pathlib import Path
from typing import Any

from burnerkit.app.addresses import QueueAddress, encode_link
from burnerkit.app.content import Hello, Move, MoveDone, Text
from burnerkit.app.queues import orphan_bytes as _orphan_bytes
from burnerkit.app.records import (
    Alert,
    Contact,
    EventKind,
    EventRecord,
    Invite,
    LastDelivery,
    OutboxEntry,
    PendingDelivery,
    Profile,
    StoredMessage,
)
from burnerkit.app.shortlink import ShortLink, link_keys, link_secret, seal_invitation
from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.protocol.handshake import create_invitation
from burnerkit.relay.client import QueueCredentials
from burnerkit.relay.protocol import derive_queue_key

__all__ = ["NOW", "SEED", "build", "fields_of", "main"]

HERE = Path(__file__).parent
SEED = b"burnerkit app vectors v1"
NOW = 1_800_000_000
OUR_RELAY = "wss://relay.example.org"
THEIR_RELAY = "ws://127.0.0.1:8443/burner"
#: The short link's own stream, so that its draws move no other value.
LINK_SEED = b"burnerkit app vectors v1: short link"


def fields_of(value: Any) -> Any:
    """A record or content as JSON: bytes in hex, addresses and credentials as their bytes."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, QueueAddress | QueueCredentials):
        return value.to_bytes().hex()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, frozenset):
        return sorted(fields_of(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: fields_of(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def build() -> dict[str, Any]:
    """Every app vector, from the seed and the fixed values above."""
    rng = DeterministicRandom(SEED)
    credentials = QueueCredentials(
        recipient_id=rng.random_bytes(24),
        sender_id=rng.random_bytes(24),
        recipient_key=SigningKey.generate(rng),
        queue_key=rng.random_bytes(32),
    )
    ours = QueueAddress(OUR_RELAY, credentials.sender_id)
    theirs = QueueAddress(THEIR_RELAY, rng.random_bytes(24))
    pending, invitation = create_invitation(
        rng=rng, now=NOW, lifetime=7 * 86400, reply_address=ours.to_bytes()
    )
    hello = Hello(theirs)
    texts = {
        "text_plain": Text("hi"),
        "text_timer_burn": Text("meet at 6 \N{CHECK MARK}", timer=3600, burn_on_read=True),
        "text_empty": Text(""),
    }
    contact_id = rng.random_bytes(16)
    message = StoredMessage(
        message_id=rng.random_bytes(8),
        contact_id=contact_id,
        outgoing=True,
        seq=1,
        sent_at=NOW * 1000 + 250,
        received_at=NOW,
        text="meet at 6 \N{CHECK MARK}",
        expires_at=NOW + 3600,
        burn_on_read=False,
        shown=False,
        delivered=True,
    )
    records: dict[str, Any] = {
        "profile": Profile("trip-1", OUR_RELAY, NOW, NOW + 30 * 86400, NOW + 120),
        "contact": Contact(
            contact_id=contact_id,
            alias="alice",
            created_at=NOW,
            queue_relay=OUR_RELAY,
            queue=credentials,
            peer=theirs,
            session=b"a session state (docs/protocol.md 8.4) would go here",
            identity=rng.random_bytes(64),
            verified=True,
            key_changed=False,
            timer=3600,
            burn_on_read=False,
        ),
        "invite": Invite(
            invite_id=pending.invitation.invitation_id,
            alias="contact-1",
            created_at=NOW,
            expires_at=pending.invitation.expires_at,
            queue_relay=OUR_RELAY,
            queue=credentials,
            pending=pending.to_bytes(),
            verified=False,
        ),
        "message": message,
        "outbox": OutboxEntry(
            send_id=rng.random_bytes(16),
            contact_id=contact_id,
            peer=theirs,
            envelope=b"a 15,872-byte envelope would go here",
            created_at=NOW * 1000 + 250,
            message_key=message.key,
        ),
        "event": EventRecord(rng.random_bytes(16), contact_id, NOW + 60, EventKind.GAP, "2 missing before 4"),
        "event_no_contact": EventRecord(
            rng.random_bytes(16), b"", NOW + 90, EventKind.DISPLACED, "another device subscribed"
        ),
        "alert": Alert(frozenset({EventKind.FORK, EventKind.SENDER_REFUSED}), NOW + 60, NOW + 90),
        "pending": PendingDelivery(credentials.recipient_id, 3, NOW + 30, b"an envelope would go here"),
    }
    records["delivery"] = LastDelivery(rng.random_bytes(24))
    short_link, link_queue = _short_link(invitation)
    # Invite layout 2 adds the link queue; layout 1 is layout 2 without its last field.
    invite_v1 = b"\x01" + records["invite"].to_bytes()[1:-2]
    records["invite"] = dataclasses.replace(records["invite"], link_queue=link_queue)
    # Drawn last, so that adding it (Contact layout 2) left every earlier value as it was.
    records["contact"] = dataclasses.replace(records["contact"], sender_key=rng.random_bytes(32))
    # Layout 3 adds the next queue of a relay move (none here: two empty fields); layout 2
    # is layout 3 without them, layout 1 is layout 2 without the sender key. Vaults hold both.
    # Layout 4 adds `burned`, `peer_expires_at` and `expiry_told` (10 bytes), drawing nothing.
    contact_v3 = b"\x03" + records["contact"].to_bytes()[1:-10]
    contact_v2 = b"\x02" + contact_v3[1:-4]
    contact_v1 = b"\x01" + contact_v2[1 : -(2 + 32)]
    # Drawn after everything else, so that adding it (Contact layout 3) moved no earlier value.
    next_queue = QueueCredentials(
        recipient_id=rng.random_bytes(24),
        sender_id=rng.random_bytes(24),
        recipient_key=SigningKey.generate(rng),
        queue_key=rng.random_bytes(32),
    )
    records["contact_moving"] = dataclasses.replace(
        records["contact"], next_queue_relay=THEIR_RELAY, next_queue=next_queue
    )
    move = Move(QueueAddress(THEIR_RELAY, next_queue.sender_id))
    # A contact that burned (§17.7): its session dropped, its expiry as it told us.
    records["contact_burned"] = dataclasses.replace(
        records["contact"], burned=True, session=b"", peer_expires_at=NOW + 7 * 86400, expiry_told=True
    )
    return {
        "source": "burnerkit, tests/vectors/generate_app.py (docs/protocol.md §17)",
        "seed": SEED.hex(),
        "now": NOW,
        "credentials": credentials.to_bytes().hex(),
        "addresses": {
            name: {"relay_url": a.relay_url, "sender_id": a.sender_id.hex(), "bytes": a.to_bytes().hex()}
            for name, a in (("ours", ours), ("theirs", theirs))
        },
        "invitation": invitation.hex(),
        "link": encode_link(invitation),
        "contents": {
            "hello": {"fields": fields_of(hello), "bytes": hello.encode().hex()},
            **{name: {"fields": fields_of(t), "bytes": t.encode().hex()} for name, t in texts.items()},
            "move": {"fields": fields_of(move), "bytes": move.encode().hex()},
            "move_done": {"fields": {}, "bytes": MoveDone().encode().hex()},
        },
        "records": {
            name: {"fields": fields_of(r), "bytes": r.to_bytes().hex()} for name, r in records.items()
        },
        "contact_v3": {"fields": fields_of(records["contact"]), "bytes": contact_v3.hex()},
        "contact_v2": {"fields": fields_of(records["contact"]), "bytes": contact_v2.hex()},
        "contact_v1": {
            "fields": fields_of(dataclasses.replace(records["contact"], sender_key=b"")),
            "bytes": contact_v1.hex(),
        },
        "invite_v1": {
            "fields": fields_of(dataclasses.replace(records["invite"], link_queue=None)),
            "bytes": invite_v1.hex(),
        },
        "short_link": short_link,
        "orphan": {
            "key": credentials.recipient_id.hex(),
            "bytes": _orphan_bytes(OUR_RELAY, credentials).hex(),
        },
        # Orphan layout 3 names the contact a relay move retired the queue from, and how long
        # a used short link's queue is kept; layout 2 (no keep_until) and layout 1 (neither)
        # still load, as kept for no time and a queue of nobody's.
        "orphan_retired": {
            "contact_id": contact_id.hex(),
            "bytes": _orphan_bytes(OUR_RELAY, credentials, contact_id).hex(),
        },
        "orphan_kept": {
            "keep_until": NOW + 86400,
            "bytes": _orphan_bytes(OUR_RELAY, credentials, keep_until=NOW + 86400).hex(),
        },
        "orphan_v2": {"bytes": (b"\x02" + _orphan_bytes(OUR_RELAY, credentials)[1:-8]).hex()},
        "orphan_v1": {"bytes": (b"\x01" + _orphan_bytes(OUR_RELAY, credentials)[1:-10]).hex()},
    }


def _short_link(invitation: bytes) -> tuple[dict[str, Any], QueueCredentials]:
    """The short link of ``invitation`` (docs/protocol.md §17.2), its derived values and its queue."""
    rng = DeterministicRandom(LINK_SEED)
    secret = link_secret(invitation)
    keys = link_keys(secret)
    server_dh = X25519PrivateKey.generate(rng).public_key.raw
    recipient_id, sender_id = rng.random_bytes(24), rng.random_bytes(24)
    queue_key = derive_queue_key(keys.dh_key, server_dh)
    pin = rng.random_bytes(32)
    pinned = f"wss://relay.example.org:7443#sha256={base64.urlsafe_b64encode(pin).rstrip(b'=').decode()}"
    links = {
        name: ShortLink(url, recipient_id, server_dh, secret)
        for name, url in (("pinned", pinned), ("plain", THEIR_RELAY))
    }
    vector = {
        "secret": secret.hex(),
        "recipient_key_seed": keys.signing_key.private_bytes().hex(),
        "recipient_verify_key": keys.signing_key.verify_key.raw.hex(),
        "recipient_dh": keys.dh_key.private_bytes().hex(),
        "recipient_dh_public": keys.dh_key.public_key.raw.hex(),
        "seal_key": keys.seal_key.hex(),
        "server_dh": server_dh.hex(),
        "recipient_id": recipient_id.hex(),
        "queue_key": queue_key.hex(),
        "sealed": seal_invitation(invitation, rng).hex(),
        "links": {
            name: {"relay_url": link.relay_url, "payload": link.payload().hex(), "text": link.to_text()}
            for name, link in links.items()
        },
    }
    return vector, QueueCredentials(recipient_id, sender_id, keys.signing_key, queue_key)


def main() -> None:
    """Write ``app_v1.json`` next to this file."""
    path = HERE / "app_v1.json"
    path.write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
