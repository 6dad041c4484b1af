"""Where to send: queue addresses and ``burner:`` invitation links (docs/protocol.md §17.1-17.2).

A :class:`QueueAddress` names one relay queue from the sender's side: the relay's URL and
the queue's sender id. It travels inside invitations (their opaque reply address) and in
the acceptor's first message, so each side learns where the other receives.

A link is long (``burner:i1.``, the invitation itself) or short (``burner:s1.``, where the
invitation waits, :mod:`burnerkit.app.shortlink`); :func:`parse_link` takes either.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

from burnerkit.app.shortlink import SHORT_LINK_PREFIX, ShortLink
from burnerkit.errors import RemoteProtocolError, UsageError
from burnerkit.relay.protocol import QUEUE_ID_SIZE
from burnerkit.wire import CodecError, Reader, Writer

__all__ = ["LINK_PREFIX", "MAX_URL_SIZE", "QueueAddress", "decode_link", "encode_link", "parse_link"]

_ADDRESS_VERSION: Final = 1
#: Longest relay URL an address carries, in UTF-8 bytes.
MAX_URL_SIZE: Final = 255
#: Every invitation link starts so; the version lets a later link format coexist.
LINK_PREFIX: Final = "burner:i1."
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class QueueAddress:
    """A relay URL and a queue's sender id: what a contact needs to send to us."""

    relay_url: str
    sender_id: bytes

    def __post_init__(self) -> None:
        if len(self.sender_id) != QUEUE_ID_SIZE:
            raise ValueError(f"sender_id must be {QUEUE_ID_SIZE} bytes")
        url = self.relay_url.encode()
        if not url or len(url) > MAX_URL_SIZE or not self.relay_url.startswith(("ws://", "wss://")):
            raise ValueError("relay_url must be a ws:// or wss:// url of at most 255 bytes")

    def to_bytes(self) -> bytes:
        """``u8 version ‖ u8 len ‖ url ‖ sender_id[24]``."""
        url = self.relay_url.encode()
        return Writer().u8(_ADDRESS_VERSION).u8(len(url)).raw(url).raw(self.sender_id).getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> QueueAddress:
        """Parse :meth:`to_bytes` output.

        Raises:
            RemoteProtocolError: the bytes are not a queue address of a known version.
        """
        try:
            r = Reader(bytes(data))
            if r.u8() != _ADDRESS_VERSION:
                raise CodecError("unknown address version")
            url = r.take(r.u8()).decode()
            sender_id = r.take(QUEUE_ID_SIZE)
            r.end()
            return cls(url, sender_id)
        except (CodecError, UnicodeDecodeError, ValueError) as exc:
            raise RemoteProtocolError("malformed queue address") from exc

    def __repr__(self) -> str:
        # The sender id is what links messages on the relay to this contact: not for logs.
        return f"QueueAddress({self.relay_url!r}, <sender id>)"


def encode_link(invitation: bytes) -> str:
    """The ``burner:`` link of an invitation: the prefix and unpadded base64url."""
    return LINK_PREFIX + base64.urlsafe_b64encode(invitation).rstrip(b"=").decode()


def decode_link(link: str) -> bytes:
    """The invitation bytes of a ``burner:`` link (whitespace from copy and paste is ignored).

    Raises:
        UsageError: the text is not a burner invitation link.
    """
    text = "".join(link.split())
    if not text.startswith(LINK_PREFIX):
        raise UsageError(f"not a burner invitation link (it must start with {LINK_PREFIX!r})")
    body = text[len(LINK_PREFIX) :]
    # Strict: only the base64url alphabet, no padding, and the canonical encoding, so one
    # invitation has exactly one link.
    if not _BASE64URL.fullmatch(body):
        raise UsageError("the invitation link is damaged (not base64url)")
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise UsageError("the invitation link is damaged (not base64url)") from exc
    if encode_link(data) != text:
        raise UsageError("the invitation link is damaged (not canonical base64url)")
    return data


def parse_link(link: str) -> bytes | ShortLink:
    """A long link's invitation bytes, or what a short link names (whitespace is ignored).

    Raises:
        UsageError: the text is neither kind of burner link, or a damaged one.
    """
    text = "".join(link.split())
    if text.startswith(SHORT_LINK_PREFIX):
        return ShortLink.from_text(text)
    if text.startswith(LINK_PREFIX):
        return decode_link(text)
    raise UsageError(
        f"not a burner invitation link (it must start with {SHORT_LINK_PREFIX!r} or {LINK_PREFIX!r})"
    )
