"""The PQXDH-style handshake: docs/protocol.md §5.

Theory of operation
-------------------
The *inviter* makes a fresh per-contact identity and a signed :class:`Invitation`
(X25519 identity key, X25519 prekey, ML-KEM-768 prekey, an opaque reply address,
an expiry), and keeps the private half as a :class:`PendingInvitation`. The
invitation travels out of band (a link, a QR code, a short-code PAKE), which is
what authenticates it; its signature binds the keys to the identity so that no part
can be swapped (the PQ downgrade the brief names).

The *acceptor* checks the invitation, makes its own per-contact identity and an
ephemeral key, and computes, as PQXDH does::

    DH1 = DH(IK_acceptor, SPK_inviter)     DH2 = DH(EK_acceptor, IK_inviter)
    DH3 = DH(EK_acceptor, SPK_inviter)     (SS, CT) = ML-KEM.Encaps(PQSPK_inviter)
    T   = SHA-256(label ‖ u32(len(invitation)) ‖ invitation ‖ 0x01 0x11 ‖ accept fields w/o signature)
    SK ‖ HK_a ‖ NHK_i = HKDF(DH1 ‖ DH2 ‖ DH3 ‖ SS, salt=0^32, info=label ‖ T)

``T`` covers the ML-KEM public key (in the invitation) and ciphertext (in the accept
fields), so both are bound into the key. The acceptor signs ``T`` with its
identity key, which authenticates it explicitly and binds its X25519 identity to
the signing key the safety code shows. Its first envelope carries the accept
fields and the first ratchet message.

State of a pending invitation (one table, both flavours)::

    OPEN     --complete (one-time)-->  CONSUMED   prekeys erased; any later acceptance refused
    OPEN     --complete (reusable)-->  OPEN       T remembered; the same acceptance refused
    OPEN     --now > expires_at---->   (refused, state unchanged)

Every check (parse, expiry, signature, point validity, replay) runs before any
state is written; a failed acceptance leaves the pending invitation as it was.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from burnerkit.crypto.hybrid import combine
from burnerkit.crypto.kdf import (
    LABEL_HANDSHAKE,
    LABEL_SIG_ACCEPT,
    LABEL_SIG_INVITATION,
    LABEL_TRANSCRIPT,
    sha256,
)
from burnerkit.crypto.keys import (
    KEM_CIPHERTEXT_SIZE,
    KEM_PUBLIC_KEY_SIZE,
    KemPrivateKey,
    KemPublicKey,
    VerifyKey,
    X25519PrivateKey,
    X25519PublicKey,
)
from burnerkit.crypto.rng import Random
from burnerkit.errors import (
    BurnerError,
    HandshakeError,
    InvalidKeyError,
    InvitationConsumedError,
    RemoteProtocolError,
    SignatureError,
)
from burnerkit.wire import PROTOCOL_VERSION, CodecError, Reader, Writer

from .envelope import ACCEPT_FIELDS_SIZE, ENVELOPE_SIZE, EnvelopeType, envelope_prefix
from .events import Event
from .identity import Identity, PublicIdentity
from .ratchet import DoubleRatchet
from .session import Role, Session

__all__ = [
    "INVITATION_ID_SIZE",
    "MAX_REPLY_ADDRESS_SIZE",
    "MAX_REUSABLE_ACCEPTANCES",
    "Invitation",
    "InvitationState",
    "PendingInvitation",
    "accept_invitation",
    "create_invitation",
]

INVITATION_ID_SIZE: Final = 16
#: Longest opaque reply address an invitation may carry.
MAX_REPLY_ADDRESS_SIZE: Final = 1024
#: How many acceptances a reusable invitation remembers (to refuse exact replays).
MAX_REUSABLE_ACCEPTANCES: Final = 1000
_FLAG_ONE_TIME: Final = 0x01
_STATE_VERSION: Final = 1
_SECRET_SIZE: Final = 96  # SK ‖ HK_acceptor ‖ NHK_inviter
_SIGNED_FIELDS_SIZE: Final = ACCEPT_FIELDS_SIZE - 64


@dataclass(frozen=True, slots=True)
class Invitation:
    """A parsed, signature-checked invitation."""

    invitation_id: bytes
    one_time: bool
    expires_at: int  #: seconds since the epoch
    identity: PublicIdentity
    prekey: X25519PublicKey
    kem_prekey: KemPublicKey
    reply_address: bytes
    raw: bytes  #: the exact bytes, which the transcript hashes

    @classmethod
    def from_bytes(cls, data: bytes) -> Invitation:
        """Parse and verify an invitation (docs/protocol.md §5.2).

        Raises:
            RemoteProtocolError: if the bytes do not follow the layout.
            HandshakeError: if a key is invalid or the signature does not verify.
        """
        data = bytes(data)
        try:
            r = Reader(data)
            if r.u8() != PROTOCOL_VERSION or r.u8() != EnvelopeType.INVITATION:
                raise CodecError("not a v1 invitation")
            flags = r.u8()
            if flags & ~_FLAG_ONE_TIME:
                raise CodecError("unknown invitation flags")
            invitation_id, expires_at = r.take(INVITATION_ID_SIZE), r.u64()
            signing, dh, prekey = r.take(32), r.take(32), r.take(32)
            kem = r.take(KEM_PUBLIC_KEY_SIZE)
            reply = r.var16()
            signature = r.take(64)
            r.end()
        except CodecError as exc:
            raise RemoteProtocolError("malformed invitation") from exc
        if len(reply) > MAX_REPLY_ADDRESS_SIZE:
            raise RemoteProtocolError("invitation reply address too long")
        try:
            identity = PublicIdentity(VerifyKey.from_bytes(signing), X25519PublicKey.from_bytes(dh))
            identity.signing.verify(signature, LABEL_SIG_INVITATION + data[:-64])
            return cls(
                invitation_id=invitation_id,
                one_time=bool(flags & _FLAG_ONE_TIME),
                expires_at=expires_at,
                identity=identity,
                prekey=X25519PublicKey.from_bytes(prekey),
                kem_prekey=KemPublicKey.from_bytes(kem),
                reply_address=reply,
                raw=data,
            )
        except (InvalidKeyError, SignatureError) as exc:
            raise HandshakeError("invitation does not verify") from exc

    def __repr__(self) -> str:
        return f"Invitation(id={self.invitation_id.hex()[:8]}..., one_time={self.one_time})"


class InvitationState(enum.Enum):
    """Where a :class:`PendingInvitation` stands."""

    #: Accepting (a reusable invitation stays here).
    OPEN = "open"
    #: A one-time invitation that has been used; its prekeys are gone.
    CONSUMED = "consumed"


@dataclass(frozen=True, slots=True)
class _AcceptFields:
    invitation_id: bytes
    identity: PublicIdentity
    ephemeral: X25519PublicKey
    kem_ciphertext: bytes
    signature: bytes

    @classmethod
    def parse(cls, fields: bytes) -> _AcceptFields:
        r = Reader(fields)
        invitation_id = r.take(INVITATION_ID_SIZE)
        signing, dh, ephemeral = r.take(32), r.take(32), r.take(32)
        kem_ct, signature = r.take(KEM_CIPHERTEXT_SIZE), r.take(64)
        r.end()
        try:
            identity = PublicIdentity(VerifyKey.from_bytes(signing), X25519PublicKey.from_bytes(dh))
        except InvalidKeyError as exc:
            raise HandshakeError("acceptor identity is invalid") from exc
        return cls(invitation_id, identity, X25519PublicKey.from_bytes(ephemeral), kem_ct, signature)


def _transcript(invitation_raw: bytes, signed_fields: bytes) -> bytes:
    prefix = envelope_prefix(EnvelopeType.ACCEPT)
    return sha256(
        LABEL_TRANSCRIPT, len(invitation_raw).to_bytes(4, "big"), invitation_raw, prefix, signed_fields
    )


def _derive(
    dh1: bytes, dh2: bytes, dh3: bytes, kem_secret: bytes, transcript: bytes
) -> tuple[bytes, bytes, bytes]:
    out = combine(
        bytes(32), dh1 + dh2 + dh3, kem_secret, info=LABEL_HANDSHAKE + transcript, length=_SECRET_SIZE
    )
    return out[:32], out[32:64], out[64:]


def create_invitation(
    *, rng: Random, now: float, lifetime: float, reply_address: bytes, one_time: bool = True
) -> tuple[PendingInvitation, bytes]:
    """Make a fresh per-contact identity and a signed invitation.

    Args:
        rng: randomness for keys and the invitation id.
        now: current time, seconds since the epoch.
        lifetime: seconds until the invitation expires.
        reply_address: opaque bytes telling the acceptor where to send (a relay queue).
        one_time: refuse a second acceptance (the default).

    Returns:
        The secret half to keep and the invitation bytes to hand over.

    Raises:
        ValueError: if ``reply_address`` is too long or ``lifetime`` is not positive.
    """
    if len(reply_address) > MAX_REPLY_ADDRESS_SIZE:
        raise ValueError(f"reply address must be at most {MAX_REPLY_ADDRESS_SIZE} bytes")
    if lifetime <= 0:
        raise ValueError("lifetime must be positive")
    identity = Identity.generate(rng)
    prekey = X25519PrivateKey.generate(rng)
    kem_prekey = KemPrivateKey.generate(rng)
    invitation_id, expires_at = rng.random_bytes(INVITATION_ID_SIZE), int(now + lifetime)
    w = Writer().u8(PROTOCOL_VERSION).u8(EnvelopeType.INVITATION).u8(_FLAG_ONE_TIME if one_time else 0)
    w.raw(invitation_id).u64(expires_at)
    w.raw(identity.public.to_bytes()).raw(prekey.public_key.raw).raw(kem_prekey.public_key.raw)
    w.var16(reply_address)
    unsigned = w.getvalue()
    raw = unsigned + identity.signing.sign(LABEL_SIG_INVITATION + unsigned)
    invitation = Invitation(
        invitation_id=invitation_id,
        one_time=one_time,
        expires_at=expires_at,
        identity=identity.public,
        prekey=prekey.public_key,
        kem_prekey=kem_prekey.public_key,
        reply_address=bytes(reply_address),
        raw=raw,
    )
    return PendingInvitation(invitation, identity, prekey, kem_prekey, rng), raw


def accept_invitation(
    invitation_bytes: bytes, *, content: bytes, rng: Random, now: float
) -> tuple[Session, bytes]:
    """Answer an invitation: returns our session and its first envelope.

    Args:
        invitation_bytes: what the inviter handed over.
        content: the first message (for example our own reply address).
        rng: randomness for our keys.
        now: current time, seconds since the epoch.

    Raises:
        RemoteProtocolError: the invitation is malformed.
        HandshakeError: it is expired, its signature fails, or a key is invalid.
    """
    invitation = Invitation.from_bytes(invitation_bytes)
    if now >= invitation.expires_at:
        raise HandshakeError("invitation has expired")
    ours = Identity.generate(rng)
    ephemeral = X25519PrivateKey.generate(rng)
    try:
        dh1 = ours.dh.exchange(invitation.prekey)
        dh2 = ephemeral.exchange(invitation.identity.dh)
        dh3 = ephemeral.exchange(invitation.prekey)
    except InvalidKeyError as exc:
        raise HandshakeError("invitation key is invalid") from exc
    kem_secret, kem_ct = invitation.kem_prekey.encapsulate()
    signed = invitation.invitation_id + ours.public.to_bytes() + ephemeral.public_key.raw + kem_ct
    transcript = _transcript(invitation.raw, signed)
    fields = signed + ours.signing.sign(LABEL_SIG_ACCEPT + transcript)
    sk, hk_acceptor, nhk_inviter = _derive(dh1, dh2, dh3, kem_secret, transcript)
    ratchet = DoubleRatchet.init_sender(
        shared_secret=sk,
        header_key=hk_acceptor,
        next_header_key_recv=nhk_inviter,
        their_dh=invitation.prekey,
        their_kem=invitation.kem_prekey,
        rng=rng,
    )
    session = Session(
        role=Role.ACCEPTOR,
        transcript_hash=transcript,
        ours=ours,
        theirs=invitation.identity,
        ratchet=ratchet,
        accept_fields=fields,
        rng=rng,
    )
    return session, session.send(content, now=now)


class PendingInvitation:
    """The inviter's secret half of an invitation, waiting for an acceptance."""

    __slots__ = ("_accepted", "_identity", "_kem_prekey", "_prekey", "_rng", "invitation", "state")

    def __init__(
        self,
        invitation: Invitation,
        identity: Identity,
        prekey: X25519PrivateKey | None,
        kem_prekey: KemPrivateKey | None,
        rng: Random,
    ) -> None:
        self.invitation = invitation
        self._identity = identity
        self._prekey = prekey
        self._kem_prekey = kem_prekey
        self._rng = rng
        self._accepted: dict[bytes, None] = {}
        self.state = InvitationState.OPEN if prekey is not None else InvitationState.CONSUMED

    def complete(self, envelope: bytes, *, now: float) -> tuple[Session, list[Event]]:
        """Take an acceptor's ``ACCEPT`` envelope and open the session.

        Returns:
            The new session and the events of the first message it carried.

        Raises:
            InvitationConsumedError: a one-time invitation was already used, or this exact
                acceptance was already taken (a replayed handshake).
            HandshakeError: expired, bad signature, invalid key, or the first message fails.
            RemoteProtocolError: the envelope is malformed or for another invitation.
        """
        if self.state is InvitationState.CONSUMED or self._prekey is None or self._kem_prekey is None:
            raise InvitationConsumedError("invitation was already used")
        if now >= self.invitation.expires_at:
            raise HandshakeError("invitation has expired")
        if len(envelope) != ENVELOPE_SIZE or envelope[:2] != envelope_prefix(EnvelopeType.ACCEPT):
            raise RemoteProtocolError("not an accept envelope")
        fields_raw = envelope[2 : 2 + ACCEPT_FIELDS_SIZE]
        try:
            fields = _AcceptFields.parse(fields_raw)
        except (CodecError, ValueError) as exc:  # pragma: no cover - the size is fixed above
            raise RemoteProtocolError("malformed accept fields") from exc
        if fields.invitation_id != self.invitation.invitation_id:
            raise RemoteProtocolError("acceptance is for another invitation")
        transcript = _transcript(self.invitation.raw, fields_raw[:_SIGNED_FIELDS_SIZE])
        if transcript in self._accepted:
            raise InvitationConsumedError("this acceptance was already taken")
        try:
            fields.identity.signing.verify(fields.signature, LABEL_SIG_ACCEPT + transcript)
            dh1 = self._prekey.exchange(fields.identity.dh)
            dh2 = self._identity.dh.exchange(fields.ephemeral)
            dh3 = self._prekey.exchange(fields.ephemeral)
        except (SignatureError, InvalidKeyError) as exc:
            raise HandshakeError("acceptance does not verify") from exc
        kem_secret = self._kem_prekey.decapsulate(fields.kem_ciphertext)
        sk, hk_acceptor, nhk_inviter = _derive(dh1, dh2, dh3, kem_secret, transcript)
        ratchet = DoubleRatchet.init_receiver(
            shared_secret=sk,
            next_header_key_send=nhk_inviter,
            next_header_key_recv=hk_acceptor,
            our_dh=self._prekey,
            our_kem=self._kem_prekey,
            rng=self._rng,
        )
        session = Session(
            role=Role.INVITER,
            transcript_hash=transcript,
            ours=self._identity,
            theirs=fields.identity,
            ratchet=ratchet,
            accept_fields=fields_raw,
            rng=self._rng,
        )
        try:
            events = session.receive(envelope, now=now)
        except BurnerError as exc:
            raise HandshakeError("first message does not decrypt") from exc
        # -- commit --
        if self.invitation.one_time:
            self.state = InvitationState.CONSUMED
            self._prekey = self._kem_prekey = None
        else:
            self._accepted[transcript] = None
            if len(self._accepted) > MAX_REUSABLE_ACCEPTANCES:
                del self._accepted[next(iter(self._accepted))]
        return session, events

    def to_bytes(self) -> bytes:
        """Serialise (docs/protocol.md §8.1). Holds secrets: seal it before storing."""
        w = Writer().u8(_STATE_VERSION).var16(self.invitation.raw).raw(self._identity.to_bytes())
        if self._prekey is None or self._kem_prekey is None:
            w.u8(0)
        else:
            w.u8(1).raw(self._prekey.private_bytes()).raw(self._kem_prekey.seed())
        w.u32(len(self._accepted))
        for transcript in self._accepted:
            w.raw(transcript)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, rng: Random) -> PendingInvitation:
        """Restore from :meth:`to_bytes`.

        Raises:
            ValueError: if the bytes are not a valid pending invitation.
        """
        try:
            r = Reader(data)
            if r.u8() != _STATE_VERSION:
                raise CodecError("unsupported pending invitation version")
            invitation = Invitation.from_bytes(r.var16())
            identity = Identity.from_bytes(r.take(64))
            prekey: X25519PrivateKey | None = None
            kem_prekey: KemPrivateKey | None = None
            has_keys = r.u8()
            if has_keys == 1:
                prekey = X25519PrivateKey.from_bytes(r.take(32))
                kem_prekey = KemPrivateKey.from_seed(r.take(64))
            elif has_keys != 0:
                raise CodecError("bad key flag")
            accepted = [r.take(32) for _ in range(r.u32())]
            r.end()
        except (CodecError, ValueError, BurnerError) as exc:
            raise ValueError("not a valid pending invitation") from exc
        if (
            identity.public != invitation.identity
            or (prekey is not None and prekey.public_key != invitation.prekey)
            or (kem_prekey is not None and kem_prekey.public_key != invitation.kem_prekey)
            or len(accepted) > MAX_REUSABLE_ACCEPTANCES
            or len(set(accepted)) != len(accepted)
        ):
            raise ValueError("not a valid pending invitation")
        pending = cls(invitation, identity, prekey, kem_prekey, rng)
        pending._accepted = dict.fromkeys(accepted)
        return pending

    def __repr__(self) -> str:
        return f"PendingInvitation(state={self.state.name}, invitation={self.invitation!r})"
