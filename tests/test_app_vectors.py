"""Frozen app-format vectors (tests/vectors/app_v1.json): addresses, links, contents, records.

The short link (§17.2) is re-derived from the spec with hashlib, hmac and pyca alone.

A change to a queue address, the link format, the content codec or an app vault record
fails here until it is made on purpose (docs/protocol.md §17) and the vectors are
regenerated with ``.venv/bin/python -m tests.vectors.generate_app``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from burnerkit.app.addresses import LINK_PREFIX, QueueAddress, decode_link, encode_link, parse_link
from burnerkit.app.content import Hello, Move, MoveDone, Text, decode_content
from burnerkit.app.queues import orphan_owner as _orphan_from_bytes
from burnerkit.app.records import (
    ALERT_KINDS,
    Alert,
    Contact,
    EventKind,
    EventRecord,
    Invite,
    LastDelivery,
    Orphan,
    OutboxEntry,
    PendingDelivery,
    Profile,
    StoredMessage,
)
from burnerkit.app.shortlink import ShortLink, open_invitation
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.protocol.handshake import Invitation, PendingInvitation
from burnerkit.relay.client import QueueCredentials
from tests import vectorio
from tests.vectors.generate_app import build, fields_of

V = vectorio.load("app_v1")

RECORD_TYPES: dict[str, Any] = {
    "profile": Profile,
    "contact": Contact,
    "contact_moving": Contact,
    "contact_burned": Contact,
    "invite": Invite,
    "message": StoredMessage,
    "outbox": OutboxEntry,
    "event": EventRecord,
    "event_no_contact": EventRecord,
    "alert": Alert,
    "pending": PendingDelivery,
    "delivery": LastDelivery,
}


def h(value: str) -> bytes:
    return bytes.fromhex(value)


# -- independent encoders: struct only, written from docs/protocol.md §17 --------------------


def struct_address(relay_url: str, sender_id: bytes) -> bytes:
    url = relay_url.encode("utf-8")
    return struct.pack(f">BB{len(url)}s24s", 1, len(url), url, sender_id)


def struct_text(text: str, timer: int, burn_on_read: bool) -> bytes:
    return struct.pack(">BBI", 0x02, 0x01 if burn_on_read else 0x00, timer) + text.encode("utf-8")


def struct_hello(relay_url: str, sender_id: bytes) -> bytes:
    return struct.pack(">B", 0x01) + struct_address(relay_url, sender_id)


def struct_move(relay_url: str, sender_id: bytes) -> bytes:
    return struct.pack(">B", 0x03) + struct_address(relay_url, sender_id)


def struct_var16(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


# -- tests -----------------------------------------------------------------------------------


def test_every_app_vector_regenerates_byte_for_byte() -> None:
    assert build() == V


@pytest.mark.parametrize("name", ["ours", "theirs"])
def test_queue_address_vector(name: str) -> None:
    vector = V["addresses"][name]
    address = QueueAddress(vector["relay_url"], h(vector["sender_id"]))
    assert address.to_bytes().hex() == vector["bytes"]
    assert QueueAddress.from_bytes(h(vector["bytes"])) == address
    assert struct_address(vector["relay_url"], h(vector["sender_id"])).hex() == vector["bytes"]
    assert len(h(vector["bytes"])) == 26 + len(vector["relay_url"].encode())


def test_link_vector() -> None:
    invitation = h(V["invitation"])
    link = V["link"]
    assert encode_link(invitation) == link
    assert decode_link(link) == invitation
    assert link.startswith("burner:i1.")
    assert LINK_PREFIX == "burner:i1."
    body = link[len("burner:i1.") :]
    assert "=" not in body
    assert set(body) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True) == invitation
    # The invitation it carries names our queue address as its reply address (§5.2, §17.1).
    assert Invitation.from_bytes(invitation).reply_address == h(V["addresses"]["ours"]["bytes"])
    assert len(invitation) == 1373 + len(h(V["addresses"]["ours"]["bytes"]))


def test_hello_vector() -> None:
    vector = V["contents"]["hello"]
    theirs = V["addresses"]["theirs"]
    hello = Hello(QueueAddress.from_bytes(h(vector["fields"]["reply"])))
    assert hello.encode().hex() == vector["bytes"]
    assert decode_content(h(vector["bytes"])) == hello
    assert struct_hello(theirs["relay_url"], h(theirs["sender_id"])).hex() == vector["bytes"]


def test_move_vectors() -> None:
    vector = V["contents"]["move"]
    address = QueueAddress.from_bytes(h(vector["fields"]["address"]))
    assert Move(address).encode().hex() == vector["bytes"]
    assert decode_content(h(vector["bytes"])) == Move(address)
    assert struct_move(address.relay_url, address.sender_id).hex() == vector["bytes"]
    # It names the next queue of the moving contact record.
    moving = Contact.from_bytes(h(V["records"]["contact_moving"]["bytes"]))
    assert moving.next_queue is not None
    assert (address.relay_url, address.sender_id) == (moving.next_queue_relay, moving.next_queue.sender_id)
    assert V["contents"]["move_done"]["bytes"] == "04"
    assert decode_content(b"\x04") == MoveDone()


@pytest.mark.parametrize("name", ["text_plain", "text_timer_burn", "text_empty"])
def test_text_vector(name: str) -> None:
    vector = V["contents"][name]
    fields = vector["fields"]
    text = Text(fields["text"], fields["timer"], fields["burn_on_read"])
    assert text.encode().hex() == vector["bytes"]
    decoded = decode_content(h(vector["bytes"]))
    assert isinstance(decoded, Text)
    assert fields_of(decoded) == fields
    assert struct_text(fields["text"], fields["timer"], fields["burn_on_read"]).hex() == vector["bytes"]


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_record_vector_decodes_to_its_fields_and_reencodes(name: str) -> None:
    vector = V["records"][name]
    data = h(vector["bytes"])
    record = RECORD_TYPES[name].from_bytes(data)
    assert fields_of(record) == vector["fields"]
    assert record.to_bytes() == data
    assert data[0] == RECORD_TYPES[name].VERSION


def test_contact_of_layout_1_still_loads_and_is_rewritten_in_layout_4() -> None:
    vector = V["contact_v1"]
    contact = Contact.from_bytes(h(vector["bytes"]))
    assert fields_of(contact) == vector["fields"]
    assert contact.sender_key == b""  # paired before sender keys: its SENDs go unsigned
    assert contact.to_bytes()[0] == 4
    assert contact.to_bytes()[1:-16] == h(vector["bytes"])[1:]


def test_contact_of_layout_2_still_loads_with_no_move_under_way() -> None:
    vector = V["contact_v2"]
    contact = Contact.from_bytes(h(vector["bytes"]))
    assert fields_of(contact) == vector["fields"]
    assert (contact.next_queue_relay, contact.next_queue) == ("", None)
    assert contact.to_bytes() == h(V["records"]["contact"]["bytes"])
    assert contact.to_bytes() == b"\x04" + h(vector["bytes"])[1:] + b"\x00\x00\x00\x00" + bytes(10)


def test_contact_of_layout_3_still_loads_not_burned_and_no_expiry_told() -> None:
    vector = V["contact_v3"]
    contact = Contact.from_bytes(h(vector["bytes"]))
    assert fields_of(contact) == vector["fields"]
    assert (contact.burned, contact.peer_expires_at, contact.expiry_told) == (False, 0, False)
    assert contact.to_bytes() == b"\x04" + h(vector["bytes"])[1:] + bytes(10)


def test_burned_contact_ends_with_its_flag_and_the_peers_expiry() -> None:
    f = V["records"]["contact_burned"]["fields"]
    data = h(V["records"]["contact_burned"]["bytes"])
    assert data.endswith(struct.pack(">BQB", 1, f["peer_expires_at"], 1))
    assert f["session"] == ""  # its session keys are dropped (§17.7)


def test_moving_contact_ends_with_its_next_relay_and_queue() -> None:
    f = V["records"]["contact_moving"]["fields"]
    url = f["next_queue_relay"].encode()
    tail = struct_var16(url) + struct_var16(h(f["next_queue"]))
    data = h(V["records"]["contact_moving"]["bytes"])
    assert data.endswith(tail + bytes(10))
    assert data[: -len(tail) - 10] == h(V["records"]["contact"]["bytes"])[:-14]


def test_alert_and_pending_layouts_by_hand() -> None:
    a = V["records"]["alert"]["fields"]
    bits = sum(1 << ALERT_KINDS.index(EventKind(kind)) for kind in a["kinds"])
    assert struct.pack(">BHQQ", 1, bits, a["first_at"], a["last_at"]).hex() == V["records"]["alert"]["bytes"]
    p = V["records"]["pending"]["fields"]
    envelope = h(p["envelope"])
    expected = struct.pack(">B24sQQI", 1, h(p["recipient_id"]), p["order"], p["received_at"], len(envelope))
    assert (expected + envelope).hex() == V["records"]["pending"]["bytes"]
    d = V["records"]["delivery"]["fields"]
    assert struct.pack(">B24s", 1, h(d["msg_id"])).hex() == V["records"]["delivery"]["bytes"]


def test_record_layouts_by_hand() -> None:
    """Spot checks of §17.4 offsets, without our Reader."""
    profile = V["records"]["profile"]["fields"]
    expected = (
        b"\x01"
        + struct_var16(profile["name"].encode())
        + struct_var16(profile["relay_url"].encode())
        + struct.pack(">QQQ", profile["created_at"], profile["expires_at"], profile["clock_mark"])
    )
    assert expected.hex() == V["records"]["profile"]["bytes"]

    m = V["records"]["message"]["fields"]
    text = m["text"].encode()
    expected = (
        struct.pack(">B8s16sBQQQ", 1, h(m["message_id"]), h(m["contact_id"]), m["outgoing"], m["seq"],
                    m["sent_at"], m["received_at"])
        + struct.pack(">I", len(text))
        + text
        + struct.pack(">QBBB", m["expires_at"], m["burn_on_read"], m["shown"], m["delivered"])
    )  # fmt: skip
    assert expected.hex() == V["records"]["message"]["bytes"]

    e = V["records"]["event_no_contact"]["fields"]
    expected = (
        struct.pack(">B16sHQ", 1, h(e["event_id"]), 0, e["at"])
        + struct_var16(e["kind"].encode())
        + struct_var16(e["detail"].encode())
    )
    assert expected.hex() == V["records"]["event_no_contact"]["bytes"]


def test_invite_vector_holds_a_loadable_pending_invitation() -> None:
    invite = Invite.from_bytes(h(V["records"]["invite"]["bytes"]))
    pending = PendingInvitation.from_bytes(invite.pending, rng=DeterministicRandom(b"unused"))
    assert pending.invitation.raw == h(V["invitation"])
    assert invite.invite_id == pending.invitation.invitation_id
    assert invite.expires_at == pending.invitation.expires_at == V["now"] + 7 * 86400


def test_message_key_is_contact_id_then_message_id() -> None:
    message = StoredMessage.from_bytes(h(V["records"]["message"]["bytes"]))
    outbox = OutboxEntry.from_bytes(h(V["records"]["outbox"]["bytes"]))
    assert outbox.message_key == message.key == message.contact_id + message.message_id
    assert len(message.key) == 24


def test_orphan_vector_is_a_versioned_url_and_credentials() -> None:
    data = h(V["orphan"]["bytes"])
    credentials = h(V["credentials"])
    url = V["addresses"]["ours"]["relay_url"].encode()
    assert len(credentials) == 113
    fields = struct.pack(">BH", 3, len(url)) + url + struct.pack(">H", 113) + credentials
    assert data == fields + b"\x00\x00" + bytes(8)
    owner = _orphan_from_bytes(data)
    assert owner.key == h(V["orphan"]["key"]) == QueueCredentials.from_bytes(credentials).recipient_id
    assert owner.relay_url == V["addresses"]["ours"]["relay_url"]
    # A queue a relay move retired names its contact; a used short link's is kept until a time.
    retired = h(V["orphan_retired"]["bytes"])
    contact_id = h(V["orphan_retired"]["contact_id"])
    assert retired == fields + struct_var16(contact_id) + bytes(8)
    assert Orphan.from_bytes(retired).contact_id == contact_id
    kept = h(V["orphan_kept"]["bytes"])
    assert kept == fields + b"\x00\x00" + struct.pack(">Q", V["orphan_kept"]["keep_until"])
    assert Orphan.from_bytes(kept).keep_until == V["orphan_kept"]["keep_until"]
    # Layout 2 (no keep_until) and layout 1 (no contact either) still load.
    v2, v1 = h(V["orphan_v2"]["bytes"]), h(V["orphan_v1"]["bytes"])
    assert v2 == b"\x02" + data[1:-8]
    assert v1 == b"\x01" + data[1:-10]
    assert Orphan.from_bytes(v2) == Orphan.from_bytes(v1) == Orphan.from_bytes(data)


def _hkdf(ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with SHA-256 and an empty salt, from hmac alone."""
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
    return out[:length]


