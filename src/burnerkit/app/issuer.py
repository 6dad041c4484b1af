"""Issuer keys, order addresses, burn orders and sealed reports (docs/protocol.md §17.9).

An issuing office holds an :class:`IssuerKeyPair`: an Ed25519 key that signs burn orders
and an X25519 key that debrief reports are sealed to. A burner minted with the office's
:class:`IssuerPublicKey` keeps an :class:`IssuerRecord` (vault kind ``issuer``) and owns an
*order queue* on its relay on which only burn orders arrive; the office reaches it through
the burner's :class:`OrderAddress`.

A :class:`BurnOrder` is signed by the issuer over a label, the burner's order id, a random
nonce, its issued-at and not-after times, then sealed to the burner's order key and padded
to the size of every message body, so the relay sees one more queue with one more message.
:func:`judge` is the acceptance rule, pure: one rule, one place (§17.9.4). What the
Messenger does with its verdict (burn, or acknowledge and drop) is :func:`take_order`'s
part inside a vault transaction and the Messenger's after it.

The codecs and the rule are pure; :func:`open_order_queue` and :func:`send_order` do the
relay's part over a client they are given or open.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from burnerkit.app.ledger import record_event
from burnerkit.app.records import EventKind, _Record
from burnerkit.crypto import aead
from burnerkit.crypto.kdf import (
    LABEL_ISSUER_FILE,
    LABEL_SEAL_ORDER,
    LABEL_SEAL_REPORT,
    LABEL_SIG_BURN_ORDER,
)
from burnerkit.crypto.keys import (
    ED25519_KEY_SIZE,
    ED25519_SIGNATURE_SIZE,
    X25519_KEY_SIZE,
    SigningKey,
    VerifyKey,
    X25519PrivateKey,
    X25519PublicKey,
)
from burnerkit.crypto.passphrase import SALT_SIZE, KdfParams, derive_key
from burnerkit.crypto.rng import Random
from burnerkit.crypto.seal import SEAL_OVERHEAD, open_sealed, seal_to
from burnerkit.errors import (
    DecryptionError,
    InvalidKeyError,
    RemoteProtocolError,
    SignatureError,
    UsageError,
    VaultLockedError,
)
from burnerkit.relay.client import QueueCredentials, RelayClient
from burnerkit.relay.protocol import MAX_BODY_SIZE, QUEUE_ID_SIZE
from burnerkit.vault import VaultTransaction
from burnerkit.wire import CodecError, Reader, Writer

__all__ = [
    "DEFAULT_ORDER_LIFETIME",
    "ISSUER_KEY",
    "ISSUER_KEY_PREFIX",
    "ISSUER_KIND",
    "MAX_ORDER_LIFETIME",
    "MAX_SKEW",
    "ORDER_ADDRESS_PREFIX",
    "ORDER_SIZE",
    "REFUSALS",
    "REMEMBERED_ORDERS",
    "BurnOrder",
    "IssuerKeyPair",
    "IssuerPublicKey",
    "IssuerRecord",
    "OrderAddress",
    "SeenOrder",
    "Verdict",
    "judge",
    "load_record",
    "open_order",
    "open_order_queue",
    "open_report",
    "seal_order",
    "seal_report",
    "send_order",
    "take_order",
]

#: An issuer's public key as text: this prefix, then unpadded base64url of its 65 bytes.
ISSUER_KEY_PREFIX: Final = "burner:ik1."
#: A burner's order address as text: this prefix, then unpadded base64url of its bytes.
ORDER_ADDRESS_PREFIX: Final = "burner:oa1."
#: The vault record a burner that carries an issuer key keeps, under one key.
ISSUER_KIND: Final = "issuer"
ISSUER_KEY: Final = b"issuer"
#: How long an order stays valid unless the office says otherwise (the relay keeps a message 7 days).
DEFAULT_ORDER_LIFETIME: Final = 7 * 86400
#: The longest validity window an order may claim: a longer one is refused as stale.
MAX_ORDER_LIFETIME: Final = 28 * 86400
#: How far ahead of the burner's time an order may be dated (the office's clock may run fast).
MAX_SKEW: Final = 300
#: Orders remembered against replay; the oldest forgotten raises the issued-at floor.
REMEMBERED_ORDERS: Final = 128

_VERSION: Final = 1
_ORDER_ID_SIZE: Final = 16
_NONCE_SIZE: Final = 16
_MAX_URL_SIZE: Final = 255
_PUBLIC_SIZE: Final = 1 + ED25519_KEY_SIZE + X25519_KEY_SIZE
_SIGNED_SIZE: Final = 1 + _ORDER_ID_SIZE + _NONCE_SIZE + 8 + 8
ORDER_SIZE: Final = _SIGNED_SIZE + ED25519_SIGNATURE_SIZE
_LENGTH_SIZE: Final = 2
#: What a sealed order's padded plaintext holds: a whole message body less the seal's overhead.
_ORDER_PLAINTEXT_SIZE: Final = MAX_BODY_SIZE - SEAL_OVERHEAD
_FILE_MAGIC: Final = b"BKISSUER"
_FILE_HEADER_SIZE: Final = len(_FILE_MAGIC) + 1 + 4 + 4 + 1 + SALT_SIZE
_REPORT_BLOCK: Final = 1024
_REPORT_LENGTH_SIZE: Final = 4
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+")
# A clamped X25519 scalar is a multiple of the cofactor, so its product with any
# small-order point is the identity (all zeros): one exchange with a fixed scalar tells
# a small-order key without drawing randomness.
_PROBE: Final = X25519PrivateKey.from_bytes(bytes(range(1, 33)))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _from_text(text: str, prefix: str, what: str) -> bytes:
    """The bytes of a ``prefix``-ed canonical base64url text (whitespace ignored).

    Raises:
        UsageError: not such a text.
    """
    compact = "".join(text.split())
    if not compact.startswith(prefix):
        raise UsageError(f"not {what} (it must start with {prefix!r})")
    body = compact[len(prefix) :]
    if not _BASE64URL.fullmatch(body):
        raise UsageError(f"{what} is damaged (not base64url)")
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise UsageError(f"{what} is damaged (not base64url)") from exc
    if _b64(data) != body:
        raise UsageError(f"{what} is damaged (not canonical base64url)")
    return data


# -- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuerPublicKey:
    """What a burner carries of its issuer: the key orders are checked with, the key reports are sealed to."""

    verify_key: VerifyKey
    seal_key: X25519PublicKey

    def to_bytes(self) -> bytes:
        """``u8 version(1) ‖ ed25519[32] ‖ x25519[32]`` (65 bytes)."""
        return bytes([_VERSION]) + self.verify_key.raw + self.seal_key.raw

    @classmethod
    def from_bytes(cls, data: bytes) -> IssuerPublicKey:
        """Parse :meth:`to_bytes` output.

        Raises:
            RemoteProtocolError: not 65 bytes of a known version.
            InvalidKeyError: a key of small order (or a non-canonical Ed25519 key).
        """
        if len(data) != _PUBLIC_SIZE or data[0] != _VERSION:
            raise RemoteProtocolError("malformed issuer key")
        verify_key = VerifyKey.from_bytes(data[1 : 1 + ED25519_KEY_SIZE])
        seal_key = X25519PublicKey.from_bytes(data[1 + ED25519_KEY_SIZE :])
        _PROBE.exchange(seal_key)  # raises InvalidKeyError for a small-order key
        return cls(verify_key, seal_key)

    def to_text(self) -> str:
        """:data:`ISSUER_KEY_PREFIX` and the unpadded base64url of :meth:`to_bytes`: one copyable string."""
        return ISSUER_KEY_PREFIX + _b64(self.to_bytes())

    @classmethod
    def from_text(cls, text: str) -> IssuerPublicKey:
        """Parse :meth:`to_text` output (whitespace from copy and paste is ignored).

        Raises:
            UsageError: not an issuer key, or a damaged one.
        """
        data = _from_text(text, ISSUER_KEY_PREFIX, "an issuer key")
        try:
            return cls.from_bytes(data)
        except (RemoteProtocolError, InvalidKeyError, ValueError) as exc:
            raise UsageError("the issuer key is damaged") from exc


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class IssuerKeyPair:
    """An issuing office's private keys: Ed25519 to sign burn orders, X25519 to open reports."""

    signing_key: SigningKey
    dh_key: X25519PrivateKey

    @classmethod
    def generate(cls, rng: Random) -> IssuerKeyPair:
        """Two fresh keys: 32 bytes of ``rng`` for the Ed25519 seed, then 32 for X25519."""
        return cls(SigningKey.generate(rng), X25519PrivateKey.generate(rng))

    @property
    def public(self) -> IssuerPublicKey:
        """What burners carry of this office."""
        return IssuerPublicKey(self.signing_key.verify_key, self.dh_key.public_key)

    def seal_file(self, passphrase: str, kdf: KdfParams, rng: Random) -> bytes:
        """The key file: the two private keys sealed under an Argon2id key of ``passphrase``.

        ``"BKISSUER" ‖ u8 version(1) ‖ u32 m ‖ u32 t ‖ u8 p ‖ salt[16] ‖ nonce[12] ‖
        AES-256-GCM(Argon2id(passphrase, salt), nonce, ed25519 seed[32] ‖ x25519[32],
        AD = "burner/v1/issuer/key-file" ‖ the 34 bytes before the nonce)``: 126 bytes.
        """
        salt = rng.random_bytes(SALT_SIZE)
        header = (
            Writer()
            .raw(_FILE_MAGIC)
            .u8(_VERSION)
            .u32(kdf.memory_kib)
            .u32(kdf.iterations)
            .u8(kdf.parallelism)
            .raw(salt)
            .getvalue()
        )
        key = derive_key(passphrase, salt, kdf)
        nonce = rng.random_bytes(aead.NONCE_SIZE)
        secret = self.signing_key.private_bytes() + self.dh_key.private_bytes()
        return header + nonce + aead.seal(key, nonce, secret, LABEL_ISSUER_FILE + header)

    @classmethod
    def open_file(cls, data: bytes, passphrase: str) -> IssuerKeyPair:
        """Open :meth:`seal_file` output.

        Raises:
            VaultLockedError: a wrong passphrase or a damaged file: one message for both.
        """
        refused = VaultLockedError("the issuer key file does not open with this passphrase (or is damaged)")
        try:
            r = Reader(bytes(data))
            if r.take(len(_FILE_MAGIC)) != _FILE_MAGIC or r.u8() != _VERSION:
                raise refused
            kdf = KdfParams(r.u32(), r.u32(), r.u8())
            salt = r.take(SALT_SIZE)
            nonce = r.take(aead.NONCE_SIZE)
            sealed = r.rest()
            secret = aead.open_(
                derive_key(passphrase, salt, kdf), nonce, sealed, LABEL_ISSUER_FILE + data[:34]
            )
        except (CodecError, ValueError, TypeError, DecryptionError):
            raise refused from None
        if len(secret) != ED25519_KEY_SIZE + X25519_KEY_SIZE:
            raise refused
        return cls(SigningKey.from_bytes(secret[:32]), X25519PrivateKey.from_bytes(secret[32:]))

    def __repr__(self) -> str:
        return f"IssuerKeyPair(public={self.public.verify_key.raw[:4].hex()}...)"


