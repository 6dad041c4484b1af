"""Short invitation links: the invitation waits on the inviter's relay (docs/protocol.md §17.2).

A long link (``burner:i1.``) carries the whole invitation, about 1.9 KB because of its
ML-KEM key: no QR code of it fits a terminal. A short link (``burner:s1.``) carries only
where the invitation waits and the secret that fetches, opens and checks it:

- ``k = SHA-256("burner/v1/link/commit" ‖ invitation)``: the link commits to the
  invitation. The invitation holds fresh keys and a random id, so ``k`` reveals nothing
  of it, and the relay, which never sees ``k``, cannot put another invitation in its
  place: whatever the acceptor opens must hash to ``k``.
- ``HKDF(k, "", "burner/v1/link/keys", 96)`` gives the link queue's recipient signing
  key, its X25519 key and the key that seals the invitation. The inviter makes the
  queue with the first two (``NEW``) and leaves the sealed invitation on it (``SEND``);
  the acceptor derives the same keys, subscribes, opens and checks it, and deletes the
  queue. The relay sees one queue with one message, like any other.

The queue key is half the relay's (§14.7: its fresh X25519 key), so the link carries the
relay's public key ``server_dh`` beside the recipient id: no secret derivation can
replace it.

The codec here is pure; :func:`publish_invitation` and :func:`fetch_invitation` do the
relay's part over a :class:`~burnerkit.relay.client.RelayClient` they are given.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import re
from dataclasses import dataclass
from typing import Final

from burnerkit.crypto import aead
from burnerkit.crypto.kdf import LABEL_LINK_COMMIT, LABEL_LINK_KEYS, LABEL_LINK_SEAL, hkdf, sha256
from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.rng import Random
from burnerkit.errors import (
    DecryptionError,
    HandshakeError,
    RelayError,
    RelayRejectedError,
    RelayTimeoutError,
    RemoteProtocolError,
    UsageError,
)
from burnerkit.relay.client import QueueCredentials, ReceivedMessage, RelayClient
from burnerkit.relay.protocol import MAX_BODY_SIZE, QUEUE_ID_SIZE, ErrorCode, derive_queue_key

__all__ = [
    "SHORT_LINK_PREFIX",
    "LinkKeys",
    "ShortLink",
    "fetch_invitation",
    "link_keys",
    "link_secret",
    "open_invitation",
    "publish_invitation",
    "seal_invitation",
]

#: Every short link starts so; ``s1`` names this format as ``i1`` names the long one.
SHORT_LINK_PREFIX: Final = "burner:s1."
_SECRET_SIZE: Final = 32
_SERVER_DH_SIZE: Final = 32
_PIN_SIZE: Final = 32
_FLAG_WS: Final = 0x01  # the scheme is ws:// (else wss://)
_FLAG_PIN: Final = 0x02  # a certificate pin follows the fixed fields
_SCHEMES: Final = {0: "wss://", _FLAG_WS: "ws://"}
_PIN_MARK: Final = "#sha256="
_PIN_SUFFIX: Final = re.compile(r"#sha256=([A-Za-z0-9_-]{43})\Z")
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+")
_MAX_URL_SIZE: Final = 255  # as a queue address's (§17.1)
_FIXED: Final = 1 + QUEUE_ID_SIZE + _SERVER_DH_SIZE + _SECRET_SIZE
_LENGTH_SIZE: Final = 2
#: What a sealed invitation holds: a whole message body less the nonce and the tag.
_SEALED_PLAINTEXT_SIZE: Final = MAX_BODY_SIZE - aead.NONCE_SIZE - aead.TAG_SIZE
#: What a short link whose queue is gone, or empty, says: its inviter deletes the queue once
#: the invitation expires or is withdrawn, or burns (§17.2); a use is refused elsewhere.
GONE: Final = "this link's invitation is no longer on its relay (expired or withdrawn); ask for a new one"
_REPLACED: Final = (
    "the invitation on the relay is not the one this link names (the relay or someone else "
    "replaced it); ask for a new link"
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes | None:
    """Canonical unpadded base64url only: one text per value, else None."""
    if not _BASE64URL.fullmatch(text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _b64(data) == text else None


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class ShortLink:
    """What a short link names: a relay, the link queue's recipient id, the relay's key, ``k``.

    No ``==``: ``k`` is a secret, compared (when at all) with ``hmac.compare_digest``.
    """

    relay_url: str
    recipient_id: bytes
    server_dh: bytes
    secret: bytes

    def __post_init__(self) -> None:
        if len(self.recipient_id) != QUEUE_ID_SIZE:
            raise ValueError(f"recipient_id must be {QUEUE_ID_SIZE} bytes")
        if len(self.server_dh) != _SERVER_DH_SIZE or len(self.secret) != _SECRET_SIZE:
            raise ValueError("server_dh and secret must be 32 bytes")
        url = self.relay_url.encode()
        if len(url) > _MAX_URL_SIZE or not any(
            self.relay_url.startswith(s) and len(self.relay_url) > len(s) for s in _SCHEMES.values()
        ):
            raise ValueError("relay_url must be a ws:// or wss:// url of at most 255 bytes")

    def payload(self) -> bytes:
        """``u8 flags ‖ recipient_id[24] ‖ server_dh[32] ‖ k[32] ‖ [pin[32]] ‖ rest of the URL``."""
        flags = 0
        rest = self.relay_url
        if rest.startswith("ws://"):
            flags |= _FLAG_WS
        rest = rest[len(_SCHEMES[flags]) :]
        pin = b""
        match = _PIN_SUFFIX.search(rest)
        if match is not None and (raw := _unb64(match.group(1))) is not None and match.start() > 0:
            flags |= _FLAG_PIN
            pin = raw
            rest = rest[: match.start()]
        return bytes([flags]) + self.recipient_id + self.server_dh + self.secret + pin + rest.encode()

    def to_text(self) -> str:
        """The link: :data:`SHORT_LINK_PREFIX` and the unpadded base64url of :meth:`payload`."""
        return SHORT_LINK_PREFIX + _b64(self.payload())

    @classmethod
    def from_text(cls, link: str) -> ShortLink:
        """Parse a short link (whitespace from copy and paste is ignored).

        Raises:
            UsageError: the text is not a canonical short link.
        """
        text = "".join(link.split())
        if not text.startswith(SHORT_LINK_PREFIX):
            raise UsageError(f"not a short burner link (it must start with {SHORT_LINK_PREFIX!r})")
        payload = _unb64(text[len(SHORT_LINK_PREFIX) :])
        damaged = "the invitation link is damaged"
        if payload is None:
            raise UsageError(f"{damaged} (not canonical base64url)")
        if len(payload) <= _FIXED:
            raise UsageError(f"{damaged} (too short)")
        flags = payload[0]
        if flags & ~(_FLAG_WS | _FLAG_PIN):
            raise UsageError(f"{damaged} (unknown flags)")
        at = 1
        recipient_id = payload[at : at + QUEUE_ID_SIZE]
        at += QUEUE_ID_SIZE
        server_dh = payload[at : at + _SERVER_DH_SIZE]
        at += _SERVER_DH_SIZE
        secret = payload[at : at + _SECRET_SIZE]
        at += _SECRET_SIZE
        pin = ""
        if flags & _FLAG_PIN:
            if len(payload) <= at + _PIN_SIZE:
                raise UsageError(f"{damaged} (too short)")
            pin = _PIN_MARK + _b64(payload[at : at + _PIN_SIZE])
            at += _PIN_SIZE
        try:
            rest = payload[at:].decode()
            parsed = cls(_SCHEMES[flags & _FLAG_WS] + rest + pin, recipient_id, server_dh, secret)
        except (UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{damaged} (bad relay url)") from exc
        # One link per value: a pin spelt out in the URL, say, would be a second spelling.
        if parsed.payload() != payload:
            raise UsageError(f"{damaged} (not canonical)")
        return parsed

    def credentials(self) -> QueueCredentials:
        """The link queue's credentials, as far as its reader needs them (SUB, ACK, DEL).

        The sender id is the inviter's alone; the reader never sends, so it is zeros here.

        Raises:
            UsageError: the relay's key in the link is one no exchange accepts (§3.5).
        """
        keys = link_keys(self.secret)
        try:
            queue_key = derive_queue_key(keys.dh_key, self.server_dh)
        except RemoteProtocolError as exc:
            raise UsageError("the invitation link is damaged (bad relay key)") from exc
        return QueueCredentials(self.recipient_id, bytes(QUEUE_ID_SIZE), keys.signing_key, queue_key)

    def __repr__(self) -> str:
        # k opens the invitation and deletes its queue: never in a log.
        return f"ShortLink({self.relay_url!r}, <secret>)"


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class LinkKeys:
    """What ``k`` derives: the link queue's two keys and the invitation's sealing key."""

    signing_key: SigningKey
    dh_key: X25519PrivateKey
    seal_key: bytes


def link_secret(invitation: bytes) -> bytes:
    """``k = SHA-256("burner/v1/link/commit" ‖ invitation)``: the link's commitment and secret."""
    return sha256(LABEL_LINK_COMMIT, invitation)


