"""Known-answer and misuse tests for burnerkit.crypto.keys (X25519, Ed25519, ML-KEM-768)."""

from __future__ import annotations

import pytest

from burnerkit.crypto.keys import (
    ED25519_SIGNATURE_SIZE,
    KEM_CIPHERTEXT_SIZE,
    KEM_PUBLIC_KEY_SIZE,
    KEM_SEED_SIZE,
    KEM_SHARED_SECRET_SIZE,
    KemPrivateKey,
    KemPublicKey,
    SigningKey,
    VerifyKey,
    X25519PrivateKey,
    X25519PublicKey,
)
from burnerkit.crypto.rng import DeterministicRandom, SystemRandom
from burnerkit.errors import InvalidKeyError, SignatureError
from tests.vectorio import load

X25519 = load("x25519_rfc7748")
ED25519 = load("ed25519_rfc8032")
MLKEM = load("mlkem768_kat")

h = bytes.fromhex

# The order of the Ed25519 base point, for the signature-malleability test.
ED25519_L = 2**252 + 27742317777372353535851937790883648493
# The ML-KEM modulus; an encapsulation key holds 3 x 256 12-bit coefficients, then rho.
MLKEM_Q = 3329
MLKEM_COEFFICIENTS = 3 * 256


def _x25519(scalar: bytes, u: bytes) -> bytes:
    return X25519PrivateKey.from_bytes(scalar).exchange(X25519PublicKey.from_bytes(u))


def _kem_seed(vector: dict[str, str]) -> bytes:
    return h(vector["d"]) + h(vector["z"])


# --------------------------------------------------------------------- X25519


@pytest.mark.parametrize("vector", X25519["scalar_mult"], ids=lambda v: v["name"])
def test_x25519_rfc7748_scalar_mult(vector):
    assert _x25519(h(vector["scalar"]), h(vector["u"])) == h(vector["output"])


@pytest.mark.parametrize("result", X25519["iterated"]["results"], ids=lambda r: f"{r['iterations']}x")
def test_x25519_rfc7748_iterated(result):
    k = u = h(X25519["iterated"]["start"])
    for _ in range(result["iterations"]):
        k, u = _x25519(k, u), k
    assert k == h(result["k"])


def test_x25519_rfc7748_alice_bob_exchange():
    dh = X25519["dh"]
    alice = X25519PrivateKey.from_bytes(h(dh["alice_private"]))
    bob = X25519PrivateKey.from_bytes(h(dh["bob_private"]))
    assert alice.public_key.raw == h(dh["alice_public"])
    assert bob.public_key.raw == h(dh["bob_public"])
    assert alice.exchange(X25519PublicKey.from_bytes(h(dh["bob_public"]))) == h(dh["shared"])
    assert bob.exchange(alice.public_key) == h(dh["shared"])


def test_x25519_private_bytes_roundtrip():
    raw = h(X25519["dh"]["alice_private"])
    key = X25519PrivateKey.from_bytes(raw)
    assert key.private_bytes() == raw
    assert X25519PrivateKey.from_bytes(key.private_bytes()).public_key == key.public_key


@pytest.mark.parametrize("point", X25519["small_order"], ids=lambda p: f"{p['u'][:8]}-{p['u'][-2:]}")
def test_small_order_x25519_point_is_rejected(point):
    # A peer who sends a point of small order forces the DH output to a value it
    # knows (all zeros), whatever our private key: the small-subgroup attack.
    peer = X25519PublicKey.from_bytes(h(point["u"]))
    for ours in (
        X25519PrivateKey.from_bytes(h(X25519["dh"]["alice_private"])),
        X25519PrivateKey.generate(SystemRandom()),
    ):
        with pytest.raises(InvalidKeyError):
            ours.exchange(peer)


