"""Raw-primitive ceilings for burnerkit's own formats, measured in this process.

Each function here makes only the primitive calls our design cannot avoid, through
``burnerkit.crypto`` (the only layer ``burnerkit.protocol`` may use, so its wrapper
costs belong in the ceiling), and nothing else: no envelope framing, no state
objects, no error handling. A real implementation can approach these figures but
not beat them; ``bench.run`` reports ours as a fraction of them.

The message format: every message is one fixed 15,872-byte envelope holding

* an encrypted header: 12-byte random nonce ‖ AES-256-GCM(header key, 2,312-byte
  header plaintext = 32-byte X25519 public key ‖ 1,184-byte ML-KEM-768 public key ‖
  1,088-byte ML-KEM-768 ciphertext ‖ two u32 counters) ‖ 16-byte tag: 2,340 bytes;
* an encrypted body: 12-byte random nonce ‖ AES-256-GCM(message key, padded body)
  ‖ 16-byte tag, filling the rest: 13,504 bytes of body plaintext here. (The real
  envelope may spend a few dozen of those bytes on framing; the difference in GCM
  time is well under 1 %.)

The body is sealed with the encrypted header as associated data, so the body is
bound to its header (Signal's header-encryption variant); the header's associated
data is a short fixed context string.
"""

from __future__ import annotations

import struct

from burnerkit.crypto import aead, hybrid, kdf
from burnerkit.crypto.keys import (
    KEM_CIPHERTEXT_SIZE,
    KEM_PUBLIC_KEY_SIZE,
    X25519_KEY_SIZE,
    KemPrivateKey,
    KemPublicKey,
    SigningKey,
    VerifyKey,
    X25519PrivateKey,
    X25519PublicKey,
)
from burnerkit.crypto.rng import SystemRandom

from ._timing import rate

__all__ = [
    "BODY_PLAINTEXT_SIZE",
    "ENVELOPE_SIZE",
    "HEADER_CIPHERTEXT_SIZE",
    "HEADER_PLAINTEXT_SIZE",
    "handshake_limit_per_s",
    "pq_step_limit_msgs_per_s",
    "symmetric_step_limit_msgs_per_s",
]

ENVELOPE_SIZE = 15_872
_COUNTERS = struct.Struct(">II")
HEADER_PLAINTEXT_SIZE = X25519_KEY_SIZE + KEM_PUBLIC_KEY_SIZE + KEM_CIPHERTEXT_SIZE + _COUNTERS.size
HEADER_CIPHERTEXT_SIZE = aead.NONCE_SIZE + HEADER_PLAINTEXT_SIZE + aead.TAG_SIZE
BODY_PLAINTEXT_SIZE = ENVELOPE_SIZE - HEADER_CIPHERTEXT_SIZE - aead.NONCE_SIZE - aead.TAG_SIZE
assert HEADER_PLAINTEXT_SIZE == 2_312
assert BODY_PLAINTEXT_SIZE == 13_504

_KEM_PUB_END = X25519_KEY_SIZE + KEM_PUBLIC_KEY_SIZE
_KEM_CT_END = _KEM_PUB_END + KEM_CIPHERTEXT_SIZE
_HEADER_AD = b"burner/v1/bench/header"
_ROOT_KDF_LENGTH = 96  # next root key ‖ chain key ‖ next header key
_ZERO32 = bytes(32)


