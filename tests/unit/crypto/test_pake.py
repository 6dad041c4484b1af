"""SPAKE2 wrapper (crypto/pake.py): agreement, binding, and bad messages that change nothing."""

from __future__ import annotations

import pytest

from burnerkit.crypto import pake
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import InvalidKeyError

ID = b"burner/v1/pairing/spake2\x00\x07"


def pair(
    pw_a: bytes = b"7-acme-adroitness", pw_b: bytes = b"7-acme-adroitness", id_a: bytes = ID, id_b: bytes = ID
) -> tuple[pake.PakeState, pake.PakeState]:
    a = pake.start(pw_a, id_a, DeterministicRandom(b"a"))
    b = pake.start(pw_b, id_b, DeterministicRandom(b"b"))
    return a, b


def test_same_password_and_identity_give_one_key():
    a, b = pair()
    key = a.finish(b.message)
    assert key == b.finish(a.message)
    assert len(key) == pake.PAKE_KEY_SIZE
    assert len(a.message) == pake.PAKE_MESSAGE_SIZE
    assert a.message[:1] == b"S"


def test_wrong_password_gives_unrelated_keys():
    a, b = pair(pw_b=b"7-acme-adviser")
    assert a.finish(b.message) != b.finish(a.message)


def test_identity_binds_the_nameplate():
    a, b = pair(id_b=ID[:-1] + b"\x08")
    assert a.finish(b.message) != b.finish(a.message)


def test_deterministic_with_a_seeded_rng():
    assert pair()[0].message == pair()[0].message


def test_finish_can_run_again_after_a_bad_message():
    a, b = pair()
    with pytest.raises(InvalidKeyError):
        a.finish(b"S" + bytes(32))
    assert a.finish(b.message) == a.finish(b.message) == b.finish(a.message)


def test_reflected_message_is_rejected():
    a, _ = pair()
    with pytest.raises(InvalidKeyError):
        a.finish(a.message)


# Identity (0,1) encodes as 01 00..00 and has order 1; (0,-1) has order 2; a y with no x
# is not on the curve; all-zero; wrong lengths; asymmetric-side markers.
BAD = [
    b"S" + b"\x01" + bytes(31),
    b"S" + bytes([0xEC]) + b"\xff" * 30 + b"\x7f",
    b"S" + b"\x02" + bytes(31),
    b"S" + bytes(32),
    b"S" + bytes(31),
    b"S" + bytes(33),
    b"",
]


@pytest.mark.parametrize("message", BAD, ids=range(len(BAD)))
def test_invalid_points_and_sizes_are_one_typed_error(message):
    a, b = pair()
    with pytest.raises(InvalidKeyError, match=r"^invalid PAKE message$"):
        a.finish(message)
    assert a.finish(b.message) == b.finish(a.message)


@pytest.mark.parametrize("side", [b"A", b"B", b"\x00"])
def test_message_of_an_asymmetric_side_is_rejected(side):
    a, b = pair()
    with pytest.raises(InvalidKeyError):
        a.finish(side + b.message[1:])


def test_repr_and_errors_hold_no_secret():
    a, _ = pair()
    assert repr(a) == "PakeState(<secret>)"
    with pytest.raises(ValueError, match="empty"):
        pake.start(b"", ID, DeterministicRandom(b"x"))