# -- the order address -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class OrderAddress:
    """What an office needs to send a burner burn orders: where its order queue is, and for whom.

    ``sender_key`` signs the SENDs to the sender-secured order queue (the first locks it,
    §14.8); ``order_key`` is the X25519 key orders are sealed to; ``order_id`` is the name
    an order is addressed to. Secret: whoever holds it can fill the queue (not burn it).
    """

    relay_url: str
    sender_id: bytes
    sender_key: SigningKey
    order_id: bytes
    order_key: X25519PublicKey

    def __post_init__(self) -> None:
        url = self.relay_url.encode()
        if not url or len(url) > _MAX_URL_SIZE or not self.relay_url.startswith(("ws://", "wss://")):
            raise ValueError("relay_url must be a ws:// or wss:// url of at most 255 bytes")
        if len(self.sender_id) != QUEUE_ID_SIZE:
            raise ValueError(f"sender_id must be {QUEUE_ID_SIZE} bytes")
        if len(self.order_id) != _ORDER_ID_SIZE:
            raise ValueError(f"order_id must be {_ORDER_ID_SIZE} bytes")

    def to_bytes(self) -> bytes:
        """``u8 version(1) ‖ u8 len ‖ url ‖ sender_id[24] ‖ sender seed[32] ‖ order_id[16] ‖ order_key[32]``.

        (The version byte and each field as docs/protocol.md §17.9.3 gives them.)
        """
        url = self.relay_url.encode()
        return (
            Writer()
            .u8(_VERSION)
            .u8(len(url))
            .raw(url)
            .raw(self.sender_id)
            .raw(self.sender_key.private_bytes())
            .raw(self.order_id)
            .raw(self.order_key.raw)
            .getvalue()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> OrderAddress:
        """Parse :meth:`to_bytes` output.

        Raises:
            RemoteProtocolError: not an order address of a known version.
        """
        try:
            r = Reader(bytes(data))
            if r.u8() != _VERSION:
                raise CodecError("unknown order address version")
            url = r.take(r.u8()).decode()
            sender_id = r.take(QUEUE_ID_SIZE)
            sender_key = SigningKey.from_bytes(r.take(ED25519_KEY_SIZE))
            order_id = r.take(_ORDER_ID_SIZE)
            order_key = X25519PublicKey.from_bytes(r.take(X25519_KEY_SIZE))
            r.end()
            _PROBE.exchange(order_key)
            return cls(url, sender_id, sender_key, order_id, order_key)
        except (CodecError, UnicodeDecodeError, ValueError, InvalidKeyError) as exc:
            raise RemoteProtocolError("malformed order address") from exc

    def to_text(self) -> str:
        """:data:`ORDER_ADDRESS_PREFIX` and the unpadded base64url of :meth:`to_bytes`."""
        return ORDER_ADDRESS_PREFIX + _b64(self.to_bytes())

    @classmethod
    def from_text(cls, text: str) -> OrderAddress:
        """Parse :meth:`to_text` output (whitespace from copy and paste is ignored).

        Raises:
            UsageError: not an order address, or a damaged one.
        """
        data = _from_text(text, ORDER_ADDRESS_PREFIX, "an order address")
        try:
            return cls.from_bytes(data)
        except RemoteProtocolError as exc:
            raise UsageError("the order address is damaged") from exc

    def __repr__(self) -> str:
        return f"OrderAddress({self.relay_url!r}, <secret>)"


# -- burn orders -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BurnOrder:
    """One signed order to burn the burner whose order id is ``order_id``, valid in a window."""

    order_id: bytes
    nonce: bytes
    issued_at: int
    not_after: int
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.order_id) != _ORDER_ID_SIZE or len(self.nonce) != _NONCE_SIZE:
            raise ValueError("order_id and nonce must be 16 bytes")
        if len(self.signature) != ED25519_SIGNATURE_SIZE:
            raise ValueError("signature must be 64 bytes")

    @staticmethod
    def _signed(order_id: bytes, nonce: bytes, issued_at: int, not_after: int) -> bytes:
        return Writer().u8(_VERSION).raw(order_id).raw(nonce).u64(issued_at).u64(not_after).getvalue()

    @classmethod
    def issue(
        cls,
        issuer: IssuerKeyPair,
        order_id: bytes,
        *,
        now: float,
        rng: Random,
        lifetime: int = DEFAULT_ORDER_LIFETIME,
    ) -> BurnOrder:
        """Sign an order to burn ``order_id``, valid from ``now`` for ``lifetime`` seconds.

        Raises:
            ValueError: a lifetime outside 1 s to :data:`MAX_ORDER_LIFETIME`.
        """
        if not 0 < lifetime <= MAX_ORDER_LIFETIME:
            raise ValueError("an order's lifetime runs from 1 second to 4 weeks")
        nonce = rng.random_bytes(_NONCE_SIZE)
        issued_at = int(now)
        signed = cls._signed(order_id, nonce, issued_at, issued_at + lifetime)
        signature = issuer.signing_key.sign(LABEL_SIG_BURN_ORDER + signed)
        return cls(order_id, nonce, issued_at, issued_at + lifetime, signature)

    def to_bytes(self) -> bytes:
        """``u8 version(1) ‖ order_id[16] ‖ nonce[16] ‖ u64 issued_at ‖ u64 not_after ‖ sig[64]``.

        113 bytes; the signature covers the label and the 49 bytes before it.
        """
        return self._signed(self.order_id, self.nonce, self.issued_at, self.not_after) + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> BurnOrder:
        """Parse :meth:`to_bytes` output (the signature is not checked here).

        Raises:
            RemoteProtocolError: not an order of a known version.
        """
        try:
            r = Reader(bytes(data))
            if r.u8() != _VERSION:
                raise CodecError("unknown order version")
            order = cls(r.take(_ORDER_ID_SIZE), r.take(_NONCE_SIZE), r.u64(), r.u64(), r.take(64))
            r.end()
            return order
        except (CodecError, ValueError) as exc:
            raise RemoteProtocolError("malformed burn order") from exc

    def verify(self, key: VerifyKey) -> None:
        """Check the issuer's signature over ``label ‖`` the order's first 49 bytes.

        Raises:
            SignatureError: it does not verify under ``key``.
        """
        signed = self._signed(self.order_id, self.nonce, self.issued_at, self.not_after)
        key.verify(self.signature, LABEL_SIG_BURN_ORDER + signed)


