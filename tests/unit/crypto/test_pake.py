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


# -- small-order points, in every spelling ---------------------------------------------------------
#
# Derived here from the curve equation, independently of the wrapper's constants: a point
# times the group order L lands in the torsion subgroup (order dividing 8); one of order 8
# generates all eight.

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P


def _add(p1: tuple[int, int], p2: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = p1, p2
    t = D * x1 * x2 * y1 * y2 % P
    return (x1 * y2 + y1 * x2) * pow(1 + t, -1, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P


def _times(point: tuple[int, int], n: int) -> tuple[int, int]:
    result = (0, 1)
    while n:
        if n & 1:
            result = _add(result, point)
        point, n = _add(point, point), n >> 1
    return result


def _x_of(y: int) -> int | None:
    xx = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(xx, (P + 3) // 8, P)
    if x * x % P != xx:
        x = x * pow(2, (P - 1) // 4, P) % P
    return x if x * x % P == xx else None


def _order(point: tuple[int, int]) -> int:
    for order in (1, 2, 4, 8):
        if _times(point, order) == (0, 1):
            return order
    raise AssertionError("not a torsion point")


def _torsion_points() -> list[tuple[int, int]]:
    for y in range(2, 100):
        x = _x_of(y)
        if x is None:
            continue
        torsion = _times((x, y), L)
        if _order(torsion) == 8:
            return [_times(torsion, k) for k in range(8)]
    raise AssertionError("no point of order 8 found")  # pragma: no cover


def _spellings(point: tuple[int, int]) -> list[bytes]:
    """Every 32-byte string a lax decoder would read as ``point``."""
    x, y = point
    sign = 1 << 255
    ys = [y] + ([y + P] if y + P < sign else [])
    signs = [x & 1] if x else [0, 1]  # x = 0: either sign bit decodes to it
    return [(value | (sign if bit else 0)).to_bytes(32, "little") for value in ys for bit in signs]


TORSION = _torsion_points()
SMALL_ORDER = [
    (f"order{_order(pt)}-{i}-{k}", enc)
    for i, pt in enumerate(TORSION)
    for k, enc in enumerate(_spellings(pt))
]


def test_the_small_order_encodings_are_all_there():
    """8 canonical encodings and 6 non-canonical ones (y+p for y in {0, 1}; sign bit on x = 0)."""
    assert sorted(_order(pt) for pt in TORSION) == [1, 2, 4, 4, 8, 8, 8, 8]
    assert len({enc for _, enc in SMALL_ORDER}) == len(SMALL_ORDER) == 14
    assert {
        "0100000000000000000000000000000000000000000000000000000000000080",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    } <= {enc.hex() for _, enc in SMALL_ORDER}


@pytest.mark.parametrize("encoding", [enc for _, enc in SMALL_ORDER], ids=[name for name, _ in SMALL_ORDER])
def test_pake_refuses_small_order_point_encodings(encoding, monkeypatch):
    a, b = pair()
    # Refused by the wrapper itself: the spake2 package is never asked.
    monkeypatch.setattr("burnerkit.crypto.pake.SPAKE2_Symmetric.from_serialized", None)
    with pytest.raises(InvalidKeyError, match=r"^invalid PAKE message$"):
        a.finish(b"S" + encoding)
    monkeypatch.undo()
    assert a.finish(b.message) == b.finish(a.message)


def test_pake_refuses_any_non_canonical_encoding():
    """y ≥ p is never written by an honest encoder, whatever point it would decode to."""
    a, b = pair()
    for y in range(P, 1 << 255):  # the 19 values y + p for y = 0..18, with and without the sign bit
        for sign in (0, 1 << 255):
            with pytest.raises(InvalidKeyError, match=r"^invalid PAKE message$"):
                a.finish(b"S" + (y | sign).to_bytes(32, "little"))
    assert a.finish(b.message) == b.finish(a.message)
