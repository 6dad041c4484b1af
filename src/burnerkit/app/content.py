"""What travels inside a session message: the app's content codec (docs/protocol.md §17.3).

The core treats a message's content as opaque bytes; this module gives them meaning.
Seven kinds exist: the acceptor's first message (:class:`Hello`, carrying its own queue
address), a chat message (:class:`Text`, carrying the conversation's disappearing
timer so both sides apply the same one), the two steps of a relay move
(:class:`Move`, the sender's new queue address; :class:`MoveDone`, its confirmation,
sent to that new address), a burner's last word (:class:`BurnNotice`, signed by its
identity for this contact, docs/protocol.md §17.7), the dead-man switch's
:class:`Heartbeat` (§17.8), the one-time key of a duress alert, :class:`DuressKey`
(§17.11), and a border crossing's :class:`Escrow` (§17.12). A Hello and a Text may also carry
the sender's expiry, so that the contact refuses it once it is past (§17.7, expiry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from burnerkit.app.addresses import QueueAddress
from burnerkit.errors import RemoteProtocolError
from burnerkit.protocol.envelope import MAX_CONTENT_SIZE
from burnerkit.wire import CodecError, Reader, Writer

__all__ = [
    "MAX_TEXT_SIZE",
    "MAX_TIMER",
    "MIN_CHECK_IN",
    "MIN_TIMER",
    "BURN_NOTICE_SIGNATURE_SIZE",
    "BurnNotice",
    "Content",
    "DURESS_KEY_SIZE",
    "DuressKey",
    "Escrow",
    "Heartbeat",
    "Hello",
    "Move",
    "MoveDone",
    "Text",
    "decode_content",
]

_TAG_HELLO: Final = 0x01
_TAG_TEXT: Final = 0x02
_TAG_MOVE: Final = 0x03
_TAG_MOVE_DONE: Final = 0x04
_TAG_BURN_NOTICE: Final = 0x05
_FLAG_ERASE: Final = 0x01
#: A Text whose flags have this bit carries the sender's expiry (u64) after its timer.
_FLAG_EXPIRY: Final = 0x02
_EXPIRY_SIZE: Final = 8
#: An Ed25519 signature (§17.7).
BURN_NOTICE_SIGNATURE_SIZE: Final = 64
_TAG_HEARTBEAT: Final = 0x07
_TAG_DURESS_KEY: Final = 0x08
#: A duress alert key (AES-256, §17.11).
DURESS_KEY_SIZE: Final = 32
_TAG_ESCROW: Final = 0x09
_ESCROW_ID_SIZE: Final = 16
_ESCROW_KEY_SIZE: Final = 32
_FLAG_BURN_ON_READ: Final = 0x01
_TEXT_HEADER: Final = 1 + 1 + 4
#: Longest text of one message, in UTF-8 bytes.
MAX_TEXT_SIZE: Final = MAX_CONTENT_SIZE - _TEXT_HEADER
#: Disappearing timers run from 30 seconds to 4 weeks (Signal's range).
MIN_TIMER: Final = 30
MAX_TIMER: Final = 4 * 7 * 24 * 3600
#: The shortest dead-man check-in window (§17.8): a shorter one would burn a burner
#: while its owner is still typing the passphrase.
MIN_CHECK_IN: Final = 60
_U32_MAX: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Hello:
    """The acceptor's first message: where the inviter sends from now on.

    ``expires_at`` (seconds; 0: not said): when the acceptor's burner expires (§17.7).
    """

    reply: QueueAddress
    expires_at: int = 0

    def encode(self) -> bytes:
        """``0x01 ‖ queue address [‖ u64 expires_at]``."""
        tail = self.expires_at.to_bytes(_EXPIRY_SIZE, "big") if self.expires_at else b""
        return bytes([_TAG_HELLO]) + self.reply.to_bytes() + tail


@dataclass(frozen=True, slots=True)
class Text:
    """A chat message and the conversation settings it carries.

    ``timer`` is the disappearing timer in seconds (0: off); ``burn_on_read`` asks the
    recipient to delete the message once shown; ``expires_at`` (seconds; 0: not said) is
    when the sender's burner expires, said once per contact (§17.7), and takes 8 bytes of
    the text's room.
    """

    text: str = field(repr=False)
    timer: int = 0
    burn_on_read: bool = False
    expires_at: int = 0

    def __post_init__(self) -> None:
        if self.timer and not MIN_TIMER <= self.timer <= MAX_TIMER:
            raise ValueError("a disappearing timer runs from 30 seconds to 4 weeks")
        room = MAX_TEXT_SIZE - (_EXPIRY_SIZE if self.expires_at else 0)
        if len(self.text.encode()) > room:
            raise ValueError(f"text must be at most {room} bytes of UTF-8")

    def encode(self) -> bytes:
        """``0x02 ‖ u8 flags ‖ u32 timer [‖ u64 expires_at] ‖ text (UTF-8, the rest)``."""
        flags = (_FLAG_BURN_ON_READ if self.burn_on_read else 0) | (_FLAG_EXPIRY if self.expires_at else 0)
        w = Writer().u8(_TAG_TEXT).u8(flags).u32(self.timer)
        if self.expires_at:
            w.u64(self.expires_at)
        return w.raw(self.text.encode()).getvalue()


@dataclass(frozen=True, slots=True)
class Move:
    """The sender moved its queue for us: send to ``address`` from now on (§17.6, relay moves)."""

    address: QueueAddress

    def encode(self) -> bytes:
        """``0x03 ‖ queue address``."""
        return bytes([_TAG_MOVE]) + self.address.to_bytes()


@dataclass(frozen=True, slots=True)
class MoveDone:
    """We took a :class:`Move`: sent to the new address, it proves that queue works.

    It names nothing: the queue it arrives on says which move it confirms.
    """

    def encode(self) -> bytes:
        """``0x04``."""
        return bytes([_TAG_MOVE_DONE])


@dataclass(frozen=True, slots=True)
class BurnNotice:
    """The sender burned its burner: mark it burned, and ``erase`` our conversation if asked.

    ``signature`` is the sender's identity signature (for this contact) over
    :meth:`signed_body`, made and checked by the session (``Session.sign_burn_notice``):
    a holder of the queue alone cannot make one, and one made for another contact does
    not verify here (docs/protocol.md §17.7).
    """

    burned_at: int
    erase: bool
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.signature) != BURN_NOTICE_SIGNATURE_SIZE:
            raise ValueError(f"a burn notice's signature is {BURN_NOTICE_SIGNATURE_SIZE} bytes")

    @staticmethod
    def body(burned_at: int, erase: bool) -> bytes:
        """``0x05 ‖ u8 flags ‖ u64 burned_at``: what the signature covers."""
        return Writer().u8(_TAG_BURN_NOTICE).u8(_FLAG_ERASE if erase else 0).u64(burned_at).getvalue()

    def signed_body(self) -> bytes:
        """The bytes this notice's signature covers (its encoding less the signature)."""
        return self.body(self.burned_at, self.erase)

    def encode(self) -> bytes:
        """``0x05 ‖ u8 flags ‖ u64 burned_at ‖ signature (64)``."""
        return self.signed_body() + self.signature


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The sender is alive and checks in every ``window`` seconds (the dead-man switch, §17.8).

    Never shown as a message: the receiver only notes when it was sent.
    """

    window: int

    def __post_init__(self) -> None:
        if not MIN_CHECK_IN <= self.window <= _U32_MAX:
            raise ValueError("a check-in window is at least a minute")

    def encode(self) -> bytes:
        """``0x07 ‖ u32 window``."""
        return Writer().u8(_TAG_HEARTBEAT).u32(self.window).getvalue()


@dataclass(frozen=True, slots=True)
class DuressKey:
    """The key a coercion alert from the sender will be sealed under (§17.11); never shown."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != DURESS_KEY_SIZE:
            raise ValueError("a duress alert key is 32 bytes")

    def encode(self) -> bytes:
        """``0x08 ‖ key (32)``."""
        return bytes([_TAG_DURESS_KEY]) + self.key


