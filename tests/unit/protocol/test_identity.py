"""Per-contact identities and the safety code (docs/protocol.md §3)."""

from __future__ import annotations

import re

import pytest

from burnerkit.crypto.kdf import LABEL_SAFETY_CODE, sha256
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import InvalidKeyError
from burnerkit.protocol.identity import (
    SAFETY_CODE_GROUPS,
    Identity,
    PublicIdentity,
    safety_code,
    safety_code_bytes,
)
from tests.helpers import SessionPair

SAFETY_CODE_FORMAT = re.compile(r"\d{5}( \d{5}){11}")


@pytest.fixture
def rng():
    return DeterministicRandom(b"identity tests")


def test_identity_round_trip(rng):
    identity = Identity.generate(rng)
    data = identity.to_bytes()
    assert len(data) == 64
    restored = Identity.from_bytes(data)
    assert restored.to_bytes() == data
    assert restored.public == identity.public


def test_identity_bytes_are_signing_seed_then_dh_private(rng):
    identity = Identity.generate(rng)
    assert identity.to_bytes() == identity.signing.private_bytes() + identity.dh.private_bytes()


def test_public_identity_round_trip(rng):
    public = Identity.generate(rng).public
    data = public.to_bytes()
    assert data == public.signing.raw + public.dh.raw
    assert PublicIdentity.from_bytes(data) == public


@pytest.mark.parametrize("size", [0, 63, 65])
def test_identity_of_wrong_length_is_refused(size):
    with pytest.raises(ValueError, match="identity must be 64 bytes"):
        Identity.from_bytes(bytes(size))
    with pytest.raises(ValueError, match="public identity must be 64 bytes"):
        PublicIdentity.from_bytes(bytes(size))


def test_public_identity_with_small_order_signing_key_is_refused(rng):
    # The Ed25519 identity point (y = 1) would verify forged signatures.
    # NB: the docstring promises ValueError; what is raised is InvalidKeyError.
    identity_point = (1).to_bytes(32, "little")
    with pytest.raises(InvalidKeyError):
        PublicIdentity.from_bytes(identity_point + Identity.generate(rng).public.dh.raw)


def test_identities_are_fresh_per_call(rng):
    a, b = Identity.generate(rng), Identity.generate(rng)
    assert a.public != b.public
    assert a.to_bytes() != b.to_bytes()


def test_safety_code_is_twelve_groups_of_five_digits(rng):
    a, b = Identity.generate(rng).public, Identity.generate(rng).public
    code = safety_code(a, b)
    assert SAFETY_CODE_GROUPS == 12
    assert SAFETY_CODE_FORMAT.fullmatch(code)
    assert len(code.split(" ")) == 12


def test_safety_code_is_symmetric(rng):
    a, b = Identity.generate(rng).public, Identity.generate(rng).public
    assert safety_code(a, b) == safety_code(b, a)
    assert safety_code_bytes(a, b) == safety_code_bytes(b, a)


def test_safety_code_changes_with_either_identity(rng):
    a, b, c = (Identity.generate(rng).public for _ in range(3))
    assert safety_code(a, b) != safety_code(a, c)
    assert safety_code(a, b) != safety_code(c, b)


def test_safety_code_bytes_layout(rng):
    a, b = Identity.generate(rng).public, Identity.generate(rng).public
    first, second = sorted((a.to_bytes(), b.to_bytes()))
    data = safety_code_bytes(a, b)
    assert len(data) == 33
    assert data == b"\x01" + sha256(LABEL_SAFETY_CODE, first, second)


def test_safety_code_is_equal_on_both_sides_of_a_session():
    pair = SessionPair()
    assert pair.alice.safety_code == pair.bob.safety_code
    assert SAFETY_CODE_FORMAT.fullmatch(pair.alice.safety_code)
    assert pair.alice.safety_code_bytes == pair.bob.safety_code_bytes
    assert pair.alice.their_identity == pair.bob.our_identity
    assert pair.bob.their_identity == pair.alice.our_identity


def test_identity_repr_shows_no_private_bytes(rng):
    identity = Identity.generate(rng)
    text = repr(identity)
    assert text.startswith("Identity(public=")
    assert identity.signing.private_bytes().hex() not in text
    assert identity.dh.private_bytes().hex() not in text
    assert identity.signing.private_bytes()[:4].hex() not in text
    assert identity.dh.private_bytes()[:4].hex() not in text
