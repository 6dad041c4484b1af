"""Sealing to an X25519 key (docs/protocol.md §17.9.5): opens for its recipient, label and AD only."""

from __future__ import annotations

import pytest

from burnerkit.crypto.kdf import LABEL_SEAL_ORDER, LABEL_SEAL_REPORT
from burnerkit.crypto.keys import X25519PrivateKey, X25519PublicKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.crypto.seal import SEAL_OVERHEAD, open_sealed, seal_to
from burnerkit.errors import DecryptionError, InvalidKeyError

RNG = DeterministicRandom(b"seal tests")
ME = X25519PrivateKey.generate(RNG)


def test_round_trip_adds_the_overhead_only() -> None:
    sealed = seal_to(ME.public_key, b"attack at dawn", label=LABEL_SEAL_REPORT, rng=RNG, aad=b"ad")
    assert len(sealed) == len(b"attack at dawn") + SEAL_OVERHEAD
    assert open_sealed(ME, sealed, label=LABEL_SEAL_REPORT, aad=b"ad") == b"attack at dawn"


def test_two_seals_of_one_message_share_no_byte_pattern() -> None:
    a = seal_to(ME.public_key, b"same", label=LABEL_SEAL_REPORT, rng=RNG)
    b = seal_to(ME.public_key, b"same", label=LABEL_SEAL_REPORT, rng=RNG)
    assert a != b
    assert a[:32] != b[:32]


@pytest.mark.parametrize(
    "attack",
    ["another-recipient", "another-label", "another-ad", "flipped-key", "flipped-body", "truncated", "empty"],
)
def test_sealed_message_opens_for_nothing_else(attack: str) -> None:
    sealed = seal_to(ME.public_key, b"secret", label=LABEL_SEAL_REPORT, rng=RNG, aad=b"ad")
    key, label, ad = ME, LABEL_SEAL_REPORT, b"ad"
    match attack:
        case "another-recipient":
            key = X25519PrivateKey.generate(RNG)
        case "another-label":
            label = LABEL_SEAL_ORDER  # cross-protocol: a report presented as a burn order
        case "another-ad":
            ad = b"other"
        case "flipped-key":
            sealed = bytes([sealed[0] ^ 1]) + sealed[1:]
        case "flipped-body":
            sealed = sealed[:-1] + bytes([sealed[-1] ^ 1])
        case "truncated":
            sealed = sealed[: SEAL_OVERHEAD - 1]
        case "empty":
            sealed = b""
    with pytest.raises(DecryptionError) as caught:
        open_sealed(key, sealed, label=label, aad=ad)
    assert str(caught.value) == str(DecryptionError())  # one message for every failure: no oracle


def test_small_order_ephemeral_key_is_refused_opaquely() -> None:
    sealed = bytes(32) + bytes(16)
    with pytest.raises(DecryptionError):
        open_sealed(ME, sealed, label=LABEL_SEAL_REPORT)


def test_sealing_to_a_small_order_key_is_refused() -> None:
    with pytest.raises(InvalidKeyError):
        seal_to(X25519PublicKey.from_bytes(bytes(32)), b"x", label=LABEL_SEAL_REPORT, rng=RNG)
