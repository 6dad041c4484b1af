"""Frozen transcripts: the handshake and a conversation, replayed byte for byte.

``tests/vectors/handshake_v1.json`` and ``ratchet_v1.json`` were written once by
``tests/vectors/generate_transcripts.py`` (see tests/vectors/README.md). Every random
choice came from ``DeterministicRandom`` seeds stored in the files, except ML-KEM
encapsulation, whose outputs are stored and fed back here in place of pyca's. With those,
the current code must regenerate every invitation, envelope and state byte for byte, so a
change to the wire, a KDF, a label, the padding, the event rules or a state layout fails
here. A deliberate change regenerates the files and bumps the version it changes.

Two checks do not go through the session code at all: the invitation is rebuilt from the
seed with pyca primitives and hashlib, and the first ACCEPT envelope is opened with a
hand-written HKDF, X25519, ML-KEM and AES-GCM from the private keys stored in the pending
invitation (docs/protocol.md §3, §5, §6.2-§6.4, §7).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from burnerkit.crypto.keys import KemPublicKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import BurnerError, InvitationConsumedError
from burnerkit.protocol.handshake import (
    InvitationState,
    PendingInvitation,
    accept_invitation,
    create_invitation,
)
from burnerkit.protocol.session import Session
from tests import vectorio
from tests.helpers import session_ratchet_state
from tests.vectors.generate_transcripts import event_to_json as event_json

HANDSHAKE = vectorio.load("handshake_v1")
RATCHET = vectorio.load("ratchet_v1")

# Written out here, not imported: a changed label must fail these tests.
LABEL_TEST_RNG = b"burner/v1/test-rng"
LABEL_SIG_INVITATION = b"burner/v1/sig/invitation"
LABEL_SIG_ACCEPT = b"burner/v1/sig/accept"
LABEL_TRANSCRIPT = b"burner/v1/handshake/transcript"
LABEL_HANDSHAKE = b"burner/v1/handshake/secret"
LABEL_ROOT = b"burner/v1/ratchet/root"
LABEL_CHAIN_START = b"burner/v1/envelope/chain-start"
LABEL_MSG_HASH = b"burner/v1/envelope/msg-hash"
LABEL_SAFETY_CODE = b"burner/v1/safety-code"

ENVELOPE_SIZE = 15_872
ACCEPT_PREFIX = 2 + 1264  # version, type, accept fields
HEADER_CT = 12 + (32 + 1184 + 1088 + 4 + 4) + 16


def unhex(value: str) -> bytes:
    return bytes.fromhex(value)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seed(vector: dict[str, Any], name: str) -> DeterministicRandom:
    return DeterministicRandom(unhex(vector["seeds"][name]))


@pytest.fixture
def recorded_kem(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[dict[str, str]]], list[dict[str, str]]]:
    """Make ``KemPublicKey.encapsulate`` return the recorded outputs, in order.

    Returns the queue; a test checks that it is empty at the end.
    """

    def install(records: list[dict[str, str]]) -> list[dict[str, str]]:
        queue = list(records)

        def encapsulate(self: KemPublicKey) -> tuple[bytes, bytes]:
            assert queue, "more ML-KEM encapsulations than the transcript recorded"
            record = queue.pop(0)
            assert sha(self.raw) == record["encapsulation_key_sha256"], "encapsulated to another key"
            return unhex(record["shared_secret"]), unhex(record["ciphertext"])

        monkeypatch.setattr(KemPublicKey, "encapsulate", encapsulate)
        return queue

    return install


# -- by hand: no burnerkit code below this line until the tests ------------------------------


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869, with hmac and hashlib only."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def rng_stream(seed_bytes: bytes, n: int) -> bytes:
    """DeterministicRandom's stream: SHA-256(label ‖ seed ‖ u64 counter), concatenated."""
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(LABEL_TEST_RNG + seed_bytes + counter.to_bytes(8, "big")).digest()
        counter += 1
    return out[:n]


def dh(private: bytes, public: bytes) -> bytes:
    return x25519.X25519PrivateKey.from_private_bytes(private).exchange(
        x25519.X25519PublicKey.from_public_bytes(public)
    )


def transcript_by_hand(invitation: bytes, envelope: bytes) -> bytes:
    signed_fields = envelope[2:1202]  # invitation id ‖ identity ‖ ephemeral ‖ KEM ciphertext
    return hashlib.sha256(
        LABEL_TRANSCRIPT + len(invitation).to_bytes(4, "big") + invitation + b"\x01\x11" + signed_fields
    ).digest()


