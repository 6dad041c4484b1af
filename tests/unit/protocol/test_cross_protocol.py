"""Cross-protocol reuse (threat model §5.10): no sub-protocol accepts another's output.

Seven sub-protocols sign, MAC or seal something, each under its own label from the one
registry (``burnerkit.crypto.kdf.LABELS``):

- message: the ratchet's AEAD, its keys from the root KDF (``LABEL_ROOT``);
- invitation: the inviter's Ed25519 signature (``LABEL_SIG_INVITATION``);
- acceptance: the acceptor's signature over the transcript ``T`` (``LABEL_SIG_ACCEPT``);
- relay command: Ed25519 over the session id and the command (``LABEL_RELAY_AUTH``);
- ACK MAC: HMAC under a per-session ack key (``LABEL_RELAY_ACK_MAC``);
- vault record: AEAD, its key and associated data from the vault key (``LABEL_VAULT_RECORD``);
- pairing confirmation: HMAC under a key from the PAKE key (``LABEL_PAIRING_CONFIRM``).

Two checks for every ordered pair (A, B), each through the real producer and the real
verifier:

- *Reuse*: A's valid output, as it is, is refused by B's verifier.
- *Labels*: B's producer, run with the same key and the same bytes but with A's label
  in place of its own (the label constant its module reads is swapped for the call), makes
  an output B's verifier refuses; the same producer with B's own label makes one it accepts.
  So everything but the label is right, and the label alone is why B refuses. If two
  sub-protocols shared a label, or one stopped using its own, this test fails: the swap
  would change nothing and B would accept.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest

from burnerkit.crypto import kdf
from burnerkit.crypto.hybrid import combine
from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import BurnerError
from burnerkit.protocol import handshake, pairing, ratchet
from burnerkit.protocol.handshake import Invitation, accept_invitation, create_invitation
from burnerkit.protocol.pairing import Pairing, ShortCode, Side
from burnerkit.relay.protocol import Ack, Sub, decode_client_frame, encode_client_frame
from burnerkit.relay.protocol import auth as relay
from burnerkit.vault import format as vault_format
from burnerkit.vault.format import RecordKeys
from tests.helpers import ALICE, BOB, T0, SessionPair

KEY = bytes(range(32))  #: the one secret every keyed sub-protocol here is given
SESSION = bytes(range(100, 132))  #: a relay session value
QUEUE = bytes(range(24))  #: a relay queue id


@contextmanager
def label_swapped(module: ModuleType, name: str, value: object) -> Iterator[None]:
    """``module.name`` is ``value`` for the duration: the label the producer reads (or, for
    the ratchet, the one function that reads it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, name, value)
        yield


def refused(verify: Callable[[], object]) -> bool:
    """False if ``verify`` accepts; True if it refuses with a typed error or says False."""
    try:
        return verify() is False
    except BurnerError:
        return True


class SubProtocol:
    """One sub-protocol: its producer (under any label) and its verifier."""

    name: str
    label: bytes

    def make(self, label: bytes) -> bytes:
        raise NotImplementedError

    def refuses(self, candidate: bytes) -> bool:
        raise NotImplementedError


class Message(SubProtocol):
    """A MESSAGE envelope from Bob's chain that opens when he hears from Alice."""

    name, label = "message", kdf.LABEL_ROOT

    def __init__(self) -> None:
        self.pair = SessionPair()
        self.pair.exchange(BOB, b"ping")
        self.from_alice = self.pair.send(ALICE, b"pong")

    def make(self, label: bytes) -> bytes:
        bob = self.pair.clone(BOB)
        real = ratchet._root_kdf
        calls = 0

        def root_kdf(root_key: bytes, dh_out: bytes, kem_secret: bytes) -> tuple[bytes, bytes, bytes]:
            # The first derivation is Alice's chain (it must match hers); the second is Bob's
            # new sending chain, the one his next message is sealed under.
            nonlocal calls
            calls += 1
            if calls == 1:
                return real(root_key, dh_out, kem_secret)
            out = combine(root_key, dh_out, kem_secret, info=label, length=ratchet._ROOT_OUTPUT)
            return out[:32], out[32:64], out[64:]

        with label_swapped(ratchet, "_root_kdf", root_kdf):
            bob.receive(self.from_alice, now=self.pair.now)
        assert calls == 2
        return bob.send(b"from bob", now=self.pair.now)

    def refuses(self, candidate: bytes) -> bool:
        alice = self.pair.clone(ALICE)
        return refused(lambda: alice.receive(candidate, now=self.pair.now))


class InvitationSignature(SubProtocol):
    name, label = "invitation", kdf.LABEL_SIG_INVITATION

    def make(self, label: bytes) -> bytes:
        with label_swapped(handshake, "LABEL_SIG_INVITATION", label):
            _, raw = create_invitation(
                rng=DeterministicRandom(b"inviter"), now=T0, lifetime=3600, reply_address=b"q"
            )
        return raw

    def refuses(self, candidate: bytes) -> bool:
        return refused(lambda: Invitation.from_bytes(candidate))