def seal_order(order: BurnOrder, order_key: X25519PublicKey, rng: Random) -> bytes:
    """The order as the order queue's message: sealed to ``order_key``, padded to a whole body.

    ``seal_to(order_key, u16 len ‖ order ‖ zeros, label "burner/v1/seal/burn-order")``:
    exactly :data:`~burnerkit.relay.protocol.MAX_BODY_SIZE` bytes, as every envelope.
    """
    raw = order.to_bytes()
    padded = len(raw).to_bytes(_LENGTH_SIZE, "big") + raw
    padded += bytes(_ORDER_PLAINTEXT_SIZE - len(padded))
    return seal_to(order_key, padded, label=LABEL_SEAL_ORDER, rng=rng)


def open_order(order_key: X25519PrivateKey, body: bytes) -> BurnOrder:
    """The order a queue message holds, if it opens under ``order_key`` (signature not checked).

    Raises:
        DecryptionError: it does not open, is not a whole body, or its padding is wrong.
        RemoteProtocolError: it opens but holds no order of a known version.
    """
    if len(body) != MAX_BODY_SIZE:
        raise DecryptionError
    padded = open_sealed(order_key, body, label=LABEL_SEAL_ORDER)
    size = int.from_bytes(padded[:_LENGTH_SIZE], "big")
    raw, padding = padded[_LENGTH_SIZE : _LENGTH_SIZE + size], padded[_LENGTH_SIZE + size :]
    if len(raw) != size or padding.strip(b"\0"):
        raise RemoteProtocolError("malformed burn order")
    return BurnOrder.from_bytes(raw)