def symmetric_step_limit_msgs_per_s(seconds: float) -> float:
    """The raw crypto limit for one-way messaging (no DH/KEM step), in messages per second.

    Counted per message, and nothing else:

    * sender: ``kdf.chain_step`` (2 HMAC-SHA256), a 12-byte nonce from the system RNG
      and an AES-256-GCM seal of the 2,312-byte header under a cached header key
      (``AeadKey``), another nonce and a one-shot AES-256-GCM seal of the 13,504-byte
      body under the fresh message key (new cipher context: the key changes every
      message);
    * receiver: open of the header under its cached header key, ``kdf.chain_step``,
      one-shot open of the body under the message key.

    The header and body plaintexts are prebuilt constants: no framing, parsing or
    state objects are timed.
    """
    rng = SystemRandom()
    header_key_raw = rng.random_bytes(aead.KEY_SIZE)
    send_header_key = aead.AeadKey(header_key_raw)
    recv_header_key = aead.AeadKey(header_key_raw)
    send_ck = recv_ck = rng.random_bytes(32)
    header_pt = rng.random_bytes(HEADER_PLAINTEXT_SIZE)
    body_pt = rng.random_bytes(BODY_PLAINTEXT_SIZE)
    chain_step = kdf.chain_step
    seal = aead.seal
    open_ = aead.open_
    nonce = rng.random_bytes
    nonce_size = aead.NONCE_SIZE
    header_ad = _HEADER_AD

    def step() -> None:
        nonlocal send_ck, recv_ck
        # sender
        send_ck, mk = chain_step(send_ck)
        header_nonce = nonce(nonce_size)
        header_ct = send_header_key.seal(header_nonce, header_pt, header_ad)
        body_nonce = nonce(nonce_size)
        body_ct = seal(mk, body_nonce, body_pt, header_ct)
        # receiver
        recv_header_key.open(header_nonce, header_ct, header_ad)
        recv_ck, mk = chain_step(recv_ck)
        open_(mk, body_nonce, body_ct, header_ct)

    result = rate(step, seconds)
    if send_ck != recv_ck:
        raise RuntimeError("symmetric limit: chains diverged")
    return result


class _Side:
    """One party's ratchet state for the PQ ping-pong ceiling: plain slots, no logic."""

    __slots__ = ("ckr", "cks", "dh", "hks", "kem", "n", "nhkr", "nhks", "pending_ct", "rk")

    def __init__(self, rk: bytes, dh: X25519PrivateKey, kem: KemPrivateKey) -> None:
        self.rk = rk
        self.dh = dh
        self.kem = kem
        self.cks = b""
        self.ckr = b""
        self.hks = b""
        self.nhks = b""
        self.nhkr = b""
        self.pending_ct = b""
        self.n = 0


def _pq_pair(rng: SystemRandom) -> tuple[_Side, _Side]:
    """Alice, about to send her first message, and Bob, about to receive it.

    Mirrors Signal's header-encrypted Double Ratchet with the hybrid (X25519 ‖
    ML-KEM-768) root step: a receiver opens the header under ``nhkr``, known before the
    step, so it never needs trial decryption in ping-pong.
    """
    rk0 = rng.random_bytes(32)
    hk_a = rng.random_bytes(32)
    nhk_b = rng.random_bytes(32)
    alice = _Side(rk0, X25519PrivateKey.generate(rng), KemPrivateKey.generate(rng))
    bob = _Side(rk0, X25519PrivateKey.generate(rng), KemPrivateKey.generate(rng))
    dh_secret = alice.dh.exchange(bob.dh.public_key)
    kem_secret, alice.pending_ct = bob.kem.public_key.encapsulate()
    out = hybrid.combine(alice.rk, dh_secret, kem_secret, info=kdf.LABEL_ROOT, length=_ROOT_KDF_LENGTH)
    alice.rk, alice.cks, alice.nhks = out[:32], out[32:64], out[64:]
    alice.hks = hk_a
    alice.nhkr = nhk_b
    bob.nhkr = hk_a
    bob.nhks = nhk_b
    return alice, bob