def safety_code_by_hand(a: bytes, b: bytes) -> tuple[bytes, str]:
    first, second = sorted((a, b))
    code_bytes = b"\x01" + hashlib.sha256(LABEL_SAFETY_CODE + first + second).digest()
    stream = hkdf_sha256(code_bytes, salt=b"", info=LABEL_SAFETY_CODE, length=60)
    groups = [int.from_bytes(stream[i : i + 5], "big") % 100_000 for i in range(0, 60, 5)]
    return code_bytes, " ".join(f"{g:05d}" for g in groups)


# -- handshake -----------------------------------------------------------------------------


def test_invitation_regenerates_from_seed() -> None:
    h = HANDSHAKE
    pending, invitation = create_invitation(
        rng=seed(h, "inviter"),
        now=h["now"],
        lifetime=h["lifetime"],
        reply_address=unhex(h["reply_address"]),
        one_time=h["one_time"],
    )
    assert invitation.hex() == h["invitation"]
    assert pending.to_bytes().hex() == h["pending_state"]


def test_invitation_rebuilt_by_hand_from_seed() -> None:
    h = HANDSHAKE
    stream = rng_stream(unhex(h["seeds"]["inviter"]), 176)
    signing = ed25519.Ed25519PrivateKey.from_private_bytes(stream[0:32])
    identity_dh = x25519.X25519PrivateKey.from_private_bytes(stream[32:64])
    prekey = x25519.X25519PrivateKey.from_private_bytes(stream[64:96])
    kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(stream[96:160])
    reply = unhex(h["reply_address"])
    unsigned = (
        b"\x01\x10\x01"  # version, INVITATION, one-time flag
        + stream[160:176]  # invitation id
        + (h["now"] + h["lifetime"]).to_bytes(8, "big")
        + signing.public_key().public_bytes_raw()
        + identity_dh.public_key().public_bytes_raw()
        + prekey.public_key().public_bytes_raw()
        + kem.public_key().public_bytes_raw()
        + len(reply).to_bytes(2, "big")
        + reply
    )
    assert (unsigned + signing.sign(LABEL_SIG_INVITATION + unsigned)).hex() == h["invitation"]
    # The pending state (docs/protocol.md §8.1) holds exactly these private keys.
    state, invitation = unhex(h["pending_state"]), unhex(h["invitation"])
    assert state[:3] == b"\x01" + len(invitation).to_bytes(2, "big")
    assert state[3 : 3 + len(invitation)] == invitation
    assert state[3 + len(invitation) :] == stream[0:64] + b"\x01" + stream[64:160] + bytes(4)


def test_accept_regenerates(recorded_kem: Any) -> None:
    h = HANDSHAKE
    queue = recorded_kem(h["encapsulations"][:2])
    session, envelope = accept_invitation(
        unhex(h["invitation"]), content=unhex(h["first_content"]), rng=seed(h, "acceptor"), now=h["now"]
    )
    assert not queue
    assert envelope.hex() == h["accept_envelope"]
    assert session.to_bytes().hex() == h["acceptor_state"]
    assert session.transcript_hash.hex() == h["transcript_hash"]
    assert session.safety_code == h["safety_code"]
    assert session.safety_code_bytes.hex() == h["safety_code_bytes"]


def test_complete_from_stored_state(recorded_kem: Any) -> None:
    h = HANDSHAKE
    queue = recorded_kem(h["encapsulations"][2:])
    pending = PendingInvitation.from_bytes(unhex(h["pending_state"]), rng=seed(h, "inviter-complete"))
    assert pending.to_bytes().hex() == h["pending_state"]
    session, events = pending.complete(unhex(h["accept_envelope"]), now=h["now"])
    assert not queue
    assert [event_json(e) for e in events] == h["complete_events"]
    assert sha(session.to_bytes()) == h["inviter_state_sha256"]
    assert sha(pending.to_bytes()) == h["pending_state_after_sha256"]
    assert pending.state is InvitationState.CONSUMED
    assert session.transcript_hash.hex() == h["transcript_hash"]
    assert session.safety_code == h["safety_code"]
    acceptor = Session.from_bytes(unhex(h["acceptor_state"]), rng=DeterministicRandom(b"unused"))
    assert acceptor.transcript_hash == session.transcript_hash
    assert acceptor.safety_code == session.safety_code
    with pytest.raises(InvitationConsumedError):
        pending.complete(unhex(h["accept_envelope"]), now=h["now"])