# -- what a burner keeps, and the acceptance rule --------------------------------------------


@dataclass(frozen=True, slots=True)
class SeenOrder:
    """An order a burner accepted: kept so that the same order is never accepted from another delivery."""

    nonce: bytes
    issued_at: int
    not_after: int
    msg_id: bytes = b""


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class IssuerRecord(_Record):
    """What a burner that carries an issuer key keeps (vault kind ``issuer``, key ``b"issuer"``).

    ``floor``: orders issued at or before it are refused as replays (the issued-at of the
    oldest order forgotten when more than :data:`REMEMBERED_ORDERS` were kept).
    """

    issuer: IssuerPublicKey
    relay_url: str
    queue: QueueCredentials
    sender_key: SigningKey
    order_id: bytes
    order_key: X25519PrivateKey
    floor: int = 0
    seen: tuple[SeenOrder, ...] = ()

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.issuer.to_bytes())
        w.var16(self.relay_url.encode())
        w.var16(self.queue.to_bytes())
        w.raw(self.sender_key.private_bytes()).raw(self.order_id).raw(self.order_key.private_bytes())
        w.u64(self.floor).u16(len(self.seen))
        for seen in self.seen:
            w.raw(seen.nonce).u64(seen.issued_at).u64(seen.not_after).var16(seen.msg_id)

    @classmethod
    def read(cls, r: Reader) -> IssuerRecord:  # noqa: D102
        try:
            issuer = IssuerPublicKey.from_bytes(r.take(_PUBLIC_SIZE))
        except InvalidKeyError as exc:
            raise CodecError("bad issuer key") from exc
        relay_url = r.var16().decode()
        queue = QueueCredentials.from_bytes(r.var16())
        sender_key = SigningKey.from_bytes(r.take(ED25519_KEY_SIZE))
        order_id = r.take(_ORDER_ID_SIZE)
        order_key = X25519PrivateKey.from_bytes(r.take(X25519_KEY_SIZE))
        floor = r.u64()
        seen = tuple(SeenOrder(r.take(_NONCE_SIZE), r.u64(), r.u64(), r.var16()) for _ in range(r.u16()))
        return cls(issuer, relay_url, queue, sender_key, order_id, order_key, floor, seen)

    def address(self) -> OrderAddress:
        """The order address to hand the office."""
        return OrderAddress(
            self.relay_url, self.queue.sender_id, self.sender_key, self.order_id, self.order_key.public_key
        )

    def remember(self, order: BurnOrder, msg_id: bytes, now: float) -> IssuerRecord:
        """This record with ``order`` remembered; expired orders and the oldest beyond the cap forgotten."""
        kept = [s for s in self.seen if s.not_after > now]
        kept.append(SeenOrder(order.nonce, order.issued_at, order.not_after, msg_id))
        kept.sort(key=lambda s: s.issued_at)
        floor = self.floor
        while len(kept) > REMEMBERED_ORDERS:
            floor = max(floor, kept.pop(0).issued_at)
        return replace(self, floor=floor, seen=tuple(kept))