def link_keys(secret: bytes) -> LinkKeys:
    """``HKDF(k, "", "burner/v1/link/keys", 96)`` split into signing seed, X25519 key, seal key."""
    if len(secret) != _SECRET_SIZE:
        raise ValueError("a link secret is 32 bytes")
    okm = hkdf(secret, salt=b"", info=LABEL_LINK_KEYS, length=96)
    return LinkKeys(SigningKey.from_bytes(okm[:32]), X25519PrivateKey.from_bytes(okm[32:64]), okm[64:])


def seal_invitation(invitation: bytes, rng: Random) -> bytes:
    """``nonce[12] ‖ AES-256-GCM(seal key, nonce, u16(len) ‖ invitation ‖ zeros, AD)``.

    Padded to the size of every envelope (``MAX_BODY_SIZE``), so a link queue's message
    looks to the relay like any other (docs/protocol.md §17.2).
    """
    if _LENGTH_SIZE + len(invitation) > _SEALED_PLAINTEXT_SIZE:
        raise ValueError("the invitation does not fit one message")
    padded = len(invitation).to_bytes(_LENGTH_SIZE, "big") + invitation
    padded += bytes(_SEALED_PLAINTEXT_SIZE - len(padded))
    nonce = rng.random_bytes(aead.NONCE_SIZE)
    key = link_keys(link_secret(invitation)).seal_key
    return nonce + aead.seal(key, nonce, padded, LABEL_LINK_SEAL)


