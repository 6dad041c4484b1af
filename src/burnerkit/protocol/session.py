"""A secure session with one contact: docs/protocol.md §7.

Bytes in, events out, bytes out::

    wire = session.send(b"hi", now=now)           # caller decides where the bytes go
    events = session.receive(wire, now=now)       # MessageReceived, GapDetected, ...

A session is born from the handshake (``handshake.accept_invitation`` on the side
that answers an invitation, ``PendingInvitation.complete`` on the side that made
it). Until the acceptor hears back, each of its envelopes repeats the handshake
fields (``ACCEPT``), so the inviter can start from any of them if the first one is
lost, as Signal does with PreKey messages.
"""

from __future__ import annotations

import enum
from typing import Final

from burnerkit.crypto.kdf import LABEL_SIG_BURN_NOTICE
from burnerkit.crypto.rng import Random
from burnerkit.errors import (
    BurnerError,
    DecryptionError,
    InvitationConsumedError,
    RemoteProtocolError,
    SignatureError,
)
from burnerkit.wire import PROTOCOL_VERSION, CodecError, Reader, Writer

from .envelope import (
    ACCEPT_FIELDS_SIZE,
    ENVELOPE_SIZE,
    MAX_CONTENT_SIZE,
    Body,
    Direction,
    EnvelopeType,
    ReceiveLog,
    body_size,
    chain_start,
    envelope_prefix,
)
from .events import Event, MessageReceived
from .identity import Identity, PublicIdentity, safety_code, safety_code_bytes
from .ratchet import DoubleRatchet

__all__ = ["Role", "Session"]

_STATE_VERSION: Final = 1
_MESSAGE_PREFIX: Final = envelope_prefix(EnvelopeType.MESSAGE)
_MESSAGE_BODY_SIZE: Final = body_size(len(_MESSAGE_PREFIX))
#: The accept fields start with the invitation's id (§7.3).
_INVITATION_ID_SIZE: Final = 16


@enum.unique
class Role(enum.IntEnum):
    """Which side of the handshake we were."""

    INVITER = 1
    ACCEPTOR = 2


