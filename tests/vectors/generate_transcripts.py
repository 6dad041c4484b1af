"""Generate the frozen transcripts ``handshake_v1.json`` and ``ratchet_v1.json``.

Run once, from the repository root, after a deliberate change to the wire, a KDF, a label
or a state layout (and bump the version byte that change calls for)::

    .venv/bin/python -m tests.vectors.generate_transcripts

Everything the protocol draws from a :class:`Random` comes from ``DeterministicRandom``
seeded as recorded in the files. The one thing it cannot make reproducible is ML-KEM
encapsulation, whose randomness pyca draws internally; so we record each encapsulation's
output (``shared_secret``, ``ciphertext``, and the SHA-256 of the encapsulation key it was
made for) in call order. ``tests/test_vectors.py`` feeds them back in place of pyca's
``encapsulate`` and then regenerates every envelope and state byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from burnerkit.crypto.keys import KemPublicKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import BurnerError
from burnerkit.protocol.events import Event, ForkDetected, GapDetected, MessageReceived, MessageReordered
from burnerkit.protocol.handshake import PendingInvitation, accept_invitation, create_invitation
from burnerkit.protocol.session import Session

__all__ = ["SEED", "event_to_json", "main", "seeds"]

HERE = Path(__file__).parent
SEED = b"burnerkit transcript v1"
NOW = 1_800_000_000
LIFETIME = 3600
REPLY_ADDRESS = b"relay.example/q/alice-queue-0001"
FIRST_CONTENT = b"hello alice, this is bob"


def seeds() -> dict[str, bytes]:
    """One ``DeterministicRandom`` seed per party and phase, all derived from :data:`SEED`."""
    names = ("inviter", "acceptor", "inviter-complete", "alice", "bob")
    return {name: SEED + b"/" + name.encode() for name in names}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def event_to_json(event: Event) -> dict[str, Any]:
    """One event as plain JSON (the form stored in ``ratchet_v1.json``)."""
    match event:
        case MessageReceived(seq, sent_at, content):
            return {"type": "MessageReceived", "seq": seq, "sent_at": sent_at, "content": content.hex()}
        case GapDetected(first, last):
            return {"type": "GapDetected", "first": first, "last": last}
        case MessageReordered(seq):
            return {"type": "MessageReordered", "seq": seq}
        case ForkDetected(seq, reason):
            return {"type": "ForkDetected", "seq": seq, "reason": reason.value}
    raise AssertionError(event)  # pragma: no cover


@contextmanager
def recording(out: list[dict[str, str]]) -> Iterator[None]:
    """Append every ``KemPublicKey.encapsulate`` result to ``out``, in call order."""
    original = KemPublicKey.encapsulate

    def encapsulate(self: KemPublicKey) -> tuple[bytes, bytes]:
        shared, ciphertext = original(self)
        out.append(
            {
                "encapsulation_key_sha256": sha(self.raw),
                "shared_secret": shared.hex(),
                "ciphertext": ciphertext.hex(),
            }
        )
        return shared, ciphertext

    KemPublicKey.encapsulate = encapsulate  # type: ignore[method-assign]
    try:
        yield
    finally:
        KemPublicKey.encapsulate = original  # type: ignore[method-assign]


# The conversation, after the handshake. Alice is the inviter, Bob the acceptor; Bob has not
# heard back yet, so his first envelope here is still an ACCEPT envelope.
#   ("send", party, content) or ("deliver", party, envelope index)
SCRIPT: list[tuple[str, str, bytes | int]] = [
    ("send", "alice", b"a1: hello bob"),  # env 0, Alice's chain 1
    ("send", "alice", b""),  # env 1, an empty message
    ("send", "bob", b"b2: still waiting for you"),  # env 2, ACCEPT, Bob's chain 1
    ("deliver", "bob", 1),  # out of order: gap 1..1; Bob steps the DH ratchet
    ("deliver", "bob", 0),  # late: reordered, from a skipped key
    ("deliver", "alice", 2),  # Alice's current chain
    ("send", "bob", b"b3: " + bytes(range(256))),  # env 3, MESSAGE, Bob's chain 2
    ("send", "bob", b"b4: last of chain 2"),  # env 4
    ("deliver", "alice", 4),  # gap 3..3; Alice steps
    ("deliver", "alice", 3),  # reordered, from a skipped key of the new chain
    ("deliver", "alice", 3),  # replay: DuplicateMessageError, state unchanged
    ("send", "alice", b"a3"),  # env 5, Alice's chain 2
    ("send", "alice", b"a4: delayed by the relay"),  # env 6
    ("send", "alice", b"a5"),  # env 7
    ("deliver", "bob", 5),  # Bob steps again
    ("deliver", "bob", 7),  # gap 4..4
    ("deliver", "bob", 5),  # replay: DuplicateMessageError
    ("deliver", "alice", 2),  # replay from a chain Alice has closed (retired): DuplicateMessageError
    ("deliver", "bob", 6),  # the delayed one arrives last: reordered
]


def handshake() -> tuple[dict[str, Any], bytes, bytes]:
    """Run the handshake; return its vector and both sessions' states."""
    s = seeds()
    pending, invitation = create_invitation(
        rng=DeterministicRandom(s["inviter"]), now=NOW, lifetime=LIFETIME, reply_address=REPLY_ADDRESS
    )
    again, invitation_again = create_invitation(
        rng=DeterministicRandom(s["inviter"]), now=NOW, lifetime=LIFETIME, reply_address=REPLY_ADDRESS
    )
    assert invitation_again == invitation
    assert again.to_bytes() == pending.to_bytes()
    pending_state = pending.to_bytes()

    encapsulations: list[dict[str, str]] = []
    with recording(encapsulations):
        bob, accept_envelope = accept_invitation(
            invitation, content=FIRST_CONTENT, rng=DeterministicRandom(s["acceptor"]), now=NOW
        )
        restored = PendingInvitation.from_bytes(pending_state, rng=DeterministicRandom(s["inviter-complete"]))
        alice, events = restored.complete(accept_envelope, now=NOW)
    assert alice.transcript_hash == bob.transcript_hash
    assert alice.safety_code == bob.safety_code
    vector = {
        "source": (
            "burnerkit: tests/vectors/generate_transcripts.py (docs/protocol.md §5, §6.4, §7.3, §8); "
            "regenerated only for a deliberate, versioned change"
        ),
        "seeds": {name: value.hex() for name, value in s.items()},
        "now": NOW,
        "lifetime": LIFETIME,
        "reply_address": REPLY_ADDRESS.hex(),
        "one_time": True,
        "first_content": FIRST_CONTENT.hex(),
        "invitation": invitation.hex(),
        "pending_state": pending_state.hex(),
        "encapsulations": encapsulations,
        "accept_envelope": accept_envelope.hex(),
        "acceptor_state": bob.to_bytes().hex(),
        "complete_events": [event_to_json(e) for e in events],
        "inviter_state_sha256": sha(alice.to_bytes()),
        "pending_state_after_sha256": sha(restored.to_bytes()),
        "transcript_hash": alice.transcript_hash.hex(),
        "safety_code": alice.safety_code,
        "safety_code_bytes": alice.safety_code_bytes.hex(),
    }
    return vector, alice.to_bytes(), bob.to_bytes()


