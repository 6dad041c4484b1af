"""The X25519 ‖ ML-KEM-768 combiner (docs/protocol.md §3.4).

Both halves go into one HKDF call as input key material, so the output stays
secret as long as either half does: a quantum attacker who breaks X25519 still
faces ML-KEM, and a flaw found in ML-KEM still leaves X25519.
ML-KEM's shared secret already depends on the encapsulation key (K = G(m ‖ H(ek))),
and the protocol binds the KEM ciphertext into the same derivation through
``info`` (handshake) or the authenticated header (ratchet); see docs/protocol.md §3.4 and §5.4.
"""

from __future__ import annotations

from .kdf import hkdf

__all__ = ["combine"]


def combine(salt: bytes, dh_secrets: bytes, kem_secret: bytes, *, info: bytes, length: int) -> bytes:
    """Derive ``length`` bytes from classical and post-quantum shared secrets.

    Args:
        salt: the chaining value (root key, or zeros in the handshake).
        dh_secrets: one or more concatenated X25519 outputs.
        kem_secret: the 32-byte ML-KEM-768 shared secret.
        info: label plus whatever the context must bind (transcript hash).
        length: bytes of output.
    """
    if len(kem_secret) != 32:
        raise ValueError("ML-KEM shared secret must be 32 bytes")
    return hkdf(dh_secrets + kem_secret, salt=salt, info=info, length=length)