class Session:
    """One end of an established conversation."""

    __slots__ = (
        "_accept_fields",
        "_accept_pending",
        "_message_ad",
        "_ours",
        "_ratchet",
        "_recv_log",
        "_rng",
        "_send_prev",
        "_send_seq",
        "_theirs",
        "_transcript",
        "role",
    )

    def __init__(
        self,
        *,
        role: Role,
        transcript_hash: bytes,
        ours: Identity,
        theirs: PublicIdentity,
        ratchet: DoubleRatchet,
        accept_fields: bytes,
        rng: Random,
    ) -> None:
        self.role = role
        self._transcript = transcript_hash
        self._message_ad = transcript_hash + _MESSAGE_PREFIX  # the AD of every MESSAGE envelope
        self._ours = ours
        self._theirs = theirs
        self._ratchet = ratchet
        self._accept_fields = accept_fields
        self._accept_pending = role is Role.ACCEPTOR
        self._rng = rng
        out_dir, in_dir = (
            (Direction.ACCEPTOR_TO_INVITER, Direction.INVITER_TO_ACCEPTOR)
            if role is Role.ACCEPTOR
            else (Direction.INVITER_TO_ACCEPTOR, Direction.ACCEPTOR_TO_INVITER)
        )
        self._send_seq = 1
        self._send_prev = chain_start(transcript_hash, out_dir)
        self._recv_log = ReceiveLog(chain_start(transcript_hash, in_dir))

    # -- identity -------------------------------------------------------------------------

    @property
    def their_identity(self) -> PublicIdentity:
        """The peer's per-contact public identity, as authenticated by the handshake."""
        return self._theirs

    @property
    def our_identity(self) -> PublicIdentity:
        """Our per-contact public identity."""
        return self._ours.public

    @property
    def safety_code(self) -> str:
        """Twelve groups of five digits; equal on both sides unless someone is in the middle."""
        return safety_code(self._ours.public, self._theirs)

    @property
    def safety_code_bytes(self) -> bytes:
        """The same code as 33 bytes, for a QR code."""
        return safety_code_bytes(self._ours.public, self._theirs)

    def sign_burn_notice(self, body: bytes) -> bytes:
        """Sign a burn notice's ``body`` with our identity for this contact (docs/protocol.md §17.7).

        The signed bytes are ``"burner/v1/sig/burn-notice" ‖ transcript hash ‖ body``: the
        transcript names this session, so a notice signed for one contact does not verify
        for another, and the label keeps it apart from every other signature.
        """
        return self._ours.signing.sign(LABEL_SIG_BURN_NOTICE + self._transcript + body)

    def burn_notice_signed(self, body: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is the peer's signature of a burn notice's ``body`` in this session."""
        try:
            self._theirs.signing.verify(signature, LABEL_SIG_BURN_NOTICE + self._transcript + body)
        except SignatureError:
            return False
        return True

    @property
    def transcript_hash(self) -> bytes:
        """Hash of the handshake: names this session, binds every message to it."""
        return self._transcript

    @property
    def next_seq(self) -> int:
        """The sequence number :meth:`send` will use next."""
        return self._send_seq

    @property
    def missing(self) -> list[int]:
        """Sequence numbers from the peer that have not arrived yet (the most recent 1,000)."""
        return sorted(self._recv_log.missing)

    def purge_expired(self, *, now: float) -> int:
        """Delete skipped message keys past their age; returns how many went."""
        return self._ratchet.purge_expired(int(now))

    # -- send / receive ----------------------------------------------------------------------

    def send(self, content: bytes, *, now: float) -> bytes:
        """Encrypt ``content`` into one :data:`ENVELOPE_SIZE`-byte envelope.

        Args:
            content: at most :data:`MAX_CONTENT_SIZE` bytes; opaque to the core.
            now: current time, seconds since the epoch; sent along as ``sent_at``.

        Raises:
            ValueError: if ``content`` is too long.
            LocalProtocolError: if the sending chain is exhausted.
        """
        if len(content) > MAX_CONTENT_SIZE:
            raise ValueError(f"content must be at most {MAX_CONTENT_SIZE} bytes")
        if self._accept_pending:
            prefix = envelope_prefix(EnvelopeType.ACCEPT, self._accept_fields)
            size, ad = body_size(len(prefix)), self._transcript + prefix
        else:
            prefix, size, ad = _MESSAGE_PREFIX, _MESSAGE_BODY_SIZE, self._message_ad
        body, digest = Body.encode(self._send_seq, self._send_prev, int(now * 1000), content, size)
        envelope = self._ratchet.encrypt(body, ad, prefix)
        self._send_seq += 1
        self._send_prev = digest
        return envelope

    def receive(self, envelope: bytes, *, now: float) -> list[Event]:
        """Decrypt one envelope; the session changes only if it was accepted.

        Returns:
            Anomaly events (gap, reorder, fork) first, then ``MessageReceived``.

        Raises:
            RemoteProtocolError: the envelope has the wrong size, version or type.
            DecryptionError: it does not authenticate (no reason given, by design).
            DuplicateMessageError: it was already received (a replay).
            ForkDetectedError: an authentic message conflicts with one already received.
            TooManySkippedMessagesError: its counter jumps beyond the limit.
            InvitationConsumedError: (inviter) an ACCEPT envelope of another acceptance of
                the invitation this session came from.
        """
        if len(envelope) == ENVELOPE_SIZE and envelope[:2] == _MESSAGE_PREFIX:
            prefix_len = 2  # the common case, checked inline
        else:
            prefix_len = _check_outer(envelope)
        # Only the inviter takes ACCEPT envelopes, and only those of our own handshake.
        if prefix_len != len(_MESSAGE_PREFIX) and (
            self.role is not Role.INVITER or envelope[2:prefix_len] != self._accept_fields
        ):
            if (
                self.role is Role.INVITER
                and envelope[2 : 2 + _INVITATION_ID_SIZE] == self._accept_fields[:_INVITATION_ID_SIZE]
            ):
                # Another acceptance of the invitation this session came from (§5.10). Not
                # authenticated (its pending invitation is gone): it names the anomaly, and
                # like any refused envelope it changes nothing.
                raise InvitationConsumedError("the invitation of this session was accepted again")
            raise DecryptionError
        body = self._ratchet.decrypt(
            memoryview(envelope)[prefix_len:],
            self._message_ad if prefix_len == 2 else self._transcript + envelope[:prefix_len],
            now=int(now),
            parse=Body.decode,
        )
        self._accept_pending = False
        events = self._recv_log.record(body)
        events.append(MessageReceived(body.seq, body.sent_at, body.content))
        return events

    # -- serialisation ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialise the whole session (docs/protocol.md §8.4). Holds secrets: seal it."""
        w = Writer().u8(_STATE_VERSION).u8(self.role).raw(self._transcript)
        w.raw(self._ours.to_bytes()).raw(self._theirs.to_bytes())
        w.var16(self._accept_fields).u8(int(self._accept_pending))
        w.u64(self._send_seq).raw(self._send_prev)
        self._recv_log.write(w)
        w.var32(self._ratchet.to_bytes())
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, rng: Random) -> Session:
        """Restore a session written by :meth:`to_bytes`.

        Raises:
            ValueError: if the bytes are not a valid session state of a supported version.
        """
        try:
            r = Reader(data)
            if r.u8() != _STATE_VERSION:
                raise CodecError("unsupported session state version")
            role = Role(r.u8())
            transcript = r.take(32)
            ours = Identity.from_bytes(r.take(64))
            theirs = PublicIdentity.from_bytes(r.take(64))
            accept_fields = r.var16()
            pending = r.u8()
            send_seq, send_prev = r.u64(), r.take(32)
            log = ReceiveLog.read(r)
            ratchet = DoubleRatchet.from_bytes(r.var32(), rng=rng)
            r.end()
            if pending not in (0, 1) or (pending and role is not Role.ACCEPTOR):
                raise CodecError("bad pending flag")
        except (CodecError, ValueError, BurnerError) as exc:
            raise ValueError("not a valid session state") from exc
        session = cls(
            role=role,
            transcript_hash=transcript,
            ours=ours,
            theirs=theirs,
            ratchet=ratchet,
            accept_fields=accept_fields,
            rng=rng,
        )
        session._accept_pending = bool(pending)
        session._send_seq, session._send_prev, session._recv_log = send_seq, send_prev, log
        return session

    def __repr__(self) -> str:
        return f"Session(role={self.role.name}, next_seq={self._send_seq}, ratchet={self._ratchet!r})"


def _check_outer(envelope: bytes) -> int:
    """Validate size, version and type; return the prefix length.

    Raises:
        RemoteProtocolError: on any mismatch.
    """
    if len(envelope) != ENVELOPE_SIZE:
        raise RemoteProtocolError(f"envelope must be {ENVELOPE_SIZE} bytes")
    if envelope[0] != PROTOCOL_VERSION:
        raise RemoteProtocolError("unsupported protocol version")
    if envelope[1] == EnvelopeType.MESSAGE:
        return len(_MESSAGE_PREFIX)
    if envelope[1] == EnvelopeType.ACCEPT:
        return 2 + ACCEPT_FIELDS_SIZE
    raise RemoteProtocolError("not a message envelope")