def conversation(alice_state: bytes, bob_state: bytes) -> dict[str, Any]:
    """Run :data:`SCRIPT` from the post-handshake states; return its vector."""
    s = seeds()
    sessions = {
        "alice": Session.from_bytes(alice_state, rng=DeterministicRandom(s["alice"])),
        "bob": Session.from_bytes(bob_state, rng=DeterministicRandom(s["bob"])),
    }
    envelopes: list[bytes] = []
    actions: list[dict[str, Any]] = []
    encapsulations: list[dict[str, str]] = []
    now = NOW
    with recording(encapsulations):
        for op, party, arg in SCRIPT:
            now += 7
            session = sessions[party]
            if op == "send":
                assert isinstance(arg, bytes)
                seq = session.next_seq
                envelopes.append(session.send(arg, now=now))
                actions.append(
                    {
                        "op": "send",
                        "party": party,
                        "now": now,
                        "content": arg.hex(),
                        "seq": seq,
                        "envelope": len(envelopes) - 1,
                    }
                )
                continue
            assert isinstance(arg, int)
            action: dict[str, Any] = {"op": "deliver", "party": party, "now": now, "envelope": arg}
            before = session.to_bytes()
            try:
                action["events"] = [event_to_json(e) for e in session.receive(envelopes[arg], now=now)]
            except BurnerError as exc:
                assert session.to_bytes() == before
                action["error"] = type(exc).__name__
            actions.append(action)
    alice, bob = sessions["alice"], sessions["bob"]
    return {
        "source": (
            "burnerkit: tests/vectors/generate_transcripts.py (docs/protocol.md §6, §7, §8); "
            "continues from handshake_v1.json"
        ),
        "seeds": {"alice": s["alice"].hex(), "bob": s["bob"].hex()},
        "alice_state": alice_state.hex(),
        "bob_state": bob_state.hex(),
        "encapsulations": encapsulations,
        "envelopes": [e.hex() for e in envelopes],
        "actions": actions,
        "transcript_hash": alice.transcript_hash.hex(),
        "safety_code": alice.safety_code,
        "final_alice_state_sha256": sha(alice.to_bytes()),
        "final_bob_state_sha256": sha(bob.to_bytes()),
        "final_alice_state_size": len(alice.to_bytes()),
        "final_bob_state_size": len(bob.to_bytes()),
    }


def main() -> None:
    handshake_vector, alice_state, bob_state = handshake()
    ratchet_vector = conversation(alice_state, bob_state)
    for name, vector in (("handshake_v1.json", handshake_vector), ("ratchet_v1.json", ratchet_vector)):
        path = HERE / name
        path.write_text(json.dumps(vector, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