def open_invitation(secret: bytes, sealed: bytes) -> bytes:
    """The invitation a link queue held, if it opens under ``k`` and hashes to ``k``.

    Raises:
        HandshakeError: it does not open, or it is not the invitation the link names.
    """
    refused = HandshakeError(_REPLACED)
    try:
        padded = aead.open_(
            link_keys(secret).seal_key, sealed[: aead.NONCE_SIZE], sealed[aead.NONCE_SIZE :], LABEL_LINK_SEAL
        )
    except (DecryptionError, ValueError):
        raise refused from None
    size = int.from_bytes(padded[:_LENGTH_SIZE], "big")
    invitation, padding = padded[_LENGTH_SIZE : _LENGTH_SIZE + size], padded[_LENGTH_SIZE + size :]
    if len(padded) != _SEALED_PLAINTEXT_SIZE or len(invitation) != size or padding.strip(b"\0"):
        raise refused
    if not hmac.compare_digest(link_secret(invitation), secret):
        raise refused
    return invitation


async def publish_invitation(
    client: RelayClient, relay_url: str, invitation: bytes, rng: Random
) -> tuple[ShortLink, QueueCredentials]:
    """Leave ``invitation`` sealed on a new link queue of ``client``'s relay (``relay_url``).

    Returns:
        The short link, and the link queue's credentials (for the inviter to delete it).

    Raises:
        RelayError: the relay could not make the queue or store the message.
    """
    secret = link_secret(invitation)
    keys = link_keys(secret)
    # An open queue: its sender id stays with us and the relay, so nobody else can write
    # to it, and the relay could write anything anyway: the commitment is the defence.
    creds, server_dh = await client.create_queue_with_keys(keys.signing_key, keys.dh_key)
    try:
        await client.send(creds.sender_id, seal_invitation(invitation, rng))
    except RelayError:
        # An empty link queue is of no use to anyone: gone if the relay lets us (best effort).
        with contextlib.suppress(RelayError):
            await client.delete_queue(creds)
        raise
    return ShortLink(relay_url, creds.recipient_id, server_dh, secret), creds


async def fetch_invitation(client: RelayClient, link: ShortLink, *, timeout: float) -> bytes:
    """Subscribe to a link's queue and take the invitation it holds, checked against the link.

    Nothing is acknowledged: the copy stays for the next holder of the link until the
    inviter deletes the queue (docs/protocol.md §17.2).

    Raises:
        HandshakeError: the queue is gone or empty (the invitation expired or was
            withdrawn), or what it holds is not the invitation the link names.
        RelayError: the relay is unreachable or failed.
    """
    creds = link.credentials()
    try:
        await client.subscribe(creds)
    except RelayRejectedError as exc:
        if exc.code == ErrorCode.AUTH:
            raise HandshakeError(GONE) from None
        raise
    try:
        event = await client.next_delivery(timeout=timeout)
    except RelayTimeoutError:
        # The queue is there but holds nothing: its copy expired on the relay.
        raise HandshakeError(GONE) from None
    if not isinstance(event, ReceivedMessage) or event.sender_refused:
        raise HandshakeError(_REPLACED)
    return open_invitation(link.secret, event.body)