class Verdict(enum.Enum):
    """What the acceptance rule says of one message on the order queue."""

    ACCEPTED = "accepted"  #: burn
    FORGED = "forged"  #: does not open, does not parse, or not signed by the issuer
    MISADDRESSED = "misaddressed"  #: signed by the issuer, for another burner
    REPLAYED = "replayed"  #: an order accepted before, from another delivery
    STALE = "stale"  #: outside its window by the burner's time, or a window too long


#: What the debrief says of each refused order (EventKind.FORGED_ORDER's detail).
REFUSALS: Final = {
    Verdict.FORGED: "a burn order that did not verify (forged or damaged) was ignored",
    Verdict.MISADDRESSED: "a burn order signed by the issuer for another burner was ignored",
    Verdict.REPLAYED: "a burn order already accepted arrived again (a replay) and was ignored",
    Verdict.STALE: "a burn order outside its validity window (stale) was ignored",
}


def judge(
    record: IssuerRecord, body: bytes, *, now: float, msg_id: bytes = b""
) -> tuple[Verdict, IssuerRecord]:
    """The acceptance rule of docs/protocol.md §17.9.4, stated once: what to do with ``body``.

    An order is accepted iff it opens under the order key, is signed by the issuer,
    names this burner's order id, was not accepted before from another delivery (and is
    issued after the floor), and ``issued_at - MAX_SKEW <= now < not_after`` with a window
    of at most :data:`MAX_ORDER_LIFETIME`, ``now`` being the burner's time floor
    (``Messenger.now()``). The same delivery again (``msg_id`` the relay's id of the
    accepted one: the burn was cut short) is accepted again.

    Returns:
        The verdict, and the record to store (the order remembered when accepted).
    """
    try:
        order = open_order(record.order_key, body)
        order.verify(record.issuer.verify_key)
    except (DecryptionError, RemoteProtocolError, SignatureError):
        return Verdict.FORGED, record
    if not hmac.compare_digest(order.order_id, record.order_id):
        return Verdict.MISADDRESSED, record
    for seen in record.seen:
        if hmac.compare_digest(seen.nonce, order.nonce):
            again = bool(msg_id) and hmac.compare_digest(seen.msg_id, msg_id)
            return (Verdict.ACCEPTED if again else Verdict.REPLAYED), record
    if order.issued_at <= record.floor:
        return Verdict.REPLAYED, record
    window = order.not_after - order.issued_at
    if not (order.issued_at - MAX_SKEW <= now < order.not_after) or not 0 < window <= MAX_ORDER_LIFETIME:
        return Verdict.STALE, record
    return Verdict.ACCEPTED, record.remember(order, msg_id, now)


