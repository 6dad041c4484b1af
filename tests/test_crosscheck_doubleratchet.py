"""Our KDF chains against Syndace's ``doubleratchet`` package, an independent implementation.

``doubleratchet`` (PyPI, the anchor named in docs/protocol.md §3.3 and §6.3) builds Signal's
recommended KDFs out of its own ``KDFChain`` and ``SymmetricKeyRatchet``:

* the symmetric-key ratchet with ``kdf_separate_hmacs`` over SHA-256 and the constant
  ``b"\\x02\\x01"`` derives ``HMAC(ck, 0x02) ‖ HMAC(ck, 0x01)`` per step, keeps the first half as
  the next chain key and hands out the second as the message key: our ``chain_step``;
* a ``KDFChain`` over ``kdf_hkdf`` (salt = chain key, IKM = data, info fixed) keeps the first
  32 bytes of every output as the next key and returns the rest: with info ``LABEL_ROOT``
  and data ``dh_out ‖ kem_secret``, 32 + 64 bytes are our ``RK ‖ CK ‖ NHK``.

Its API is async; each call runs in its own ``asyncio.run``. Both sides use pyca's HMAC and
HKDF underneath, so the last test repeats the chain step with the standard library alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest
from doubleratchet import Chain, KDFChain, SymmetricKeyRatchet
from doubleratchet.recommended import HashFunction, kdf_hkdf, kdf_separate_hmacs

from burnerkit.crypto.kdf import LABEL_HANDSHAKE, LABEL_ROOT, chain_step
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.protocol.handshake import _derive
from burnerkit.protocol.ratchet import _root_kdf

STEPS = 10


class ChainKDF(kdf_separate_hmacs.KDF):  # type: ignore[misc]
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


class RootKDF(kdf_hkdf.KDF):  # type: ignore[misc]
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return LABEL_ROOT


def _hkdf_class(info: bytes) -> type[kdf_hkdf.KDF]:
    class Fixed(kdf_hkdf.KDF):  # type: ignore[misc]
        @staticmethod
        def _get_hash_function() -> HashFunction:
            return HashFunction.SHA_256

        @staticmethod
        def _get_info() -> bytes:
            return info

    return Fixed


def _ours(chain_key: bytes, steps: int) -> tuple[list[bytes], list[bytes]]:
    chain_keys, message_keys = [], []
    for _ in range(steps):
        chain_key, message_key = chain_step(chain_key)
        chain_keys.append(chain_key)
        message_keys.append(message_key)
    return chain_keys, message_keys


SEEDS = [b"cross-check 0", b"cross-check 1", b"cross-check 2"]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("chain", [Chain.SENDING, Chain.RECEIVING])
def test_chain_step_matches_symmetric_key_ratchet(seed: bytes, chain: Chain) -> None:
    initial = DeterministicRandom(seed).random_bytes(32)
    ratchet = SymmetricKeyRatchet.create(ChainKDF, b"\x02\x01")
    ratchet.replace_chain(chain, initial)
    next_key = ratchet.next_encryption_key if chain is Chain.SENDING else ratchet.next_decryption_key
    theirs_mk, theirs_ck = [], []
    for _ in range(STEPS):
        theirs_mk.append(asyncio.run(next_key()))
        model = ratchet.model.sending_chain if chain is Chain.SENDING else ratchet.model.receiving_chain
        theirs_ck.append(model.key)
    ours_ck, ours_mk = _ours(initial, STEPS)
    assert ours_mk == theirs_mk
    assert ours_ck == theirs_ck
    assert len(set(ours_mk + ours_ck)) == 2 * STEPS


@pytest.mark.parametrize("seed", SEEDS)
def test_chain_step_matches_kdf_chain(seed: bytes) -> None:
    initial = DeterministicRandom(seed).random_bytes(32)
    chain = KDFChain.create(ChainKDF, initial)
    ours_ck, ours_mk = _ours(initial, STEPS)
    for step in range(STEPS):
        assert asyncio.run(chain.step(b"\x02\x01", 32)) == ours_mk[step]
        assert chain.model.key == ours_ck[step]
    assert chain.length == STEPS


@pytest.mark.parametrize("seed", SEEDS)
def test_root_kdf_matches_kdf_hkdf_chain(seed: bytes) -> None:
    rng = DeterministicRandom(seed)
    root_key = rng.random_bytes(32)
    chain = KDFChain.create(RootKDF, root_key)
    for _ in range(5):  # successive DH+KEM ratchet steps chain through the root key
        dh_out, kem_secret = rng.random_bytes(32), rng.random_bytes(32)
        theirs = asyncio.run(chain.step(dh_out + kem_secret, 64))
        root_key, chain_key, next_header_key = _root_kdf(root_key, dh_out, kem_secret)
        assert theirs == chain_key + next_header_key
        assert chain.model.key == root_key


@pytest.mark.parametrize("seed", SEEDS)
def test_handshake_secret_matches_kdf_hkdf(seed: bytes) -> None:
    rng = DeterministicRandom(seed)
    dh1, dh2, dh3, kem_secret, transcript = (rng.random_bytes(32) for _ in range(5))
    kdf = _hkdf_class(LABEL_HANDSHAKE + transcript)
    theirs = asyncio.run(kdf.derive(bytes(32), dh1 + dh2 + dh3 + kem_secret, 96))
    assert b"".join(_derive(dh1, dh2, dh3, kem_secret, transcript)) == theirs


def test_chain_step_matches_the_standard_library() -> None:
    chain_key = bytes(32)
    for _ in range(STEPS):
        expected = (
            hmac.new(chain_key, b"\x02", hashlib.sha256).digest(),
            hmac.new(chain_key, b"\x01", hashlib.sha256).digest(),
        )
        assert chain_step(chain_key) == expected
        chain_key = expected[0]
    # docs/protocol.md Appendix A: KDF_CK(0^32).
    assert chain_step(bytes(32)) == (
        bytes.fromhex("4ee7be0c7872360ca67414608081e9bd60fd580a7bbd209701d2a5a0b4316d0d"),
        bytes.fromhex("3d7afb663124ecbf2c953f863d4fc8796eeb2d372b64aad58697ec5264649cdb"),
    )