@dataclass(frozen=True, slots=True)
class Escrow:
    """The sender's vault key, left with us while it crosses a border (§17.12); never shown as a message."""

    escrow_id: bytes
    vault_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.escrow_id) != _ESCROW_ID_SIZE or len(self.vault_key) != _ESCROW_KEY_SIZE:
            raise ValueError("an escrow is a 16-byte id and a 32-byte key")

    def encode(self) -> bytes:
        """``0x09 ‖ escrow_id (16) ‖ vault_key (32)``."""
        return bytes([_TAG_ESCROW]) + self.escrow_id + self.vault_key


Content = Hello | Text | Move | MoveDone | BurnNotice | Heartbeat | DuressKey | Escrow


def decode_content(data: bytes) -> Content:
    """Parse a message's content.

    Raises:
        RemoteProtocolError: the bytes are not content of a known kind; the peer sent them
            inside an authentic message, so this is a peer fault, not tampering.
    """
    try:
        r = Reader(bytes(data))
        tag = r.u8()
        if tag == _TAG_HELLO:
            rest = r.rest()
            # The address's own length: version, url length, url, sender id (§17.1).
            size = 2 + rest[1] + 24 if len(rest) > 1 else len(rest)
            address, tail = rest[:size], rest[size:]
            if tail and len(tail) != _EXPIRY_SIZE:
                raise CodecError("bad hello tail")
            expires_at = int.from_bytes(tail, "big") if tail else 0
            if tail and not expires_at:
                raise CodecError("an expiry of 0 is left out")
            return Hello(QueueAddress.from_bytes(address), expires_at)
        if tag == _TAG_TEXT:
            flags, timer = r.u8(), r.u32()
            if flags & ~(_FLAG_BURN_ON_READ | _FLAG_EXPIRY):
                raise CodecError("unknown text flags")
            expires_at = r.u64() if flags & _FLAG_EXPIRY else 0
            if flags & _FLAG_EXPIRY and not expires_at:
                raise CodecError("an expiry of 0 is left out")
            return Text(r.rest().decode(), timer, bool(flags & _FLAG_BURN_ON_READ), expires_at)
        if tag == _TAG_MOVE:
            return Move(QueueAddress.from_bytes(r.rest()))
        if tag == _TAG_MOVE_DONE:
            r.end()
            return MoveDone()
        if tag == _TAG_BURN_NOTICE:
            flags, burned_at = r.u8(), r.u64()
            if flags & ~_FLAG_ERASE:
                raise CodecError("unknown burn notice flags")
            signature = r.take(BURN_NOTICE_SIGNATURE_SIZE)
            r.end()
            return BurnNotice(burned_at, bool(flags & _FLAG_ERASE), signature)
        if tag == _TAG_HEARTBEAT:
            window = r.u32()
            r.end()
            return Heartbeat(window)
        if tag == _TAG_DURESS_KEY:
            key = r.take(DURESS_KEY_SIZE)
            r.end()
            return DuressKey(key)
        if tag == _TAG_ESCROW:
            escrow_id, vault_key = r.take(_ESCROW_ID_SIZE), r.take(_ESCROW_KEY_SIZE)
            r.end()
            return Escrow(escrow_id, vault_key)
        raise CodecError("unknown content kind")
    except (CodecError, UnicodeDecodeError, ValueError) as exc:
        raise RemoteProtocolError("malformed message content") from exc