def test_x25519_generate_is_reproducible_from_the_rng():
    a = X25519PrivateKey.generate(DeterministicRandom(b"x25519"))
    b = X25519PrivateKey.generate(DeterministicRandom(b"x25519"))
    c = X25519PrivateKey.generate(DeterministicRandom(b"another"))
    assert a.public_key == b.public_key
    assert a.public_key != c.public_key
    assert a.private_bytes() == DeterministicRandom(b"x25519").random_bytes(32)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_x25519_wrong_length_raises_value_error(size):
    with pytest.raises(ValueError):
        X25519PublicKey.from_bytes(bytes(size))
    with pytest.raises(ValueError):
        X25519PrivateKey.from_bytes(bytes(size))


def test_x25519_non_bytes_raises_type_error():
    with pytest.raises(TypeError):
        X25519PublicKey.from_bytes("00" * 32)  # type: ignore[arg-type]


def test_x25519_public_key_equality_and_hash():
    raw = h(X25519["dh"]["bob_public"])
    a, b = X25519PublicKey.from_bytes(raw), X25519PublicKey.from_bytes(bytes(raw))
    assert a == b
    assert hash(a) == hash(b)
    assert a != X25519PublicKey.from_bytes(h(X25519["dh"]["alice_public"]))
    assert a != raw


# -------------------------------------------------------------------- Ed25519


@pytest.mark.parametrize("case", ED25519["cases"], ids=lambda c: c["name"])
def test_ed25519_rfc8032_public_key(case):
    key = SigningKey.from_bytes(h(case["secret_key"]))
    assert key.verify_key.raw == h(case["public_key"])
    assert key.private_bytes() == h(case["secret_key"])


@pytest.mark.parametrize("case", ED25519["cases"], ids=lambda c: c["name"])
def test_ed25519_rfc8032_sign(case):
    key = SigningKey.from_bytes(h(case["secret_key"]))
    assert key.sign(h(case["message"])) == h(case["signature"])


@pytest.mark.parametrize("case", ED25519["cases"], ids=lambda c: c["name"])
def test_ed25519_rfc8032_verify(case):
    VerifyKey.from_bytes(h(case["public_key"])).verify(h(case["signature"]), h(case["message"]))


def _forgeries(case: dict[str, str]) -> list[tuple[str, bytes, bytes, bytes]]:
    """(what, public key, signature, message) tuples that must not verify."""
    pk, sig, msg = h(case["public_key"]), h(case["signature"]), h(case["message"])

    def flip(data: bytes, i: int) -> bytes:
        return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]

    s = int.from_bytes(sig[32:], "little")
    other_pk = SigningKey.generate(DeterministicRandom(b"someone else")).verify_key.raw
    name = case["name"]
    return [
        (f"{name}: R bit flipped", pk, flip(sig, 0), msg),
        (f"{name}: S bit flipped", pk, flip(sig, 40), msg),
        (f"{name}: S + L (malleated)", pk, sig[:32] + (s + ED25519_L).to_bytes(32, "little"), msg),
        (f"{name}: message changed", pk, sig, msg + b"\x00"),
        (f"{name}: other key", other_pk, sig, msg),
        (f"{name}: truncated", pk, sig[:-1], msg),
        (f"{name}: extended", pk, sig + b"\x00", msg),
        (f"{name}: all zero", pk, bytes(ED25519_SIGNATURE_SIZE), msg),
    ]


