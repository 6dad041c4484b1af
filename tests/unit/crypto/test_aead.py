"""Known-answer and failure tests for burnerkit.crypto.aead (AES-256-GCM)."""

from __future__ import annotations

import pytest

from burnerkit.crypto.aead import KEY_SIZE, NONCE_SIZE, TAG_SIZE, AeadKey, open_, seal
from burnerkit.errors import DecryptionError

h = bytes.fromhex

KEY = bytes(range(KEY_SIZE))
NONCE = bytes(range(100, 100 + NONCE_SIZE))
PLAINTEXT = b"meet at the usual place, bring nothing"
AD = b"burner/v1/test-header"
OPAQUE = r"^message could not be decrypted$"

# AES-256-GCM, 96-bit IV, 128-bit tag.
GCM_VECTORS = [
    pytest.param(
        # McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", Appendix B, Test Case 16.
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        "76fc6ece0f4e1768cddf8853bb2d551b",
        id="gcm-spec-test-case-16",
    ),
    pytest.param(
        # NIST CAVS 14.0 gcmEncryptExtIV256.rsp [PTlen = 408][AADlen = 160] Count = 0,
        # as shipped in cryptography-vectors 50.0.2 (ciphers/AES/GCM/).
        "24501ad384e473963d476edcfe08205237acfd49b5b8f33857f8114e863fec7f",
        "9ff18563b978ec281b3f2794",
        "27f348f9cdc0c5bd5e66b1ccb63ad920ff2219d14e8d631b3872265cf117ee86757accb158bd9abb3868fdc0d0b074b5f01b2c",
        "adb5ec720ccf9898500028bf34afccbcaca126ef",
        "eb7cb754c824e8d96f7c6d9b76c7d26fb874ffbf1d65c6f64a698d839b0b06145dae82057ad55994cf59ad7f67c0fa5e85fab8",
        "bc95c532fecc594c36d1550286a7a3f0",
        id="nist-cavs-256-96-408-160-count0",
    ),
    pytest.param(
        # NIST CAVS 14.0 gcmEncryptExtIV256.rsp [PTlen = 0][AADlen = 0] Count = 0.
        "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4",
        "516c33929df5a3284ff463d7",
        "",
        "",
        "",
        "bdc1ac884d332457a1d2664f168c76f0",
        id="nist-cavs-256-96-0-0-count0",
    ),
]


def _open_with_key(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    return AeadKey(key).open(nonce, ciphertext, ad)


OPENERS = [pytest.param(open_, id="open_"), pytest.param(_open_with_key, id="AeadKey.open")]


def _flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 0x80]) + data[i + 1 :]


# -------------------------------------------------------------------- vectors


@pytest.mark.parametrize(("key", "iv", "pt", "aad", "ct", "tag"), GCM_VECTORS)
def test_aes256gcm_known_answer_seal(key, iv, pt, aad, ct, tag):
    assert seal(h(key), h(iv), h(pt), h(aad)) == h(ct) + h(tag)
    assert AeadKey(h(key)).seal(h(iv), h(pt), h(aad)) == h(ct) + h(tag)


@pytest.mark.parametrize(("key", "iv", "pt", "aad", "ct", "tag"), GCM_VECTORS)
@pytest.mark.parametrize("opener", OPENERS)
def test_aes256gcm_known_answer_open(opener, key, iv, pt, aad, ct, tag):
    assert opener(h(key), h(iv), h(ct) + h(tag), h(aad)) == h(pt)


# ------------------------------------------------------------------ roundtrip


@pytest.mark.parametrize("plaintext", [b"", b"x", PLAINTEXT, bytes(4096)])
def test_roundtrip(plaintext):
    key = AeadKey(KEY)
    sealed = key.seal(NONCE, plaintext, AD)
    assert len(sealed) == len(plaintext) + TAG_SIZE
    assert key.open(NONCE, sealed, AD) == plaintext
    # The one-shot functions and the key object speak the same format.
    assert seal(KEY, NONCE, plaintext, AD) == sealed
    assert open_(KEY, NONCE, sealed, AD) == plaintext


# ------------------------------------------------------------------- failures


@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize(
    "tamper",
    ["ciphertext", "tag", "nonce", "associated_data", "key"],
)
def test_tampered_input_raises_opaque_decryption_error(opener, tamper):
    sealed = seal(KEY, NONCE, PLAINTEXT, AD)
    key, nonce, ad = KEY, NONCE, AD
    if tamper == "ciphertext":
        sealed = _flip(sealed, 0)
    elif tamper == "tag":
        sealed = _flip(sealed, len(sealed) - 1)
    elif tamper == "nonce":
        nonce = _flip(nonce, 5)
    elif tamper == "associated_data":
        ad = ad + b"!"
    else:
        key = _flip(key, 31)
    with pytest.raises(DecryptionError, match=OPAQUE) as info:
        opener(key, nonce, sealed, ad)
    assert str(info.value) == "message could not be decrypted"
    assert info.value.args == ("message could not be decrypted",)


@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize("keep", [0, 1, TAG_SIZE - 1, TAG_SIZE, len(PLAINTEXT) + TAG_SIZE - 1])
def test_truncated_ciphertext_raises_decryption_error(opener, keep):
    sealed = seal(KEY, NONCE, PLAINTEXT, AD)
    with pytest.raises(DecryptionError, match=OPAQUE):
        opener(KEY, NONCE, sealed[:keep], AD)


@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize("nonce_size", [0, 7, NONCE_SIZE - 1, NONCE_SIZE + 1])
def test_wrong_length_nonce_on_open_raises_value_error(opener, nonce_size):
    # Protocol code slices nonces at a fixed 12 bytes, so another length is a caller bug.
    sealed = seal(KEY, NONCE, PLAINTEXT, AD)
    with pytest.raises(ValueError, match="nonce"):
        opener(KEY, bytes(nonce_size), sealed, AD)


@pytest.mark.parametrize("size", [0, 15, 16, 24, 31, 33, 64])
def test_aead_key_wrong_length_raises_value_error(size):
    with pytest.raises(ValueError):
        AeadKey(bytes(size))


@pytest.mark.parametrize("size", [0, 15, 31, 33, 64])
def test_seal_wrong_length_key_raises_value_error(size):
    with pytest.raises(ValueError):
        seal(bytes(size), NONCE, PLAINTEXT, AD)


@pytest.mark.parametrize("size", [16, 24])
def test_seal_aes128_or_aes192_key_raises_value_error(size):
    with pytest.raises(ValueError):
        seal(bytes(size), NONCE, PLAINTEXT, AD)


@pytest.mark.parametrize("size", [16, 31])
def test_open_wrong_length_key_raises_value_error(size):
    sealed = seal(KEY, NONCE, PLAINTEXT, AD)
    with pytest.raises(ValueError):
        open_(bytes(size), NONCE, sealed, AD)


@pytest.mark.parametrize("nonce_size", [8, 16])
def test_seal_wrong_length_nonce_raises_value_error(nonce_size):
    with pytest.raises(ValueError):
        AeadKey(KEY).seal(bytes(nonce_size), PLAINTEXT, AD)


def test_seal_too_short_nonce_raises_value_error():
    with pytest.raises(ValueError):
        AeadKey(KEY).seal(bytes(7), PLAINTEXT, AD)


def test_constants():
    assert (KEY_SIZE, NONCE_SIZE, TAG_SIZE) == (32, 12, 16)


def test_aead_key_repr_holds_no_key():
    text = repr(AeadKey(KEY))
    assert KEY.hex() not in text
    assert KEY[:4].hex() not in text
    assert str(KEY) not in text