def take_order(
    tx: VaultTransaction,
    rng: Random,
    body: bytes,
    now: float,
    *,
    msg_id: bytes = b"",
    sender_refused: bool = False,
) -> bool:
    """Judge one delivery on the order queue inside ``tx``: True to burn.

    A refused order leaves one ``forged-order`` event for the debrief and nothing else;
    the caller acknowledges it (the relay and the sender learn nothing). An accepted one
    is remembered; the caller must not acknowledge it but burn, which deletes it with
    the queue (a burn cut short meets it again and burns).
    """
    if sender_refused:
        detail = "the relay refused another sender on the order queue (its address leaked?)"
        record_event(tx, rng, b"", EventKind.FORGED_ORDER, detail, now)
        if not body:
            return False
    data = tx.get(ISSUER_KIND, ISSUER_KEY)
    if data is None:  # cannot happen: only a burner with the record subscribes the queue
        return False
    record = IssuerRecord.from_bytes(data)
    verdict, kept = judge(record, body, now=now, msg_id=msg_id)
    if verdict is Verdict.ACCEPTED:
        tx.put(ISSUER_KIND, ISSUER_KEY, kept.to_bytes())
        return True
    record_event(tx, rng, b"", EventKind.FORGED_ORDER, REFUSALS[verdict], now)
    return False