def pq_step_limit_msgs_per_s(seconds: float) -> float:
    """The raw crypto limit for PQ ping-pong (one hybrid ratchet step per message), msgs/s.

    Alice and Bob alternate, so every message is the first of a new chain. Counted per
    message, and nothing else:

    * sender: ``kdf.chain_step``; the 2,312-byte header plaintext joined from its own
      X25519 public key, ML-KEM public key, pending KEM ciphertext and two u32
      counters; a nonce and a one-shot AES-256-GCM seal of the header under the
      chain's header key; a nonce and a one-shot seal of the 13,504-byte body under the
      message key (associated data: the encrypted header);
    * receiver: one-shot open of the header under its next-header key; slicing the
      header and parsing the peer's X25519 public key and ML-KEM-768 public key from
      bytes (``from_bytes``, with the FIPS 203 modulus check); X25519 exchange (receiving
      chain); ML-KEM-768 decapsulate; HKDF root KDF (``hybrid.combine``, 96 bytes); a new
      X25519 key from 32 random bytes; X25519 exchange (sending chain); a new ML-KEM-768
      key pair from a 64-byte random seed; ML-KEM encapsulate to the peer's key; HKDF
      root KDF again; ``kdf.chain_step``; one-shot open of the body.

    The sender's key generation and encapsulation for its own next chain happened when
    it last received, so each message carries exactly one full step.
    """
    rng = SystemRandom()
    alice, bob = _pq_pair(rng)
    body_pt = rng.random_bytes(BODY_PLAINTEXT_SIZE)
    chain_step = kdf.chain_step
    seal = aead.seal
    open_ = aead.open_
    combine = hybrid.combine
    label_root = kdf.LABEL_ROOT
    nonce_size = aead.NONCE_SIZE
    header_ad = _HEADER_AD
    pack = _COUNTERS.pack
    sides = [alice, bob]

    def step() -> None:
        sender, receiver = sides
        # sender
        sender.cks, mk = chain_step(sender.cks)
        header_pt = b"".join(
            (sender.dh.public_key.raw, sender.kem.public_key.raw, sender.pending_ct, pack(sender.n, 0))
        )
        sender.n += 1
        header_nonce = rng.random_bytes(nonce_size)
        header_ct = seal(sender.hks, header_nonce, header_pt, header_ad)
        body_nonce = rng.random_bytes(nonce_size)
        body_ct = seal(mk, body_nonce, body_pt, header_ct)
        # receiver: open the header, then one full hybrid ratchet step
        header = open_(receiver.nhkr, header_nonce, header_ct, header_ad)
        peer_dh = X25519PublicKey.from_bytes(header[:X25519_KEY_SIZE])
        peer_kem = KemPublicKey.from_bytes(header[X25519_KEY_SIZE:_KEM_PUB_END])
        kem_ct = header[_KEM_PUB_END:_KEM_CT_END]
        dh_secret = receiver.dh.exchange(peer_dh)
        kem_secret = receiver.kem.decapsulate(kem_ct)
        out = combine(receiver.rk, dh_secret, kem_secret, info=label_root, length=_ROOT_KDF_LENGTH)
        receiver.rk, receiver.ckr, receiver.nhkr = out[:32], out[32:64], out[64:]
        receiver.hks = receiver.nhks
        receiver.dh = X25519PrivateKey.generate(rng)
        dh_secret = receiver.dh.exchange(peer_dh)
        receiver.kem = KemPrivateKey.generate(rng)
        kem_secret, receiver.pending_ct = peer_kem.encapsulate()
        out = combine(receiver.rk, dh_secret, kem_secret, info=label_root, length=_ROOT_KDF_LENGTH)
        receiver.rk, receiver.cks, receiver.nhks = out[:32], out[32:64], out[64:]
        receiver.n = 0
        receiver.ckr, mk = chain_step(receiver.ckr)
        open_(mk, body_nonce, body_ct, header_ct)
        sides.reverse()

    result = rate(step, seconds)
    # The last receiver's receiving chain must have reached the last sender's sending chain
    # (and every header opened under the key the receiver expected, or ``open_`` would raise).
    last_receiver, last_sender = sides
    if last_receiver.ckr != last_sender.cks:
        raise RuntimeError("PQ limit: ratchets diverged")
    return result


