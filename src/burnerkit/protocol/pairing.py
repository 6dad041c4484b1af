"""Pairing by short code, sans-IO: the code, the messages and the machine (docs/protocol.md §16).

Two people who can talk (in person, by voice) exchange a code like ``7-aardvark-adroitness``:
a nameplate the relay allocated, then two words (three on request) of the PGP word list
(:mod:`burnerkit.protocol.wordlist`). Each side's :class:`Pairing` runs symmetric SPAKE2
with the whole code as the password, confirms the key, then sends one sealed payload
(side A's invitation, side B's answer) and opens the other's. The messages travel through
a short-lived relay mailbox named by the nameplate; the relay sees the nameplate and
these messages, never the words, the key or a payload.

Theory of operation
-------------------
Side A is the one that allocated the nameplate, side B the one that joined it; the code
itself is the same on both. Each side goes through the same states (drawn in
docs/state-machines/pairing.dot), every transition triggered by one message of the other
side, and every transition but the last answers with exactly one message of ours::

    NEW --start()--> AWAITING_PAKE          sends our PAKE message
    AWAITING_PAKE    --their PAKE-->    AWAITING_CONFIRM   sends our confirmation
    AWAITING_CONFIRM --their CONFIRM--> AWAITING_PAYLOAD   sends our sealed payload
    AWAITING_PAYLOAD --their PAYLOAD--> DONE               (peer_payload is readable)
    AWAITING_CONFIRM --a CONFIRM that does not verify--> FAILED (PairingCodeError)

Rules, each a defence a test reproduces:

- **Authenticate first, then change state.** A message that does not parse, that comes
  out of order, that is our own sent back (reflection), that repeats one already
  processed (replay) or whose payload does not open raises a typed error and leaves the
  machine exactly as it was: the caller drops it and keeps waiting.
- **One wrong code ends it.** A confirmation that does not verify means the two passwords
  differed (or a guesser raced in): the machine moves to FAILED, raises
  :class:`~burnerkit.errors.PairingCodeError`, and the caller destroys the mailbox, so a
  guesser gets exactly one try per exchange.
- **Our confirmation is a guess's verdict.** Whoever ran the other end of the exchange
  learns offline from our confirmation whether its password was right, and need not
  answer; :attr:`Pairing.confirmation_sent` tells the caller that a pairing cut from then
  on may be a guesser hiding a wrong guess, not a network fault (§16.6).
- **No payload before confirmation.** Our payload goes out only after the other side has
  proved it derived the same key.
- **Everything is bound.** SPAKE2's identity is ``LABEL_PAIRING_PAKE ‖ nameplate``; the
  confirmation MACs cover the transcript (both PAKE messages in side order and the
  nameplate) under a key per side; each payload is sealed under a key per side with the
  header and nameplate as associated data.

This module does no I/O, reads no clock and draws randomness only from the injected
:class:`~burnerkit.crypto.rng.Random`.
"""

from __future__ import annotations

import enum
import hmac
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, assert_never

from burnerkit.crypto import aead, pake
from burnerkit.crypto.kdf import (
    LABEL_PAIRING_CONFIRM,
    LABEL_PAIRING_PAKE,
    LABEL_PAIRING_PAYLOAD,
    hkdf,
    hmac_sha256,
    sha256,
)
from burnerkit.crypto.rng import Random
from burnerkit.errors import (
    DecryptionError,
    DuplicateMessageError,
    InvalidKeyError,
    LocalProtocolError,
    PairingCodeError,
    RemoteProtocolError,
)
from burnerkit.wire import CodecError, Reader, Writer

from .wordlist import EVEN_WORDS, ODD_WORDS

__all__ = [
    "CODE_WORDS",
    "CODE_WORD_COUNTS",
    "CONFIRM_SIZE",
    "MAX_NAMEPLATE",
    "MAX_PAYLOAD_SIZE",
    "PAIRING_VERSION",
    "PAYLOAD_PLAINTEXT_SIZE",
    "MessageKind",
    "Pairing",
    "PairingMessage",
    "PairingState",
    "ShortCode",
    "Side",
    "decode_message",
    "encode_message",
]