def test_handshake_derived_by_hand() -> None:
    """Open the first ACCEPT envelope from the inviter's stored private keys, without Session."""
    h = HANDSHAKE
    invitation, envelope = unhex(h["invitation"]), unhex(h["accept_envelope"])
    state = unhex(h["pending_state"])
    keys = state[3 + len(invitation) :]
    identity_dh, prekey, kem_seed = keys[32:64], keys[65:97], keys[97:161]
    kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(kem_seed)
    assert envelope[:2] == b"\x01\x11"
    assert len(envelope) == ENVELOPE_SIZE
    assert envelope[2:18] == invitation[3:19]  # the invitation id

    # Transcript hash (§5.4) and both signatures (§5.6).
    transcript = transcript_by_hand(invitation, envelope)
    assert transcript.hex() == h["transcript_hash"]
    acceptor_signing, acceptor_dh, ephemeral = envelope[18:50], envelope[50:82], envelope[82:114]
    kem_ct, signature = envelope[114:1202], envelope[1202:1266]
    ed25519.Ed25519PublicKey.from_public_bytes(acceptor_signing).verify(
        signature, LABEL_SIG_ACCEPT + transcript
    )
    ed25519.Ed25519PublicKey.from_public_bytes(invitation[27:59]).verify(
        invitation[-64:], LABEL_SIG_INVITATION + invitation[:-64]
    )

    # Key agreement (§5.5): SK ‖ HK_acceptor ‖ NHK_inviter.
    ikm = (
        dh(prekey, acceptor_dh) + dh(identity_dh, ephemeral) + dh(prekey, ephemeral) + kem.decapsulate(kem_ct)
    )
    okm = hkdf_sha256(ikm, salt=bytes(32), info=LABEL_HANDSHAKE + transcript, length=96)
    sk, hk_acceptor = okm[:32], okm[32:64]

    # The ratchet header under HK_acceptor (§6.2), then the root KDF (§6.3) and KDF_CK (§3.3).
    ad = transcript + envelope[:ACCEPT_PREFIX]
    message = envelope[ACCEPT_PREFIX:]
    header_ct = message[:HEADER_CT]
    header = AESGCM(hk_acceptor).decrypt(header_ct[:12], header_ct[12:], ad)
    ratchet_dh, ratchet_kem_ct = header[:32], header[32 + 1184 : 32 + 1184 + 1088]
    assert header[-8:] == bytes(8)  # PN = 0, N = 0
    root = hkdf_sha256(
        dh(prekey, ratchet_dh) + kem.decapsulate(ratchet_kem_ct), salt=sk, info=LABEL_ROOT, length=96
    )
    chain_key = root[32:64]
    message_key = hmac.new(chain_key, b"\x01", hashlib.sha256).digest()
    body = AESGCM(message_key).decrypt(
        message[HEADER_CT : HEADER_CT + 12], message[HEADER_CT + 12 :], ad + header_ct
    )

    # The body (§7.5-§7.6): seq 1, chained to the session, padded with zeros to a fixed size.
    assert len(body) == ENVELOPE_SIZE - ACCEPT_PREFIX - HEADER_CT - 12 - 16
    seq, prev_hash, sent_at, length = struct.unpack_from(">Q32sQH", body)
    content = body[50 : 50 + length]
    assert (seq, sent_at, content.hex()) == (1, h["now"] * 1000, h["first_content"])
    assert prev_hash == hashlib.sha256(LABEL_CHAIN_START + transcript + b"\x01").digest()
    assert body[50 + length :] == bytes(len(body) - 50 - length)
    # What the inviter's receive log kept of it: the first 16 bytes of the message hash (§8.3).
    message_hash = hashlib.sha256(LABEL_MSG_HASH + body[: 50 + length]).digest()
    assert message_hash[:16] in unhex(RATCHET["alice_state"])


def test_safety_code_by_hand() -> None:
    h = HANDSHAKE
    invitation, envelope = unhex(h["invitation"]), unhex(h["accept_envelope"])
    code_bytes, code = safety_code_by_hand(invitation[27:91], envelope[18:82])
    assert code_bytes.hex() == h["safety_code_bytes"]
    assert code == h["safety_code"] == RATCHET["safety_code"]


def test_stored_states_load_and_write_back_unchanged() -> None:
    rng = DeterministicRandom(b"unused")
    for state in (HANDSHAKE["acceptor_state"], RATCHET["alice_state"], RATCHET["bob_state"]):
        assert Session.from_bytes(unhex(state), rng=rng).to_bytes().hex() == state
    pending = HANDSHAKE["pending_state"]
    assert PendingInvitation.from_bytes(unhex(pending), rng=rng).to_bytes().hex() == pending