class AcceptanceSignature(SubProtocol):
    name, label = "acceptance", kdf.LABEL_SIG_ACCEPT

    @staticmethod
    def invitation() -> tuple[handshake.PendingInvitation, bytes]:
        return create_invitation(
            rng=DeterministicRandom(b"inviter"), now=T0, lifetime=3600, reply_address=b"q"
        )

    def make(self, label: bytes) -> bytes:
        _, raw = self.invitation()
        with label_swapped(handshake, "LABEL_SIG_ACCEPT", label):
            _, envelope = accept_invitation(raw, content=b"hi", rng=DeterministicRandom(b"acceptor"), now=T0)
        return envelope

    def refuses(self, candidate: bytes) -> bool:
        pending, _ = self.invitation()
        return refused(lambda: pending.complete(candidate, now=T0))


class RelayCommand(SubProtocol):
    name, label = "relay command", kdf.LABEL_RELAY_AUTH

    def __init__(self) -> None:
        self.key = SigningKey.generate(DeterministicRandom(KEY))

    def make(self, label: bytes) -> bytes:
        with label_swapped(relay, "LABEL_RELAY_AUTH", label):
            return encode_client_frame(bytes(24), QUEUE, Sub(), session_id=SESSION, signing_key=self.key)

    def refuses(self, candidate: bytes) -> bool:
        key = self.key.verify_key.raw
        return refused(lambda: relay.verify_signature(key, decode_client_frame(candidate), SESSION))


class AckMac(SubProtocol):
    name, label = "ACK MAC", kdf.LABEL_RELAY_ACK_MAC

    def make(self, label: bytes) -> bytes:
        with label_swapped(relay, "LABEL_RELAY_ACK_MAC", label):
            ack_key = relay.derive_ack_key(KEY, SESSION)
        return encode_client_frame(bytes(24), QUEUE, Ack(bytes(24)), session_id=SESSION, ack_key=ack_key)

    def refuses(self, candidate: bytes) -> bool:
        ack_key = relay.derive_ack_key(KEY, SESSION)
        return refused(lambda: relay.verify_ack_mac(ack_key, decode_client_frame(candidate), SESSION))


class VaultRecord(SubProtocol):
    name, label = "vault record", kdf.LABEL_VAULT_RECORD
    kind, key = "contact", b"alice"

    def make(self, label: bytes) -> bytes:
        with label_swapped(vault_format, "LABEL_VAULT_RECORD", label):
            (row,) = RecordKeys(KEY).seal(self.kind, self.key, b"value", DeterministicRandom(b"nonce"))
            return row.sealed

    def refuses(self, candidate: bytes) -> bool:
        keys = RecordKeys(KEY)
        return refused(lambda: keys.open_record(keys.row_id(self.kind, self.key), candidate, lambda _: None))


class PairingConfirmation(SubProtocol):
    """Side A's CONFIRM message, checked by side B (both on the same code and randomness)."""

    name, label = "pairing confirmation", kdf.LABEL_PAIRING_CONFIRM
    code = ShortCode(7, ("acme", "adroitness"))

    def machines(self) -> tuple[Pairing, Pairing, bytes, bytes]:
        a = Pairing(self.code, Side.A, b"invitation", rng=DeterministicRandom(b"side a"))
        b = Pairing(self.code, Side.B, b"ack", rng=DeterministicRandom(b"side b"))
        return a, b, a.start(), b.start()

    def make(self, label: bytes) -> bytes:
        a, _, _, pake_b = self.machines()
        with label_swapped(pairing, "LABEL_PAIRING_CONFIRM", label):
            confirm = a.receive(pake_b)
        assert confirm is not None
        return confirm

    def refuses(self, candidate: bytes) -> bool:
        _, b, pake_a, _ = self.machines()
        b.receive(pake_a)
        return refused(lambda: b.receive(candidate))


SUB_PROTOCOLS: list[type[SubProtocol]] = [
    Message,
    InvitationSignature,
    AcceptanceSignature,
    RelayCommand,
    AckMac,
    VaultRecord,
    PairingConfirmation,
]
PAIRS = list(itertools.permutations(SUB_PROTOCOLS, 2))


def pair_id(pair: Any) -> str:
    return f"{pair[0].name} as {pair[1].name}".replace(" ", "-")


def test_cross_protocol_every_sub_protocol_has_its_own_registered_label() -> None:
    labels = [sub.label for sub in SUB_PROTOCOLS]
    assert len(set(labels)) == len(labels)
    assert set(labels) <= set(kdf.LABELS.values())
    for a, b in itertools.permutations(labels, 2):
        assert not a.startswith(b)


@pytest.mark.parametrize("sub", SUB_PROTOCOLS, ids=lambda sub: sub.name.replace(" ", "-"))
def test_cross_protocol_each_producer_under_its_own_label_is_accepted(sub: type[SubProtocol]) -> None:
    # The control of every check below: the producer is run exactly as there, label and all.
    one = sub()
    assert not one.refuses(one.make(one.label))


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[pair_id(p) for p in PAIRS])
def test_cross_protocol_output_is_refused_by_another_verifier(
    a: type[SubProtocol], b: type[SubProtocol]
) -> None:
    output = a().make(a.label)
    assert b().refuses(output)


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[pair_id(p) for p in PAIRS])
def test_cross_protocol_output_under_another_label_is_refused(
    a: type[SubProtocol], b: type[SubProtocol]
) -> None:
    # B's producer, key and bytes, with A's label: refused, where the same with B's own
    # label is accepted (the control above). The label alone makes the difference.
    verifier = b()
    assert verifier.refuses(verifier.make(a.label))