#: Words after the nameplate by default: 2 words of 8 bits, 16 bits a guesser must hit.
CODE_WORDS: Final = 2
#: The word counts a code may have: the default, or 3 (24 bits) when asked for.
CODE_WORD_COUNTS: Final = (2, 3)
#: Nameplates are 1..65,535 (the relay allocates small ones first).
MAX_NAMEPLATE: Final = 65_535
#: Largest payload either side may send (an invitation is about 1.5 KB).
MAX_PAYLOAD_SIZE: Final = 4_096
#: A payload is padded to this before sealing, so its size says nothing: u16 length ‖ payload ‖ zeros.
PAYLOAD_PLAINTEXT_SIZE: Final = 2 + MAX_PAYLOAD_SIZE
#: Bytes of a key confirmation (HMAC-SHA256).
CONFIRM_SIZE: Final = 32
#: The first byte of every pairing message.
PAIRING_VERSION: Final = 1

_KEY_SIZE: Final = 32
_SEALED_PAYLOAD_SIZE: Final = aead.NONCE_SIZE + PAYLOAD_PLAINTEXT_SIZE + aead.TAG_SIZE
_SEPARATORS: Final = re.compile(r"[\s\-]+")
_NAMEPLATE_TEXT: Final = re.compile(r"[0-9]{1,5}")
_EVEN_INDEX: Final = MappingProxyType({word: i for i, word in enumerate(EVEN_WORDS)})
_ODD_INDEX: Final = MappingProxyType({word: i for i, word in enumerate(ODD_WORDS)})
_ZEROS: Final = bytes(PAYLOAD_PLAINTEXT_SIZE)


@enum.unique
class Side(enum.Enum):
    """Which end of the mailbox we are; only keys and associated data tell them apart."""

    #: allocated the nameplate and showed the code (``offer``)
    A = b"A"
    #: joined the nameplate with the code it was told (``join``)
    B = b"B"

    @property
    def other(self) -> Side:
        """The other side."""
        return Side.B if self is Side.A else Side.A


@enum.unique
class MessageKind(enum.IntEnum):
    """What a pairing message carries (§16.4)."""

    #: a SPAKE2 message, 33 bytes
    PAKE = 1
    #: the key confirmation, 32 bytes
    CONFIRM = 2
    #: nonce ‖ AES-256-GCM of the padded payload
    PAYLOAD = 3


@enum.unique
class PairingState(enum.Enum):
    """Where a :class:`Pairing` is (docs/state-machines/pairing.dot)."""

    #: constructed, nothing sent
    NEW = enum.auto()
    #: our PAKE message is out; waiting for theirs
    AWAITING_PAKE = enum.auto()
    #: key derived, our confirmation is out; waiting for theirs
    AWAITING_CONFIRM = enum.auto()
    #: confirmed, our payload is out; waiting for theirs
    AWAITING_PAYLOAD = enum.auto()
    #: both payloads exchanged
    DONE = enum.auto()
    #: the confirmation did not verify: the codes differed. Terminal.
    FAILED = enum.auto()


#: The transitions a message of the other side triggers; anything else is refused.
_TRANSITIONS: Final = MappingProxyType(
    {
        (PairingState.AWAITING_PAKE, MessageKind.PAKE): PairingState.AWAITING_CONFIRM,
        (PairingState.AWAITING_CONFIRM, MessageKind.CONFIRM): PairingState.AWAITING_PAYLOAD,
        (PairingState.AWAITING_PAYLOAD, MessageKind.PAYLOAD): PairingState.DONE,
    }
)

_DATA_SIZES: Final = MappingProxyType(
    {
        MessageKind.PAKE: pake.PAKE_MESSAGE_SIZE,
        MessageKind.CONFIRM: CONFIRM_SIZE,
        MessageKind.PAYLOAD: _SEALED_PAYLOAD_SIZE,
    }
)