@pytest.mark.parametrize(
    ("what", "pk", "sig", "msg"),
    [f for case in ED25519["cases"][:3] for f in _forgeries(case)],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_ed25519_forged_signature_raises_signature_error(what, pk, sig, msg):
    with pytest.raises(SignatureError, match=r"^signature did not verify$"):
        VerifyKey.from_bytes(pk).verify(sig, msg)


def test_ed25519_sign_verify_roundtrip_and_determinism():
    key = SigningKey.generate(DeterministicRandom(b"ed25519"))
    sig = key.sign(b"burner")
    assert len(sig) == ED25519_SIGNATURE_SIZE
    assert key.sign(b"burner") == sig
    key.verify_key.verify(sig, b"burner")
    assert SigningKey.generate(DeterministicRandom(b"ed25519")).verify_key == key.verify_key


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_ed25519_wrong_length_raises_value_error(size):
    with pytest.raises(ValueError):
        VerifyKey.from_bytes(bytes(size))
    with pytest.raises(ValueError):
        SigningKey.from_bytes(bytes(size))


def test_ed25519_off_curve_public_key_never_verifies():
    # y = 2 has no x on edwards25519: -x^2 + y^2 = 1 + d x^2 y^2 has no solution.
    # Parsing accepts it (the check would cost a modexp); OpenSSL refuses to decode
    # it at verify time, so no signature, forged or not, verifies under it.
    key = VerifyKey.from_bytes((2).to_bytes(32, "little"))
    for signature in (bytes(64), b"\x01" + bytes(63), bytes(range(64))):
        with pytest.raises(SignatureError):
            key.verify(signature, b"any message")


def test_ed25519_small_order_public_key_is_rejected():
    identity = (1).to_bytes(32, "little")
    try:
        key = VerifyKey.from_bytes(identity)
    except InvalidKeyError:
        return
    forged = identity + bytes(32)  # R = identity, S = 0: [S]B == R + [k]A for every k
    try:
        key.verify(forged, b"any message at all")
    except SignatureError:
        return
    raise AssertionError("small-order Ed25519 public key accepted and forgery verified")


# ----------------------------------------------------------------- ML-KEM-768


@pytest.mark.parametrize("vector", MLKEM["vectors"], ids=lambda v: f"count={v['count']}")
def test_mlkem768_keygen_from_seed_kat(vector):
    key = KemPrivateKey.from_seed(_kem_seed(vector))
    assert key.public_key.raw == h(vector["pk"])
    assert key.public_key == KemPublicKey.from_bytes(h(vector["pk"]))
    assert key.seed() == _kem_seed(vector)


@pytest.mark.parametrize("vector", MLKEM["vectors"], ids=lambda v: f"count={v['count']}")
def test_mlkem768_decapsulation_kat(vector):
    key = KemPrivateKey.from_seed(_kem_seed(vector))
    assert key.decapsulate(h(vector["ct"])) == h(vector["ss"])


@pytest.mark.parametrize("vector", MLKEM["vectors"], ids=lambda v: f"count={v['count']}")
def test_mlkem768_implicit_rejection_kat(vector):
    key = KemPrivateKey.from_seed(_kem_seed(vector))
    secret = key.decapsulate(h(vector["ct_n"]))
    assert secret == h(vector["ss_n"])
    assert secret != h(vector["ss"])


def test_mlkem768_encapsulate_decapsulate_roundtrip():
    key = KemPrivateKey.generate(SystemRandom())
    peer = KemPublicKey.from_bytes(key.public_key.raw)
    secret, ciphertext = peer.encapsulate()
    assert len(secret) == KEM_SHARED_SECRET_SIZE
    assert len(ciphertext) == KEM_CIPHERTEXT_SIZE
    assert key.decapsulate(ciphertext) == secret
    # Encapsulation is randomised: a second one gives a fresh secret and ciphertext.
    secret2, ciphertext2 = peer.encapsulate()
    assert (secret2, ciphertext2) != (secret, ciphertext)
    assert key.decapsulate(ciphertext2) == secret2


def test_mlkem768_tampered_ciphertext_gives_another_secret():
    key = KemPrivateKey.generate(DeterministicRandom(b"mlkem"))
    secret, ciphertext = key.public_key.encapsulate()
    tampered = bytes([ciphertext[0] ^ 0x01]) + ciphertext[1:]
    assert key.decapsulate(tampered) != secret  # implicit rejection, no exception


def test_mlkem768_generate_is_reproducible_from_the_rng():
    a = KemPrivateKey.generate(DeterministicRandom(b"mlkem"))
    b = KemPrivateKey.generate(DeterministicRandom(b"mlkem"))
    assert a.public_key == b.public_key
    assert a.seed() == DeterministicRandom(b"mlkem").random_bytes(KEM_SEED_SIZE)


@pytest.mark.parametrize("size", [0, KEM_SEED_SIZE - 1, KEM_SEED_SIZE + 1])
def test_mlkem768_wrong_seed_length_raises_value_error(size):
    with pytest.raises(ValueError):
        KemPrivateKey.from_seed(bytes(size))


@pytest.mark.parametrize("size", [0, 32, KEM_PUBLIC_KEY_SIZE - 1, KEM_PUBLIC_KEY_SIZE + 1])
def test_mlkem768_wrong_public_key_length_raises_value_error(size):
    with pytest.raises(ValueError):
        KemPublicKey.from_bytes(bytes(size))


@pytest.mark.parametrize("size", [0, 32, KEM_CIPHERTEXT_SIZE - 1, KEM_CIPHERTEXT_SIZE + 1])
def test_mlkem768_wrong_ciphertext_length_raises_value_error(size):
    key = KemPrivateKey.from_seed(_kem_seed(MLKEM["vectors"][0]))
    with pytest.raises(ValueError):
        key.decapsulate(bytes(size))


def _set_coefficient(ek: bytes, index: int, value: int) -> bytes:
    """Overwrite the ``index``-th 12-bit coefficient of t-hat (ByteEncode_12, FIPS 203 Alg. 5)."""
    out = bytearray(ek)
    base = 3 * (index // 2)
    if index % 2 == 0:
        out[base] = value & 0xFF
        out[base + 1] = (out[base + 1] & 0xF0) | (value >> 8)
    else:
        out[base + 1] = (out[base + 1] & 0x0F) | ((value & 0x0F) << 4)
        out[base + 2] = value >> 4
    return bytes(out)


def test_mlkem768_coefficient_helper_roundtrips_a_valid_key():
    ek = h(MLKEM["vectors"][0]["pk"])
    assert _set_coefficient(ek, 0, ek[0] | (ek[1] & 0x0F) << 8) == ek
    assert _set_coefficient(ek, MLKEM_COEFFICIENTS - 1, ek[1151] << 4 | ek[1150] >> 4) == ek


@pytest.mark.parametrize("index", [0, 1, 255, 256, MLKEM_COEFFICIENTS - 1])
@pytest.mark.parametrize("value", [MLKEM_Q, MLKEM_Q + 1, 0xFFF])
def test_mlkem768_public_key_failing_modulus_check_raises_invalid_key_error(index, value):
    # FIPS 203 §7.2: ek is valid only if ByteEncode_12(ByteDecode_12(ek)) == ek,
    # that is, every coefficient is below q.
    bad = _set_coefficient(h(MLKEM["vectors"][0]["pk"]), index, value)
    with pytest.raises(InvalidKeyError):
        KemPublicKey.from_bytes(bad)


@pytest.mark.parametrize("index", [0, MLKEM_COEFFICIENTS - 1])
def test_mlkem768_public_key_with_coefficient_q_minus_1_is_accepted(index):
    ok = _set_coefficient(h(MLKEM["vectors"][0]["pk"]), index, MLKEM_Q - 1)
    assert KemPublicKey.from_bytes(ok).raw == ok


# ----------------------------------------------------------------------- repr


def _private_keys() -> list[tuple[object, bytes]]:
    x = X25519PrivateKey.from_bytes(h(X25519["dh"]["alice_private"]))
    s = SigningKey.from_bytes(h(ED25519["cases"][0]["secret_key"]))
    k = KemPrivateKey.from_seed(_kem_seed(MLKEM["vectors"][0]))
    return [(x, x.private_bytes()), (s, s.private_bytes()), (k, k.seed())]


@pytest.mark.parametrize(("key", "secret"), _private_keys(), ids=lambda v: type(v).__name__)
def test_private_key_repr_holds_no_private_bytes(key, secret):
    text = repr(key)
    assert secret.hex() not in text
    assert secret[:4].hex() not in text
    assert str(secret) not in text
    assert type(key).__name__ in text
