"""Known-answer tests for burnerkit.crypto.kdf and checks on its label registry."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from burnerkit.crypto import kdf
from burnerkit.crypto.kdf import LABELS, KeyedMac, chain_step, hkdf, hmac_sha256, sha256
from tests.vectorio import load

HKDF = load("hkdf_rfc5869")

h = bytes.fromhex


def _stdlib_hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


# ----------------------------------------------------------------------- HKDF


@pytest.mark.parametrize("case", HKDF["cases"], ids=lambda c: c["name"])
def test_hkdf_rfc5869_okm(case):
    okm = hkdf(h(case["ikm"]), salt=h(case["salt"]), info=h(case["info"]), length=case["length"])
    assert okm == h(case["okm"])


@pytest.mark.parametrize("case", HKDF["cases"], ids=lambda c: c["name"])
def test_hkdf_rfc5869_prk_is_hmac_of_salt_and_ikm(case):
    # RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM); an absent salt is HashLen zeros,
    # which HMAC pads to the same block as the empty key.
    assert hmac_sha256(h(case["salt"]), h(case["ikm"])) == h(case["prk"])


def test_hkdf_empty_salt_equals_zero_salt():
    ikm = h(HKDF["cases"][2]["ikm"])
    assert hkdf(ikm, salt=b"", info=b"i", length=32) == hkdf(ikm, salt=bytes(32), info=b"i", length=32)


def test_hkdf_info_separates_outputs():
    ikm = bytes(range(32))
    a = hkdf(ikm, salt=b"s", info=LABELS["root"], length=64)
    b = hkdf(ikm, salt=b"s", info=LABELS["handshake"], length=64)
    assert a != b
    assert len(a) == 64


def test_hkdf_too_long_output_raises_value_error():
    with pytest.raises(ValueError):
        hkdf(b"ikm", salt=b"", info=b"", length=255 * 32 + 1)


# --------------------------------------------------------------- HMAC, SHA-256


@pytest.mark.parametrize(
    ("key", "data"),
    [(b"", b""), (b"key", b"The quick brown fox jumps over the lazy dog"), (bytes(100), b"\x01")],
)
def test_hmac_sha256_matches_stdlib(key, data):
    assert hmac_sha256(key, data) == _stdlib_hmac(key, data)


@pytest.mark.parametrize(
    ("key", "prefix"), [(b"", b""), (b"key", b"burner/v1/prefix"), (bytes(100), b"\x00" * 70)]
)
def test_a_keyed_mac_is_hmac_of_prefix_and_data_every_time(key, prefix):
    mac = KeyedMac(key, prefix)
    for data in (b"", b"one", b"two" * 40):  # the keyed state is copied, never used up
        assert mac.mac(data) == _stdlib_hmac(key, prefix + data)
    assert repr(mac) == "KeyedMac(<key>)"


def test_sha256_hashes_the_concatenation_of_its_parts():
    assert sha256() == hashlib.sha256(b"").digest()
    assert sha256(b"abc") == h("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert sha256(b"a", b"", b"bc") == sha256(b"abc")


# ----------------------------------------------------------------- chain_step


@pytest.mark.parametrize("chain_key", [bytes(32), bytes(range(32)), b"\xff" * 32])
def test_chain_step_is_signal_kdf_ck(chain_key):
    next_chain_key, message_key = chain_step(chain_key)
    assert next_chain_key == _stdlib_hmac(chain_key, b"\x02")
    assert message_key == _stdlib_hmac(chain_key, b"\x01")
    assert next_chain_key != message_key


def test_chain_step_chains():
    ck = bytes(range(32))
    for _ in range(5):
        expected_mk = _stdlib_hmac(ck, b"\x01")
        ck_next, mk = chain_step(ck)
        assert mk == expected_mk
        assert ck_next == _stdlib_hmac(ck, b"\x02")
        ck = ck_next


# --------------------------------------------------------------------- LABELS


def test_labels_are_unique():
    values = list(LABELS.values())
    assert len(set(values)) == len(values)


@pytest.mark.parametrize(("name", "label"), sorted(LABELS.items()))
def test_label_is_ascii_and_versioned(name, label):
    assert isinstance(label, bytes)
    assert label.isascii()
    assert label.startswith(b"burner/v1/")
    assert len(label) > len(b"burner/v1/")


def test_no_label_is_a_prefix_of_another():
    for a_name, a in LABELS.items():
        for b_name, b in LABELS.items():
            if a_name != b_name:
                assert not b.startswith(a), f"{a_name!r} is a prefix of {b_name!r}"


def test_every_label_constant_is_registered():
    constants = {name: value for name, value in vars(kdf).items() if name.startswith("LABEL_")}
    assert constants
    assert set(constants.values()) == set(LABELS.values())


def test_labels_registry_is_read_only():
    with pytest.raises(TypeError):
        LABELS["new"] = b"burner/v1/new"  # type: ignore[index]