# -- the code ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class ShortCode:
    """A pairing code: ``<nameplate>-<even word>-<odd word>[-<even word>]``.

    Secret until it is used: its repr shows the nameplate only (the relay knows that
    much). :attr:`text` is the code to show or say.

    Raises:
        ValueError: at construction, for a nameplate out of range or words not of the list.
    """

    nameplate: int
    words: tuple[str, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.nameplate <= MAX_NAMEPLATE:
            raise ValueError(f"nameplate must be between 1 and {MAX_NAMEPLATE}")
        if len(self.words) not in CODE_WORD_COUNTS:
            raise ValueError("a code has 2 or 3 words")
        for position, word in enumerate(self.words):
            if word not in (_EVEN_INDEX if position % 2 == 0 else _ODD_INDEX):
                raise ValueError(f"word {position + 1} of the code is not in its word list")

    @classmethod
    def generate(cls, nameplate: int, rng: Random, *, words: int = CODE_WORDS) -> ShortCode:
        """A fresh code for ``nameplate``: ``words`` words, each one uniformly random byte.

        Raises:
            ValueError: for a nameplate out of range, or ``words`` not 2 or 3.
        """
        if words not in CODE_WORD_COUNTS:
            raise ValueError("a code has 2 or 3 words")
        draws = rng.random_bytes(words)
        chosen = tuple((EVEN_WORDS if i % 2 == 0 else ODD_WORDS)[b] for i, b in enumerate(draws))
        return cls(nameplate, chosen)

    @classmethod
    def parse(cls, text: str) -> ShortCode:
        """Read a code as a person typed it.

        Case does not matter; hyphens and spaces separate equally, and repeated or
        surrounding separators are ignored (``" 7 Aardvark--adroitness "`` is
        ``7-aardvark-adroitness``). Two or three words parse: the joining side need not
        know which length the offering side chose. The messages never repeat a word of the
        input.

        Raises:
            ValueError: with a message fit for the user, if it is not a code.
        """
        parts = [part for part in _SEPARATORS.split(text.strip().lower()) if part]
        if len(parts) - 1 not in CODE_WORD_COUNTS or not _NAMEPLATE_TEXT.fullmatch(parts[0]):
            raise ValueError("a code is a number and two or three words, like 7-aardvark-adroitness")
        nameplate = int(parts[0])
        if not 1 <= nameplate <= MAX_NAMEPLATE:
            raise ValueError(f"the number of a code is between 1 and {MAX_NAMEPLATE}")
        for position, word in enumerate(parts[1:]):
            ours, other = (_EVEN_INDEX, _ODD_INDEX) if position % 2 == 0 else (_ODD_INDEX, _EVEN_INDEX)
            if word not in ours:
                if word in other:
                    raise ValueError(f"word {position + 1} of the code is out of place (were words swapped?)")
                raise ValueError(f"word {position + 1} of the code is not a code word (check its spelling)")
        return cls(nameplate, tuple(parts[1:]))

    @property
    def text(self) -> str:
        """The normalised code, ``7-aardvark-adroitness``: what to show and say."""
        return "-".join((str(self.nameplate), *self.words))

    @property
    def password(self) -> bytes:
        """The SPAKE2 password: the normalised code in ASCII."""
        return self.text.encode("ascii")

    def __repr__(self) -> str:
        return f"ShortCode(nameplate={self.nameplate}, words=<secret>)"


def _same_but_side(sent: bytes, body: bytes) -> bool:
    """Whether ``body`` is ``sent`` with at most its side byte changed (a reflection)."""
    return len(sent) == len(body) and hmac.compare_digest(sent[:2] + sent[3:], body[:2] + body[3:])


def _nameplate_bytes(nameplate: int) -> bytes:
    return nameplate.to_bytes(2, "big")


# -- messages -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairingMessage:
    """One parsed mailbox body: ``version ‖ kind ‖ side ‖ data``."""

    kind: MessageKind
    side: Side  #: the side that sent it (claimed; keys and AD check it)
    data: bytes = field(repr=False)


def encode_message(kind: MessageKind, side: Side, data: bytes) -> bytes:
    """The mailbox body of one pairing message.

    Raises:
        ValueError: if ``data`` has the wrong size for ``kind``.
    """
    if len(data) != _DATA_SIZES[kind]:
        raise ValueError(f"{kind.name} data must be {_DATA_SIZES[kind]} bytes")
    return Writer().u8(PAIRING_VERSION).u8(kind).raw(side.value).raw(data).getvalue()


def decode_message(body: bytes) -> PairingMessage:
    """Parse a mailbox body.

    Raises:
        RemoteProtocolError: if it is not a pairing message of this version.
    """
    try:
        r = Reader(body)
        if r.u8() != PAIRING_VERSION:
            raise CodecError("unsupported version")
        kind = MessageKind(r.u8())
        side = Side(r.take(1))
        data = r.take(_DATA_SIZES[kind])
        r.end()
    except (CodecError, ValueError) as exc:
        raise RemoteProtocolError("malformed pairing message") from exc
    return PairingMessage(kind, side, data)


# -- the machine ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class _Keys:
    """Everything derived from the SPAKE2 key (§16.5); replaced, never mutated."""

    transcript: bytes
    our_confirm: bytes
    their_confirm: bytes
    our_payload_key: bytes
    their_payload_key: bytes


class Pairing:
    """One side of a pairing by short code (§16.5); bytes in, bytes out.

    Usage: send :meth:`start`'s message, then hand every message of the other side to
    :meth:`receive` and send what it returns, until :attr:`state` is ``DONE``; then read
    :attr:`peer_payload`. Errors other than :class:`PairingCodeError` leave the machine
    unchanged: drop that message and keep going.

    Args:
        code: the short code (the same on both sides).
        side: ``Side.A`` if we allocated the nameplate, ``Side.B`` if we joined it.
        payload: what we give the other side once the code is confirmed.
        rng: randomness for the SPAKE2 scalar and the payload nonce.

    Raises:
        ValueError: if ``payload`` is over :data:`MAX_PAYLOAD_SIZE` bytes.
    """

    def __init__(self, code: ShortCode, side: Side, payload: bytes, *, rng: Random) -> None:
        if len(payload) > MAX_PAYLOAD_SIZE:
            raise ValueError(f"pairing payload must be at most {MAX_PAYLOAD_SIZE} bytes")
        self._code = code
        self._side = side
        self._payload = bytes(payload)
        self._rng = rng
        self._state = PairingState.NEW
        self._pake: pake.PakeState | None = None
        self._our_pake = b""
        #: every message we sent, to recognise one the relay bounces back
        self._sent: tuple[bytes, ...] = ()
        self._keys: _Keys | None = None
        #: the other side's messages we acted on, to tell a replay from a forgery
        self._processed: tuple[bytes, ...] = ()
        self._peer_payload: bytes | None = None

    @property
    def state(self) -> PairingState:
        """Where the machine is."""
        return self._state

    @property
    def side(self) -> Side:
        """Our side."""
        return self._side

    @property
    def confirmation_sent(self) -> bool:
        """Whether our key confirmation has been handed out (and the pairing is not over).

        From then on the other end knows whether its password was right, whoever it is:
        if the pairing stops here, report a possible guessing attack, not a timeout.
        """
        return self._state in (PairingState.AWAITING_CONFIRM, PairingState.AWAITING_PAYLOAD)

    @property
    def nameplate(self) -> int:
        """The code's nameplate (public: the relay knows it)."""
        return self._code.nameplate

    @property
    def peer_payload(self) -> bytes:
        """The other side's payload.

        Raises:
            LocalProtocolError: unless the state is ``DONE``.
        """
        if self._state is not PairingState.DONE or self._peer_payload is None:
            raise LocalProtocolError("pairing is not done")
        return self._peer_payload

    def start(self) -> bytes:
        """Our SPAKE2 message, the first thing we send.

        Raises:
            LocalProtocolError: if called twice.
        """
        if self._state is not PairingState.NEW:
            raise LocalProtocolError("pairing already started")
        identity = LABEL_PAIRING_PAKE + _nameplate_bytes(self._code.nameplate)
        state = pake.start(self._code.password, identity, self._rng)
        self._pake = state
        self._our_pake = encode_message(MessageKind.PAKE, self._side, state.message)
        self._sent = (self._our_pake,)
        self._state = PairingState.AWAITING_PAKE
        return self._our_pake

    def receive(self, body: bytes) -> bytes | None:
        """Process one message of the other side; returns our answer to send, if any.

        Raises:
            PairingCodeError: their confirmation does not verify: the codes differ (or a
                guesser answered). The machine is FAILED; destroy the mailbox.
            DuplicateMessageError: a message we already processed, again (a replay).
            RemoteProtocolError: malformed, our own message reflected, or not expected
                in this state.
            DecryptionError: their payload does not open (tampered).
            LocalProtocolError: the machine is not started, or is FAILED.
        """
        state = self._state
        if state in (PairingState.NEW, PairingState.FAILED):
            raise LocalProtocolError(f"pairing cannot receive in state {state.name}")
        # Replays first: an exact copy of something we acted on is harmless and says so.
        for seen in self._processed:
            if hmac.compare_digest(seen, body):
                raise DuplicateMessageError("pairing message already processed")
        if any(_same_but_side(sent, body) for sent in self._sent):
            raise RemoteProtocolError("our own pairing message was sent back")
        message = decode_message(body)
        if message.side is self._side:
            raise RemoteProtocolError("pairing message claims to come from our side")
        following = _TRANSITIONS.get((state, message.kind))
        if following is None:
            raise RemoteProtocolError(f"unexpected {message.kind.name} message in state {state.name}")
        reply: bytes | None = None
        match message.kind:
            case MessageKind.PAKE:
                reply = self._on_pake(body, message.data)
            case MessageKind.CONFIRM:
                reply = self._on_confirm(message.data)
            case MessageKind.PAYLOAD:
                self._on_payload(body[:3], message.data)
            case _:  # pragma: no cover
                assert_never(message.kind)
        # Only here, after every check passed, does anything change.
        self._processed = (*self._processed, bytes(body))
        if reply is not None:
            self._sent = (*self._sent, reply)
        self._state = following
        return reply

    def _on_pake(self, body: bytes, data: bytes) -> bytes:
        assert self._pake is not None
        try:
            key = self._pake.finish(data)
        except InvalidKeyError as exc:
            raise RemoteProtocolError("invalid PAKE message") from exc
        first, second = (self._our_pake, body) if self._side is Side.A else (body, self._our_pake)
        transcript = sha256(LABEL_PAIRING_PAKE, _nameplate_bytes(self._code.nameplate), first, second)

        def derive(label: bytes, side: Side) -> bytes:
            return hkdf(key, salt=transcript, info=label + side.value, length=_KEY_SIZE)

        ours, theirs = self._side, self._side.other
        self._keys = _Keys(
            transcript=transcript,
            our_confirm=hmac_sha256(derive(LABEL_PAIRING_CONFIRM, ours), transcript),
            their_confirm=hmac_sha256(derive(LABEL_PAIRING_CONFIRM, theirs), transcript),
            our_payload_key=derive(LABEL_PAIRING_PAYLOAD, ours),
            their_payload_key=derive(LABEL_PAIRING_PAYLOAD, theirs),
        )
        # The scalar has done its job; keeping it would only help someone reading memory.
        self._pake = None
        return encode_message(MessageKind.CONFIRM, self._side, self._keys.our_confirm)

    def _on_confirm(self, data: bytes) -> bytes:
        keys = self._keys
        assert keys is not None
        if not hmac.compare_digest(data, keys.their_confirm):
            self._state = PairingState.FAILED
            self._keys = None
            raise PairingCodeError("the short code did not match on both sides; it is destroyed")
        padded = (len(self._payload).to_bytes(2, "big") + self._payload).ljust(PAYLOAD_PLAINTEXT_SIZE, b"\0")
        head = Writer().u8(PAIRING_VERSION).u8(MessageKind.PAYLOAD).raw(self._side.value).getvalue()
        nonce = self._rng.random_bytes(aead.NONCE_SIZE)
        sealed = aead.seal(keys.our_payload_key, nonce, padded, self._payload_ad(head))
        return encode_message(MessageKind.PAYLOAD, self._side, nonce + sealed)

    def _on_payload(self, head: bytes, data: bytes) -> None:
        keys = self._keys
        assert keys is not None
        plain = aead.open_(
            keys.their_payload_key, data[: aead.NONCE_SIZE], data[aead.NONCE_SIZE :], self._payload_ad(head)
        )
        length = int.from_bytes(plain[:2], "big")
        if length > MAX_PAYLOAD_SIZE or plain[2 + length :] != _ZEROS[: len(plain) - 2 - length]:
            raise DecryptionError
        self._peer_payload = plain[2 : 2 + length]

    def _payload_ad(self, head: bytes) -> bytes:
        return LABEL_PAIRING_PAYLOAD + head + _nameplate_bytes(self._code.nameplate)

    def __repr__(self) -> str:
        return f"Pairing(side={self._side.name}, state={self._state.name})"