def load_record(reader: Callable[[str, bytes], bytes | None]) -> IssuerRecord | None:
    """The burner's issuer record, if it carries an issuer key."""
    data = reader(ISSUER_KIND, ISSUER_KEY)
    return None if data is None else IssuerRecord.from_bytes(data)


# -- the relay's part ------------------------------------------------------------------------


async def open_order_queue(
    client: RelayClient, relay_url: str, issuer: IssuerPublicKey, rng: Random
) -> IssuerRecord:
    """Make the order queue on ``client``'s relay (``relay_url``) and the keys around it.

    The queue is sender-secured like a contact's: the office's first SEND locks it to the
    sender key in the order address (§14.8), so at the relay it is made, locked and used
    as any contact's queue is.

    Raises:
        RelayError: the relay could not make the queue.
    """
    creds = await client.create_queue(sender_secured=True)
    return IssuerRecord(
        issuer=issuer,
        relay_url=relay_url,
        queue=creds,
        sender_key=SigningKey.generate(rng),
        order_id=rng.random_bytes(_ORDER_ID_SIZE),
        order_key=X25519PrivateKey.generate(rng),
    )


async def send_order(
    address: OrderAddress, order: BurnOrder, rng: Random, *, timeout: float, insecure: bool = False
) -> None:
    """Seal ``order`` to ``address``'s burner and SEND it to its order queue.

    The relay answers every SEND to the queue alike, whether the order will be obeyed or
    not: the burner judges it, silently.

    Raises:
        UsageError: the address's relay URL is not one we use (``ws://`` off this machine
            without ``insecure``).
        RelayError: the relay is unreachable, or refused (``AUTH``: the queue is gone,
            the burner burned or was never made; or another sender locked it).
    """
    from burnerkit.relay.url import check_relay_url

    check_relay_url(address.relay_url, insecure=insecure)
    body = seal_order(order, address.order_key, rng)
    async with RelayClient(address.relay_url, rng=rng, timeout=timeout) as client:
        await client.send(
            address.sender_id, body, send_id=rng.random_bytes(16), sender_key=address.sender_key
        )


# -- sealed reports --------------------------------------------------------------------------


def seal_report(issuer: IssuerPublicKey, document: Mapping[str, object], rng: Random) -> bytes:
    """A report sealed to the issuer: ``document`` (the debrief's JSON form, never content).

    ``u8 version(1) ‖ seal_to(issuer X25519, u32 len ‖ JSON ‖ zeros to a multiple of
    1,024 bytes, label "burner/v1/seal/report", AD = the version byte)``.
    """
    raw = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    padded = len(raw).to_bytes(_REPORT_LENGTH_SIZE, "big") + raw
    padded += bytes(-len(padded) % _REPORT_BLOCK)
    version = bytes([_VERSION])
    return version + seal_to(issuer.seal_key, padded, label=LABEL_SEAL_REPORT, rng=rng, aad=version)


def open_report(issuer: IssuerKeyPair, data: bytes) -> dict[str, object]:
    """The JSON document of a report sealed to ``issuer``.

    Raises:
        UsageError: not a report sealed to this issuer, or a damaged one.
    """
    refused = UsageError("this report is not sealed to this issuer key, or is damaged")
    if not data or data[0] != _VERSION:
        raise refused
    try:
        padded = open_sealed(issuer.dh_key, data[1:], label=LABEL_SEAL_REPORT, aad=data[:1])
        size = int.from_bytes(padded[:_REPORT_LENGTH_SIZE], "big")
        raw = padded[_REPORT_LENGTH_SIZE : _REPORT_LENGTH_SIZE + size]
        if len(raw) != size:
            raise refused
        document = json.loads(raw)
    except (DecryptionError, ValueError):
        raise refused from None
    if not isinstance(document, dict):
        raise refused
    return document