def _handshake_once(rng: SystemRandom) -> None:
    """One PQXDH-style handshake, both sides; see :func:`handshake_limit_per_s`."""
    # Inviter: publish an invitation.
    inv_sig = SigningKey.generate(rng)
    inv_ik = X25519PrivateKey.generate(rng)
    inv_spk = X25519PrivateKey.generate(rng)
    inv_kem = KemPrivateKey.generate(rng)
    inv_vk_raw = inv_sig.verify_key.raw
    inv_ik_raw = inv_ik.public_key.raw
    inv_spk_raw = inv_spk.public_key.raw
    inv_kem_raw = inv_kem.public_key.raw
    label = kdf.LABEL_SIG_INVITATION
    sig_ik = inv_sig.sign(label + inv_ik_raw)
    sig_spk = inv_sig.sign(label + inv_spk_raw)
    sig_kem = inv_sig.sign(label + inv_kem_raw)

    # Acceptor: check the invitation, answer it.
    vk = VerifyKey.from_bytes(inv_vk_raw)
    vk.verify(sig_ik, label + inv_ik_raw)
    vk.verify(sig_spk, label + inv_spk_raw)
    vk.verify(sig_kem, label + inv_kem_raw)
    peer_ik = X25519PublicKey.from_bytes(inv_ik_raw)
    peer_spk = X25519PublicKey.from_bytes(inv_spk_raw)
    peer_kem = KemPublicKey.from_bytes(inv_kem_raw)
    acc_sig = SigningKey.generate(rng)
    acc_ik = X25519PrivateKey.generate(rng)
    acc_ek = X25519PrivateKey.generate(rng)
    dh = acc_ik.exchange(peer_spk) + acc_ek.exchange(peer_ik) + acc_ek.exchange(peer_spk)
    kem_secret, kem_ct = peer_kem.encapsulate()
    acc_secret = hybrid.combine(_ZERO32, dh, kem_secret, info=kdf.LABEL_HANDSHAKE, length=64)
    accept = acc_sig.verify_key.raw + acc_ik.public_key.raw + acc_ek.public_key.raw + kem_ct
    acc_sigma = acc_sig.sign(kdf.LABEL_SIG_ACCEPT + accept)

    # Inviter: check the answer, derive the same secret.
    acc_vk = VerifyKey.from_bytes(accept[:32])
    acc_vk.verify(acc_sigma, kdf.LABEL_SIG_ACCEPT + accept)
    peer_aik = X25519PublicKey.from_bytes(accept[32:64])
    peer_aek = X25519PublicKey.from_bytes(accept[64:96])
    dh = inv_spk.exchange(peer_aik) + inv_ik.exchange(peer_aek) + inv_spk.exchange(peer_aek)
    kem_secret = inv_kem.decapsulate(accept[96:])
    inv_secret = hybrid.combine(_ZERO32, dh, kem_secret, info=kdf.LABEL_HANDSHAKE, length=64)
    if inv_secret != acc_secret:
        raise RuntimeError("handshake limit: secrets differ")


def handshake_limit_per_s(seconds: float) -> float:
    """The raw crypto limit for complete handshakes (both sides, one process), per second.

    Counted per handshake, and nothing else (no transcript hash, no framing):

    * inviter: generate an Ed25519 identity, an X25519 identity key, an X25519 signed
      prekey and an ML-KEM-768 prekey (each from system randomness; public halves
      derived and serialised), and 3 Ed25519 signatures (over the X25519 identity, the
      X25519 prekey and the ML-KEM prekey, each prefixed with the invitation label);
    * acceptor: parse the inviter's Ed25519 key and verify the 3 signatures; parse the
      inviter's two X25519 public keys and ML-KEM-768 public key (modulus check);
      generate an Ed25519 identity, an X25519 identity key and an X25519 ephemeral
      key; 3 X25519 exchanges (IK_A·SPK_I, EK_A·IK_I, EK_A·SPK_I); ML-KEM-768
      encapsulate; one HKDF-SHA256 (``hybrid.combine``, 64 bytes); 1 Ed25519 signature
      over its answer (keys ‖ KEM ciphertext, 1,184 bytes);
    * inviter: parse the acceptor's Ed25519 key and verify 1 signature; parse the
      acceptor's two X25519 public keys; 3 X25519 exchanges; ML-KEM-768 decapsulate; one
      HKDF-SHA256; compare the two secrets.

    Totals: 2 Ed25519 key generations, 2 Ed25519 public key parses, 4 signatures, 4
    verifications; 4 X25519 key generations, 4 X25519 public key parses, 6 exchanges;
    1 ML-KEM-768 key generation, 1 public key parse, 1 encapsulation, 1 decapsulation;
    2 HKDF-SHA256.
    """
    rng = SystemRandom()
    return rate(lambda: _handshake_once(rng), seconds)