def test_short_link_vector_rederives_from_the_spec() -> None:
    """§17.2: k, the keys it derives, the queue key, the sealed invitation and both links."""
    v = V["short_link"]
    invitation = h(V["invitation"])
    secret = hashlib.sha256(b"burner/v1/link/commit" + invitation).digest()
    assert secret.hex() == v["secret"]
    okm = _hkdf(secret, b"burner/v1/link/keys", 96)
    assert okm.hex() == v["recipient_key_seed"] + v["recipient_dh"] + v["seal_key"]
    signing = ed25519.Ed25519PrivateKey.from_private_bytes(okm[:32])
    assert signing.public_key().public_bytes_raw().hex() == v["recipient_verify_key"]
    dh = x25519.X25519PrivateKey.from_private_bytes(okm[32:64])
    ours = dh.public_key().public_bytes_raw()
    assert ours.hex() == v["recipient_dh_public"]
    server = h(v["server_dh"])
    shared = dh.exchange(x25519.X25519PublicKey.from_public_bytes(server))
    first, second = sorted((ours, server))
    assert _hkdf(shared, b"burner/v1/relay/queue-layer" + first + second, 32).hex() == v["queue_key"]
    sealed = h(v["sealed"])
    assert len(sealed) == 15_872  # the size of every envelope
    opened = AESGCM(okm[64:]).decrypt(sealed[:12], sealed[12:], b"burner/v1/link/seal")
    assert opened == struct.pack(">H", len(invitation)) + invitation + bytes(15_844 - 2 - len(invitation))
    assert open_invitation(secret, sealed) == invitation
    for name, scheme, flags in (("pinned", "wss://", 0x02), ("plain", "ws://", 0x01)):
        link = v["links"][name]
        url = link["relay_url"]
        rest, _, pin = url[len(scheme) :].partition("#sha256=")
        pin_bytes = base64.urlsafe_b64decode(pin + "=") if pin else b""
        payload = bytes([flags]) + h(v["recipient_id"]) + server + secret + pin_bytes + rest.encode()
        assert payload.hex() == link["payload"]
        assert link["text"] == "burner:s1." + base64.urlsafe_b64encode(payload).decode().rstrip("=")
        parsed = parse_link(link["text"])
        assert isinstance(parsed, ShortLink)
        assert (parsed.relay_url, parsed.recipient_id, parsed.server_dh, parsed.secret) == (
            url,
            h(v["recipient_id"]),
            server,
            secret,
        )
        creds = parsed.credentials()
        assert creds.queue_key.hex() == v["queue_key"]
        assert creds.recipient_key.private_bytes() == okm[:32]
    # The invite record carries the link queue made with those keys.
    invite = Invite.from_bytes(h(V["records"]["invite"]["bytes"]))
    assert invite.link_queue is not None
    assert invite.link_queue.recipient_id.hex() == v["recipient_id"]
    assert invite.link_queue.queue_key.hex() == v["queue_key"]


def test_invite_of_layout_1_still_loads_and_is_rewritten_in_layout_2() -> None:
    vector = V["invite_v1"]
    invite = Invite.from_bytes(h(vector["bytes"]))
    assert fields_of(invite) == vector["fields"]
    assert invite.link_queue is None  # made before short links
    assert invite.to_bytes() == b"\x02" + h(vector["bytes"])[1:] + b"\x00\x00"
