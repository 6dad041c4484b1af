"""The Double Ratchet with header encryption and an ML-KEM-768 step: docs/protocol.md §6.

Theory of operation
-------------------
This is Signal's Double Ratchet with header encryption (Double Ratchet spec §4),
with one change: every DH ratchet step also runs ML-KEM-768. Each header carries
the sender's current ratchet X25519 key, its current ML-KEM encapsulation key and a
KEM ciphertext encapsulated to the last encapsulation key it saw from us. Both
secrets enter the root KDF together (``hybrid.combine``), so a root key, and with
it every later chain, stays secret against an attacker who can break X25519 (a
quantum one) as long as ML-KEM holds, and heals after a compromise against such an
attacker too. There is no classical-only mode: a header without the KEM fields
does not parse.

Three rules shape the code:

1. *Authenticate first, then change state.* :meth:`DoubleRatchet.decrypt`
   computes every new value into locals, opens the body AEAD, and only then
   assigns to ``self``. Any exception leaves the state byte-identical.
2. *Limits before work.* Counter checks (``MAX_SKIP``) run on the header
   counters before any chain key or DH is computed, so a counter bomb costs the
   same small constant work whatever number it claims.
3. *Every nonce is random.* We never derive a nonce from a key, so a rolled-back
   copy of this state that re-derives a message key still uses a fresh nonce.

This file knows nothing about envelopes, sequence numbers or which side invited:
the session layer (``session.py``) frames what goes in and out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from burnerkit.crypto import aead
from burnerkit.crypto.aead import AeadKey
from burnerkit.crypto.hybrid import combine
from burnerkit.crypto.kdf import LABEL_ROOT, chain_step
from burnerkit.crypto.keys import (
    KEM_CIPHERTEXT_SIZE,
    KEM_PUBLIC_KEY_SIZE,
    X25519_KEY_SIZE,
    KemPrivateKey,
    KemPublicKey,
    X25519PrivateKey,
    X25519PublicKey,
)
from burnerkit.crypto.rng import Random
from burnerkit.errors import (
    BurnerError,
    DecryptionError,
    DuplicateMessageError,
    ForkDetectedError,
    LocalProtocolError,
    TooManySkippedMessagesError,
)
from burnerkit.wire import CodecError, Reader, Writer

__all__ = [
    "HEADER_CIPHERTEXT_SIZE",
    "HEADER_SIZE",
    "MAX_SKIP",
    "MAX_SKIPPED_KEYS",
    "RETIRED_CHAINS",
    "RATCHET_OVERHEAD",
    "SEEN_WINDOW",
    "SKIPPED_KEY_MAX_AGE",
    "DoubleRatchet",
]

#: Largest counter jump one header may ask for in one chain (libsignal 25,000; SimpleX 512).
#: A message can thus cost at most MAX_SKIP + 1 chain steps, or twice that when it also
#: closes the previous chain.
MAX_SKIP: Final = 1000
#: Most skipped message keys kept per session; the oldest is evicted first (libsignal 2,000).
MAX_SKIPPED_KEYS: Final = 2000
#: Seconds a skipped message key is kept before it is deleted (7 days).
SKIPPED_KEY_MAX_AGE: Final = 7 * 24 * 3600
#: How many processed (header key, counter) pairs we remember to tell a replay from a fork.
SEEN_WINDOW: Final = 512

#: dh_pub ‖ kem_pub ‖ kem_ct ‖ pn ‖ n
HEADER_SIZE: Final = X25519_KEY_SIZE + KEM_PUBLIC_KEY_SIZE + KEM_CIPHERTEXT_SIZE + 4 + 4
HEADER_CIPHERTEXT_SIZE: Final = aead.NONCE_SIZE + HEADER_SIZE + aead.TAG_SIZE
#: Bytes a ratchet message adds to its body plaintext.
RATCHET_OVERHEAD: Final = HEADER_CIPHERTEXT_SIZE + aead.NONCE_SIZE + aead.TAG_SIZE

_T = TypeVar("_T")

#: How many closed receiving chains we keep the header key of, to name a clone's message
#: on an old chain a fork instead of failing to read it. No message keys are kept.
RETIRED_CHAINS: Final = 32

_STATE_VERSION: Final = 2  # v2 added the retired chains; v1 still loads (no retired chains)
_COUNTERS: Final = struct.Struct(">II")
_ROOT_OUTPUT: Final = 96  # RK ‖ CK ‖ NHK (Double Ratchet §4.2, KDF_RK_HE)
_MAX_COUNTER: Final = 0xFFFFFFFF
_KEM_END: Final = X25519_KEY_SIZE + KEM_PUBLIC_KEY_SIZE
_CT_END: Final = _KEM_END + KEM_CIPHERTEXT_SIZE


def _root_kdf(root_key: bytes, dh_out: bytes, kem_secret: bytes) -> tuple[bytes, bytes, bytes]:
    out = combine(root_key, dh_out, kem_secret, info=LABEL_ROOT, length=_ROOT_OUTPUT)
    return out[:32], out[32:64], out[64:]


@dataclass(slots=True)
class _SkippedChain:
    """A receiving chain that still has skipped keys: its header key and ratchet key."""

    aead: AeadKey
    dh: bytes
    count: int = 0


@dataclass(slots=True)
class _RetiredChain:
    """A closed receiving chain: its header key, ratchet key and final length, no keys."""

    aead: AeadKey
    dh: bytes
    length: int


class DoubleRatchet:
    """One side of a header-encrypted, PQ-hybrid Double Ratchet.

    Build with :meth:`init_sender` (the side that sends first) or
    :meth:`init_receiver`; restore with :meth:`from_bytes`.
    """

    __slots__ = (
        "_ckr",
        "_cks",
        "_dh_self",
        "_dhr",
        "_header_prefix",
        "_hkr",
        "_hkr_aead",
        "_hks",
        "_hks_aead",
        "_kem_ct_out",
        "_kem_remote",
        "_kem_self",
        "_nhkr",
        "_nhkr_aead",
        "_nhks",
        "_nr",
        "_ns",
        "_pn",
        "_retired",
        "_rk",
        "_rng",
        "_seen",
        "_skipped",
        "_skipped_chains",
    )

    def __init__(self, rng: Random) -> None:
        self._rng = rng
        self._rk = b""
        self._dh_self: X25519PrivateKey | None = None
        self._dhr: X25519PublicKey | None = None
        self._kem_self: KemPrivateKey | None = None
        self._kem_remote: KemPublicKey | None = None
        self._kem_ct_out: bytes | None = None
        self._cks: bytes | None = None
        self._ckr: bytes | None = None
        self._hks: bytes | None = None
        self._hkr: bytes | None = None
        self._nhks: bytes | None = None
        self._nhkr: bytes | None = None
        self._hks_aead: AeadKey | None = None
        self._hkr_aead: AeadKey | None = None
        self._nhkr_aead: AeadKey | None = None
        self._ns = 0
        self._nr = 0
        self._pn = 0
        # (header key, n) -> (message key, stored_at); insertion order is age order.
        self._skipped: dict[tuple[bytes, int], tuple[bytes, int]] = {}
        self._skipped_chains: dict[bytes, _SkippedChain] = {}
        # (header key, n) -> tag of the header ciphertext we accepted for it.
        self._seen: dict[tuple[bytes, int], bytes] = {}
        self._retired: dict[bytes, _RetiredChain] = {}
        self._header_prefix = b""

    # -- construction -------------------------------------------------------------------

    @classmethod
    def init_sender(
        cls,
        *,
        shared_secret: bytes,
        header_key: bytes,
        next_header_key_recv: bytes,
        their_dh: X25519PublicKey,
        their_kem: KemPublicKey,
        rng: Random,
    ) -> DoubleRatchet:
        """State of the side that sends first (``RatchetInitAliceHE`` plus the KEM step)."""
        self = cls(rng)
        self._dh_self = X25519PrivateKey.generate(rng)
        self._kem_self = KemPrivateKey.generate(rng)
        self._dhr = their_dh
        self._kem_remote = their_kem
        kem_secret, self._kem_ct_out = their_kem.encapsulate()
        self._rk, self._cks, nhks = _root_kdf(shared_secret, self._dh_self.exchange(their_dh), kem_secret)
        self._set_send_keys(header_key, nhks)
        self._set_recv_keys(None, next_header_key_recv)
        self._refresh_header_prefix()
        return self

    @classmethod
    def init_receiver(
        cls,
        *,
        shared_secret: bytes,
        next_header_key_send: bytes,
        next_header_key_recv: bytes,
        our_dh: X25519PrivateKey,
        our_kem: KemPrivateKey,
        rng: Random,
    ) -> DoubleRatchet:
        """State of the side that receives first (``RatchetInitBobHE`` plus the KEM key)."""
        self = cls(rng)
        self._rk = shared_secret
        self._dh_self = our_dh
        self._kem_self = our_kem
        self._set_send_keys(None, next_header_key_send)
        self._set_recv_keys(None, next_header_key_recv)
        return self

    def _set_send_keys(self, hks: bytes | None, nhks: bytes | None) -> None:
        self._hks, self._nhks = hks, nhks
        self._hks_aead = None if hks is None else AeadKey(hks)

    def _set_recv_keys(self, hkr: bytes | None, nhkr: bytes | None) -> None:
        self._hkr, self._nhkr = hkr, nhkr
        self._hkr_aead = None if hkr is None else AeadKey(hkr)
        self._nhkr_aead = None if nhkr is None else AeadKey(nhkr)

    def _refresh_header_prefix(self) -> None:
        if self._dh_self is None or self._kem_self is None or self._kem_ct_out is None:
            self._header_prefix = b""
            return
        self._header_prefix = self._dh_self.public_key.raw + self._kem_self.public_key.raw + self._kem_ct_out

    # -- properties -----------------------------------------------------------------------

    @property
    def can_send(self) -> bool:
        """Whether a sending chain exists (the receiving side has none before its first message)."""
        return self._cks is not None

    @property
    def skipped_key_count(self) -> int:
        """How many skipped message keys are cached."""
        return len(self._skipped)

    # -- encrypt ------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, associated_data: bytes, prefix: bytes = b"") -> bytes:
        """Encrypt one message: ``prefix ‖ header_ct ‖ body_ct`` (docs/protocol.md §6.5).

        ``prefix`` is only prepended (the envelope's first bytes), so the 16 KiB result
        is assembled once; bind it through ``associated_data`` if it must be authentic.

        Raises:
            LocalProtocolError: if there is no sending chain yet or the counter is exhausted.
        """
        cks, hks_aead = self._cks, self._hks_aead
        if cks is None or hks_aead is None:
            raise LocalProtocolError("no sending chain yet: the peer has to speak first")
        if self._ns >= _MAX_COUNTER:
            raise LocalProtocolError("sending chain exhausted")
        next_ck, mk = chain_step(cks)
        header = self._header_prefix + _COUNTERS.pack(self._pn, self._ns)
        nonces = self._rng.random_bytes(2 * aead.NONCE_SIZE)
        header_nonce, body_nonce = nonces[: aead.NONCE_SIZE], nonces[aead.NONCE_SIZE :]
        header_ct = header_nonce + hks_aead.seal(header_nonce, header, associated_data)
        body_ct = aead.seal(mk, body_nonce, plaintext, associated_data + header_ct)
        self._cks = next_ck
        self._ns += 1
        return b"".join((prefix, header_ct, body_nonce, body_ct))

    # -- decrypt ------------------------------------------------------------------------

    def decrypt(
        self, message: bytes | memoryview, associated_data: bytes, *, now: int, parse: Callable[[bytes], _T]
    ) -> _T:
        """Decrypt one message produced by the peer's :meth:`encrypt`.

        Args:
            message: ``header_ct ‖ body_ct``.
            associated_data: the same bytes the sender bound in.
            now: the current time in whole seconds, for skipped-key expiry.
            parse: turns the authentic plaintext into the caller's value; it runs before
                anything is committed, so if it raises, the state stays as it was.

        Raises:
            DecryptionError: for any message that does not authenticate (no reason given).
            DuplicateMessageError: the exact message was already processed.
            ForkDetectedError: an authentic message conflicts with one already processed
                (two devices hold this conversation's keys: a clone).
            TooManySkippedMessagesError: the header's counters jump beyond ``MAX_SKIP``.
        """
        if len(message) < RATCHET_OVERHEAD:
            raise DecryptionError
        # A view, so that slicing the 16 KiB envelope below copies nothing.
        message = memoryview(message)
        nonce, sealed = message[: aead.NONCE_SIZE], message[aead.NONCE_SIZE : HEADER_CIPHERTEXT_SIZE]
        if self._hkr_aead is not None and self._hkr is not None:
            header = self._hkr_aead.try_open(nonce, sealed, associated_data)
            if header is not None:
                return self._decrypt_in_chain(
                    self._hkr, header, message, associated_data, now, parse, current=True
                )
        for hk, chain in self._skipped_chains.items():
            header = chain.aead.try_open(nonce, sealed, associated_data)
            if header is not None:
                return self._decrypt_in_chain(hk, header, message, associated_data, now, parse, current=False)
        if self._nhkr_aead is not None:
            header = self._nhkr_aead.try_open(nonce, sealed, associated_data)
            if header is not None:
                return self._decrypt_next_chain(header, message, associated_data, now, parse)
        for hk, retired in self._retired.items():
            header = retired.aead.try_open(nonce, sealed, associated_data)
            if header is not None:
                raise self._reject_retired(hk, retired, header, message)
        raise DecryptionError

    def _open_body(self, mk: bytes, message: memoryview, associated_data: bytes) -> bytes:
        body_nonce = message[HEADER_CIPHERTEXT_SIZE : HEADER_CIPHERTEXT_SIZE + aead.NONCE_SIZE]
        return aead.open_(
            mk,
            body_nonce,
            message[HEADER_CIPHERTEXT_SIZE + aead.NONCE_SIZE :],
            associated_data + message[:HEADER_CIPHERTEXT_SIZE],
        )

    def _reject_processed(self, hk: bytes, n: int, tag: bytes) -> BurnerError:
        seen = self._seen.get((hk, n))
        if seen is not None and seen != tag:
            return ForkDetectedError("a second, different message arrived for the same ratchet key")
        return DuplicateMessageError("message was already received or its key is gone")

    def _reject_retired(
        self, hk: bytes, retired: _RetiredChain, header: bytes, message: memoryview
    ) -> BurnerError:
        n = int.from_bytes(header[-4:], "big")
        if header[:X25519_KEY_SIZE] != retired.dh:
            return ForkDetectedError("a message under a known header key carries another ratchet key")
        if n >= retired.length:
            return ForkDetectedError("a message arrived beyond the end of a closed chain")
        tag = bytes(message[HEADER_CIPHERTEXT_SIZE - aead.TAG_SIZE : HEADER_CIPHERTEXT_SIZE])
        return self._reject_processed(hk, n, tag)

    def _decrypt_in_chain(
        self,
        hk: bytes,
        header: bytes,
        message: memoryview,
        associated_data: bytes,
        now: int,
        parse: Callable[[bytes], _T],
        *,
        current: bool,
    ) -> _T:
        dh = header[:X25519_KEY_SIZE]
        n = int.from_bytes(header[-4:], "big")
        tag = bytes(message[HEADER_CIPHERTEXT_SIZE - aead.TAG_SIZE : HEADER_CIPHERTEXT_SIZE])
        if current:
            expected_dh = None if self._dhr is None else self._dhr.raw
        else:
            expected_dh = self._skipped_chains[hk].dh
        if dh != expected_dh:
            # Only a holder of this chain's header key can write this header, yet it
            # names another ratchet key: a second device is using our peer's state.
            raise ForkDetectedError("a message under a known header key carries another ratchet key")
        # The in-order case (no skipped keys at all) skips the lookup.
        skipped = self._skipped.get((hk, n)) if self._skipped else None
        if skipped is not None and skipped[1] + SKIPPED_KEY_MAX_AGE < now:
            skipped = None  # past its age: as good as deleted, even before the next purge
        if skipped is not None:
            result = parse(self._open_body(skipped[0], message, associated_data))
            self._drop_skipped(hk, n)
            self._commit_common(hk, n, tag, now)
            return result
        if not current:
            retired = self._retired.get(hk)
            if retired is not None and n >= retired.length:
                raise ForkDetectedError("a message arrived beyond the end of a closed chain")
        if not current or n < self._nr:
            raise self._reject_processed(hk, n, tag)
        if n - self._nr > MAX_SKIP:
            raise TooManySkippedMessagesError("message counter jumps too far ahead")
        ck = self._ckr
        if ck is None:  # pragma: no cover - a current header key always has a chain
            raise DecryptionError
        new_skipped: list[tuple[int, bytes]] = []
        for i in range(self._nr, n):
            ck, mk_i = chain_step(ck)
            new_skipped.append((i, mk_i))
        ck, mk = chain_step(ck)
        result = parse(self._open_body(mk, message, associated_data))
        # -- commit --
        self._ckr = ck
        self._nr = n + 1
        self._add_skipped(hk, dh, new_skipped, now)
        self._commit_common(hk, n, tag, now)
        return result

    def _decrypt_next_chain(
        self,
        header: bytes,
        message: memoryview,
        associated_data: bytes,
        now: int,
        parse: Callable[[bytes], _T],
    ) -> _T:
        try:
            reader = Reader(header)
            dh_raw = reader.take(X25519_KEY_SIZE)
            kem_raw = reader.take(KEM_PUBLIC_KEY_SIZE)
            kem_ct = reader.take(KEM_CIPHERTEXT_SIZE)
            pn = reader.u32()
            n = reader.u32()
            reader.end()
        except CodecError as exc:  # pragma: no cover - the header size is fixed by the AEAD
            raise DecryptionError from exc
        # Limits before any key is derived.
        if self._ckr is not None and pn - self._nr > MAX_SKIP:
            raise TooManySkippedMessagesError("previous chain length jumps too far ahead")
        if n > MAX_SKIP:
            raise TooManySkippedMessagesError("message counter jumps too far ahead")
        dh_self, kem_self, nhkr = self._dh_self, self._kem_self, self._nhkr
        if dh_self is None or kem_self is None or nhkr is None:  # pragma: no cover - set at init
            raise DecryptionError
        tag = bytes(message[HEADER_CIPHERTEXT_SIZE - aead.TAG_SIZE : HEADER_CIPHERTEXT_SIZE])
        try:
            their_dh = X25519PublicKey.from_bytes(dh_raw)
            their_kem = KemPublicKey.from_bytes(kem_raw)
            # Finish the old receiving chain up to pn so late messages stay readable.
            old_skipped: list[tuple[int, bytes]] = []
            if self._ckr is not None:
                ck = self._ckr
                for i in range(self._nr, pn):
                    ck, mk_i = chain_step(ck)
                    old_skipped.append((i, mk_i))
            recv_secret = kem_self.decapsulate(kem_ct)
            rk, ckr, next_nhkr = _root_kdf(self._rk, dh_self.exchange(their_dh), recv_secret)
        except (ValueError, BurnerError) as exc:
            raise DecryptionError from exc
        new_skipped: list[tuple[int, bytes]] = []
        ck = ckr
        for i in range(n):
            ck, mk_i = chain_step(ck)
            new_skipped.append((i, mk_i))
        ck, mk = chain_step(ck)
        result = parse(self._open_body(mk, message, associated_data))
        # Authentic. Now our half of the step: fresh X25519 and ML-KEM keys, and a
        # KEM ciphertext to the key they just sent us.
        new_dh = X25519PrivateKey.generate(self._rng)
        new_kem = KemPrivateKey.generate(self._rng)
        send_secret, kem_ct_out = their_kem.encapsulate()
        try:
            rk, cks, next_nhks = _root_kdf(rk, new_dh.exchange(their_dh), send_secret)
        except BurnerError as exc:  # pragma: no cover - their_dh already passed one exchange
            raise DecryptionError from exc
        # -- commit --
        old_hkr, old_dhr, old_aead = self._hkr, self._dhr, self._hkr_aead
        if old_hkr is not None and old_dhr is not None and old_aead is not None:
            self._add_skipped(old_hkr, old_dhr.raw, old_skipped, now)
            self._retired[old_hkr] = _RetiredChain(old_aead, old_dhr.raw, max(pn, self._nr))
            if len(self._retired) > RETIRED_CHAINS:
                del self._retired[next(iter(self._retired))]
        self._pn = self._ns
        self._ns = 0
        self._nr = n + 1
        self._set_send_keys(self._nhks, next_nhks)
        self._set_recv_keys(nhkr, next_nhkr)
        self._rk, self._cks, self._ckr = rk, cks, ck
        self._dh_self, self._kem_self = new_dh, new_kem
        self._dhr, self._kem_remote, self._kem_ct_out = their_dh, their_kem, kem_ct_out
        self._refresh_header_prefix()
        self._add_skipped(nhkr, dh_raw, new_skipped, now)
        self._commit_common(nhkr, n, tag, now)
        return result

    def _add_skipped(self, hk: bytes, dh: bytes, keys: list[tuple[int, bytes]], now: int) -> None:
        if not keys:
            return
        chain = self._skipped_chains.get(hk)
        if chain is None:
            chain = self._skipped_chains[hk] = _SkippedChain(AeadKey(hk), dh)
        for n, mk in keys:
            if (hk, n) not in self._skipped:
                chain.count += 1
            self._skipped[(hk, n)] = (mk, now)
        while len(self._skipped) > MAX_SKIPPED_KEYS:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        hk, n = next(iter(self._skipped))
        self._drop_skipped(hk, n)

    def _drop_skipped(self, hk: bytes, n: int) -> None:
        del self._skipped[(hk, n)]
        chain = self._skipped_chains[hk]
        chain.count -= 1
        if chain.count == 0:
            del self._skipped_chains[hk]

    def purge_expired(self, now: int) -> int:
        """Delete skipped message keys older than :data:`SKIPPED_KEY_MAX_AGE`; return how many.

        Decryption purges as it goes; callers also run this on load and on a timer, so
        keys do not outlive their age in a conversation that has gone quiet.
        """
        before = len(self._skipped)
        while self._skipped and next(iter(self._skipped.values()))[1] + SKIPPED_KEY_MAX_AGE < now:
            self._evict_oldest()
        return before - len(self._skipped)

    def _commit_common(self, hk: bytes, n: int, tag: bytes, now: int) -> None:
        self._seen[(hk, n)] = tag
        if len(self._seen) > SEEN_WINDOW:
            del self._seen[next(iter(self._seen))]
        if self._skipped:
            self.purge_expired(now)

    # -- serialisation ------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialise the whole state (docs/protocol.md §8.2). Holds secrets: seal before storing."""
        if self._dh_self is None or self._kem_self is None:  # pragma: no cover - set at init
            raise LocalProtocolError("ratchet is not initialised")
        w = Writer().u8(_STATE_VERSION).raw(self._rk)
        w.raw(self._dh_self.private_bytes()).optional(None if self._dhr is None else self._dhr.raw)
        w.raw(self._kem_self.seed())
        w.optional(None if self._kem_remote is None else self._kem_remote.raw).optional(self._kem_ct_out)
        for key in (self._cks, self._ckr, self._hks, self._hkr, self._nhks, self._nhkr):
            w.optional(key)
        w.u32(self._ns).u32(self._nr).u32(self._pn)
        w.u32(len(self._skipped_chains))
        for hk, chain in self._skipped_chains.items():
            w.raw(hk).raw(chain.dh)
        w.u32(len(self._skipped))
        for (hk, n), (mk, stored_at) in self._skipped.items():
            w.raw(hk).u32(n).raw(mk).u64(stored_at)
        w.u32(len(self._seen))
        for (hk, n), tag in self._seen.items():
            w.raw(hk).u32(n).raw(tag)
        w.u32(len(self._retired))
        for hk, retired in self._retired.items():
            w.raw(hk).raw(retired.dh).u32(retired.length)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, rng: Random) -> DoubleRatchet:
        """Restore a state written by :meth:`to_bytes`.

        Raises:
            ValueError: if the bytes are not a valid state of a supported version.
        """
        try:
            return cls._parse(Reader(data), rng)
        except (CodecError, ValueError, BurnerError) as exc:
            raise ValueError("not a valid ratchet state") from exc

    @classmethod
    def _parse(cls, r: Reader, rng: Random) -> DoubleRatchet:
        version = r.u8()
        if version not in (1, _STATE_VERSION):
            raise CodecError("unsupported ratchet state version")
        self = cls(rng)
        self._rk = r.take(32)
        self._dh_self = X25519PrivateKey.from_bytes(r.take(32))
        dhr = r.optional(32)
        self._dhr = None if dhr is None else X25519PublicKey.from_bytes(dhr)
        self._kem_self = KemPrivateKey.from_seed(r.take(64))
        kem_remote = r.optional(KEM_PUBLIC_KEY_SIZE)
        self._kem_remote = None if kem_remote is None else KemPublicKey.from_bytes(kem_remote)
        self._kem_ct_out = r.optional(KEM_CIPHERTEXT_SIZE)
        self._cks, self._ckr = r.optional(32), r.optional(32)
        hks, hkr, nhks, nhkr = r.optional(32), r.optional(32), r.optional(32), r.optional(32)
        self._set_send_keys(hks, nhks)
        self._set_recv_keys(hkr, nhkr)
        self._ns, self._nr, self._pn = r.u32(), r.u32(), r.u32()
        for _ in range(r.u32()):
            hk, dh = r.take(32), r.take(32)
            if hk in self._skipped_chains:
                raise CodecError("skipped chain listed twice")
            self._skipped_chains[hk] = _SkippedChain(AeadKey(hk), dh)
        for _ in range(r.u32()):
            hk, n, mk, stored_at = r.take(32), r.u32(), r.take(32), r.u64()
            chain = self._skipped_chains.get(hk)
            if chain is None or (hk, n) in self._skipped:
                raise CodecError("skipped key without its chain")
            chain.count += 1
            self._skipped[(hk, n)] = (mk, stored_at)
        if any(chain.count == 0 for chain in self._skipped_chains.values()):
            raise CodecError("chain without skipped keys")
        for _ in range(r.u32()):
            hk, n, tag = r.take(32), r.u32(), r.take(aead.TAG_SIZE)
            if (hk, n) in self._seen:
                raise CodecError("seen entry listed twice")
            self._seen[(hk, n)] = tag
        if version >= 2:
            count = r.u32()
            if count > RETIRED_CHAINS:
                raise CodecError("too many retired chains")
            for _ in range(count):
                hk, dh, length = r.take(32), r.take(32), r.u32()
                if hk in self._retired:
                    raise CodecError("retired chain listed twice")
                self._retired[hk] = _RetiredChain(AeadKey(hk), dh, length)
        r.end()
        self._refresh_header_prefix()
        return self

    def __repr__(self) -> str:
        return f"DoubleRatchet(ns={self._ns}, nr={self._nr}, pn={self._pn}, skipped={len(self._skipped)})"
