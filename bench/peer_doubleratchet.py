"""The independent PyPI package ``doubleratchet`` (Syndace), measured as a classical peer.

Configuration follows the library's documentation and its ``examples/dr_chat.py``:
the recommended Curve25519 Diffie-Hellman ratchet, ``aead_aes_hmac`` (AES-256-CBC +
HMAC, keys from HKDF) as the AEAD, ``kdf_hkdf`` for the root chain,
``kdf_separate_hmacs`` for the message chains (constant ``b"\\x01\\x02"``, so one
HMAC per output half, as Signal recommends), SHA-256 throughout, DoS threshold 100
and at most 1,000 stored skipped message keys.

The library is async: each measurement runs inside ONE event loop (one
``asyncio.run`` around setup and the timed loop), so loop start-up is not timed. The
initial message (``encrypt_initial_message``/``decrypt_initial_message``) is set up
before the clock starts. Every message is 256 bytes. Decrypted plaintexts are
checked after the timed loop, never inside it.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from doubleratchet import DoubleRatchet, Header
from doubleratchet.recommended import (
    HashFunction,
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

__all__ = ["MESSAGE_SIZE", "one_way_msgs_per_s", "pingpong_msgs_per_s"]

MESSAGE_SIZE = 256
_AD = b"burnerkit bench: Alice + Bob"


# The library leaves four pieces abstract; these are the minimal subclasses its docs ask for.
# mypy skips following ``doubleratchet`` (see pyproject), so its classes are ``Any`` here.
class _DoubleRatchet(DoubleRatchet):  # type: ignore[misc]
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: Header) -> bytes:
        # Unique, reversible encoding of (associated data, header), as the docstring requires.
        encoded: bytes = (
            associated_data
            + header.ratchet_pub
            + header.previous_sending_chain_length.to_bytes(8, "big")
            + header.sending_chain_length.to_bytes(8, "big")
        )
        return encoded


class _AEAD(aead_aes_hmac.AEAD):  # type: ignore[misc]
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"burnerkit bench doubleratchet AEAD"


class _RootChainKDF(kdf_hkdf.KDF):  # type: ignore[misc]
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"burnerkit bench doubleratchet root chain"


class _MessageChainKDF(kdf_separate_hmacs.KDF):  # type: ignore[misc]
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


_CONFIG: dict[str, Any] = {
    "diffie_hellman_ratchet_class": diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet,
    "root_chain_kdf": _RootChainKDF,
    "message_chain_kdf": _MessageChainKDF,
    "message_chain_constant": b"\x01\x02",
    "dos_protection_threshold": 100,
    "max_num_skipped_message_keys": 1000,
    "aead": _AEAD,
}


async def _session() -> tuple[Any, Any]:
    """Alice and Bob after the initial message (Alice → Bob), as the library sets a session up."""
    bob_priv = X25519PrivateKey.generate()
    bob_priv_raw = bob_priv.private_bytes_raw()
    bob_pub_raw = bob_priv.public_key().public_bytes_raw()
    shared_secret = os.urandom(32)  # from the key agreement, external to the Double Ratchet
    first = os.urandom(MESSAGE_SIZE)
    alice, initial = await _DoubleRatchet.encrypt_initial_message(
        shared_secret=shared_secret,
        recipient_ratchet_pub=bob_pub_raw,
        message=first,
        associated_data=_AD,
        **_CONFIG,
    )
    bob, plaintext = await _DoubleRatchet.decrypt_initial_message(
        shared_secret=shared_secret,
        own_ratchet_priv=bob_priv_raw,
        message=initial,
        associated_data=_AD,
        **_CONFIG,
    )
    if plaintext != first:
        raise RuntimeError("doubleratchet: initial message did not round-trip")
    return alice, bob


async def _one_way(seconds: float) -> float:
    alice, bob = await _session()
    message = os.urandom(MESSAGE_SIZE)
    plaintext = b""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        encrypted = await alice.encrypt_message(message, _AD)
        plaintext = await bob.decrypt_message(encrypted, _AD)
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    if plaintext != message:
        raise RuntimeError("doubleratchet: one-way message did not round-trip")
    return count / (now - start)


async def _pingpong(seconds: float) -> float:
    alice, bob = await _session()
    message = os.urandom(MESSAGE_SIZE)
    plaintext = b""
    # Bob answers first: Alice's first decrypt is already a DH ratchet step, and so is every
    # later receipt, because the sender alternates on every message.
    sender, receiver = bob, alice
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        encrypted = await sender.encrypt_message(message, _AD)
        plaintext = await receiver.decrypt_message(encrypted, _AD)
        sender, receiver = receiver, sender
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    if plaintext != message:
        raise RuntimeError("doubleratchet: ping-pong message did not round-trip")
    return count / (now - start)


def one_way_msgs_per_s(seconds: float) -> float:
    """Alice → Bob only, Bob decrypting each message right after it is encrypted.

    Counts encrypt+decrypt pairs per second. All messages share one sending chain, so
    no DH ratchet step happens inside the timed loop: one HMAC-chain step and one
    AES-CBC+HMAC seal per side (plus the library's per-receipt ``deepcopy`` of its
    ratchet state).
    """
    return asyncio.run(_one_way(seconds))


def pingpong_msgs_per_s(seconds: float) -> float:
    """Alice and Bob alternate; every receipt triggers a DH ratchet step.

    Counts messages (each one encrypt plus one decrypt) per second.
    """
    return asyncio.run(_pingpong(seconds))