def test_session_state_layout_by_hand() -> None:
    """A few fixed offsets of docs/protocol.md §8.4, read without the decoder."""
    transcript = unhex(HANDSHAKE["transcript_hash"])
    envelope = unhex(HANDSHAKE["accept_envelope"])
    for state_hex, role, pending in ((RATCHET["alice_state"], 1, 0), (RATCHET["bob_state"], 2, 1)):
        state = unhex(state_hex)
        assert state[0:2] == bytes([1, role])
        assert state[2:34] == transcript
        assert state[162:164] == (1264).to_bytes(2, "big")
        assert state[164:1428] == envelope[2:1266]
        assert state[1428] == pending
        assert state[1429:1437] == (2 if role == 2 else 1).to_bytes(8, "big")  # next seq
        # The ratchet state (§8.2) ends the session: version 2, and no retired chains yet
        # (the last field is the u32 count of retired chains).
        at, ratchet = session_ratchet_state(state)
        assert at > 1469 + 33
        assert ratchet[0] == 2
        assert ratchet[-4:] == bytes(4)
        assert len(ratchet) == (2714 if role == 1 else 2598)


def test_conversation_continues_the_handshake() -> None:
    assert sha(unhex(RATCHET["alice_state"])) == HANDSHAKE["inviter_state_sha256"]
    assert RATCHET["bob_state"] == HANDSHAKE["acceptor_state"]
    assert RATCHET["transcript_hash"] == HANDSHAKE["transcript_hash"]


# -- the conversation ------------------------------------------------------------------------


def _sessions() -> dict[str, Session]:
    r = RATCHET
    return {
        "alice": Session.from_bytes(unhex(r["alice_state"]), rng=seed(r, "alice")),
        "bob": Session.from_bytes(unhex(r["bob_state"]), rng=seed(r, "bob")),
    }


def _deliver(session: Session, envelope: bytes, action: dict[str, Any]) -> None:
    if "error" in action:
        before = session.to_bytes()
        with pytest.raises(BurnerError) as info:
            session.receive(envelope, now=action["now"])
        assert type(info.value).__name__ == action["error"]
        assert session.to_bytes() == before
    else:
        assert [event_json(e) for e in session.receive(envelope, now=action["now"])] == action["events"]


def test_conversation_regenerates(recorded_kem: Any) -> None:
    """The whole script: every envelope byte for byte, every event, both final states."""
    r = RATCHET
    queue = recorded_kem(r["encapsulations"])
    sessions = _sessions()
    envelopes = [unhex(e) for e in r["envelopes"]]
    assert all(len(e) == ENVELOPE_SIZE for e in envelopes)
    kinds, differing = [], []
    for action in r["actions"]:
        session = sessions[action["party"]]
        if action["op"] == "send":
            assert session.next_seq == action["seq"]
            envelope = session.send(unhex(action["content"]), now=action["now"])
            if envelope != envelopes[action["envelope"]]:
                differing.append(action["envelope"])
            kinds.append(envelope[1])
        else:
            # Always the stored envelope: the receive path is checked even if sending changed.
            _deliver(session, envelopes[action["envelope"]], action)
    assert not queue
    assert differing == [], "regenerated envelopes differ from the stored ones"
    assert kinds == [0x12, 0x12, 0x11, 0x12, 0x12, 0x12, 0x12, 0x12]  # Bob's b2 is still ACCEPT
    assert sha(sessions["alice"].to_bytes()) == r["final_alice_state_sha256"]
    assert sha(sessions["bob"].to_bytes()) == r["final_bob_state_sha256"]
    assert (
        sessions["alice"].transcript_hash.hex()
        == sessions["bob"].transcript_hash.hex()
        == r["transcript_hash"]
    )
    assert sessions["alice"].safety_code == sessions["bob"].safety_code == r["safety_code"]


def test_conversation_covers_what_it_claims() -> None:
    """The script exercises reordering, gaps, replays and a DH step each way."""
    actions = RATCHET["actions"]
    errors = [a["error"] for a in actions if "error" in a]
    # The third is a replay from a chain Alice has closed: a retired chain, so still a
    # duplicate (it would be a DecryptionError only after 32 more closed chains).
    assert errors == ["DuplicateMessageError", "DuplicateMessageError", "DuplicateMessageError"]
    stepped, replay = actions[8], actions[17]  # Alice takes Bob's chain 2, later a replay of chain 1
    assert (stepped["op"], stepped["party"], stepped["envelope"]) == ("deliver", "alice", 4)
    assert (replay["party"], replay["envelope"], replay["error"]) == ("alice", 2, "DuplicateMessageError")
    types = {e["type"] for a in actions for e in a.get("events", [])}
    assert types == {"MessageReceived", "GapDetected", "MessageReordered"}
    # Three DH ratchet steps: Bob, Alice, Bob (one encapsulation each).
    assert len(RATCHET["encapsulations"]) == 3
    assert len(RATCHET["envelopes"]) == 8
