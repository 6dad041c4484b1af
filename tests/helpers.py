"""Shared test harness: a handshaken pair of sessions over a lossy link.

Modelled on h11's ``tests/helpers.py::ConnectionPair``: two sans-IO machines, a
clock, and the bytes between them in plain view, so a test can drop, duplicate,
reorder, replay or tamper with any envelope it likes::

    pair = SessionPair()                      # Alice invited, Bob accepted
    env = pair.send(ALICE, b"hi")             # 15,872 bytes
    assert pair.deliver(env, to=BOB) == [MessageReceived(1, pair.sent_at, b"hi")]

    pair.post(BOB, b"one")                    # send and queue on Bob's outgoing link
    pair.post(BOB, b"two")
    pair.link(BOB).reorder([1, 0])
    events = pair.flush(BOB)                  # one event list per delivered envelope

ALICE is always the inviter, BOB the acceptor. Nothing here is a mock: it drives the
real handshake and real sessions with injected time and randomness.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from burnerkit.crypto.kdf import LABEL_SIG_ACCEPT, LABEL_SIG_INVITATION, LABEL_TRANSCRIPT, sha256
from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.rng import DeterministicRandom, Random
from burnerkit.protocol.events import Event
from burnerkit.protocol.handshake import PendingInvitation, accept_invitation, create_invitation
from burnerkit.protocol.ratchet import DoubleRatchet
from burnerkit.protocol.session import Session

__all__ = [
    "ACC_DH",
    "ACC_END",
    "ACC_EPHEMERAL",
    "ACC_ID",
    "ACC_KEM_CT",
    "ACC_SIGNATURE",
    "ACC_SIGNING",
    "INV_DH",
    "INV_EXPIRES",
    "INV_FLAGS",
    "INV_ID",
    "INV_KEM",
    "INV_PREKEY",
    "INV_SIGNING",
    "SESSION_RECEIVE_LOG",
    "ALICE",
    "BOB",
    "T0",
    "Clock",
    "Link",
    "Party",
    "SessionPair",
    "acceptance_transcript",
    "build_invitation",
    "flip",
    "forge_acceptance",
    "restore",
    "session_ratchet_state",
    "snapshot",
]

#: A fixed start time (seconds since the epoch), far from any edge case.
T0 = 1_800_000_000.0


class Party(enum.Enum):
    """One end of a :class:`SessionPair`."""

    ALICE = "alice"  #: the inviter
    BOB = "bob"  #: the acceptor

    @property
    def peer(self) -> Party:
        """The other end."""
        return Party.BOB if self is Party.ALICE else Party.ALICE


ALICE = Party.ALICE
BOB = Party.BOB


class Clock:
    """Injected time: seconds since the epoch, moved only by the test."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time."""
        self.now += seconds
        return self.now

    def __repr__(self) -> str:
        return f"Clock({self.now})"


class Link:
    """Envelopes in flight in one direction, under the test's (the relay's) control."""

    def __init__(self) -> None:
        self.in_flight: list[bytes] = []

    def put(self, envelope: bytes) -> None:
        """Queue an envelope at the end."""
        self.in_flight.append(envelope)

    def drop(self, index: int) -> bytes:
        """Lose the envelope at ``index``; returns it (a relay could still replay it)."""
        return self.in_flight.pop(index)

    def duplicate(self, index: int) -> None:
        """Deliver the envelope at ``index`` twice, the copy right after the original."""
        self.in_flight.insert(index + 1, self.in_flight[index])

    def reorder(self, order: Sequence[int]) -> None:
        """Rearrange the queue: ``order`` is a permutation of the current indices."""
        if sorted(order) != list(range(len(self.in_flight))):
            raise ValueError("order must be a permutation of the queue's indices")
        self.in_flight = [self.in_flight[i] for i in order]

    def take_all(self) -> list[bytes]:
        """Empty the queue and return what was in it, in queue order."""
        out, self.in_flight = self.in_flight, []
        return out

    def __len__(self) -> int:
        return len(self.in_flight)


class SessionPair:
    """Two sessions joined by a completed handshake, with a clock and two links.

    Args:
        rng: randomness for both parties; a fixed :class:`DeterministicRandom` by default.
            Pass ``SystemRandom()`` for a run that is not reproducible.
        now: the start time.
        first_content: what Bob's first (ACCEPT) envelope carries.
        one_time: whether Alice's invitation is one-time.
    """

    def __init__(
        self,
        rng: Random | None = None,
        *,
        now: float = T0,
        first_content: bytes = b"hello",
        one_time: bool = True,
    ) -> None:
        self.rng: Random = rng if rng is not None else DeterministicRandom(b"burnerkit tests")
        self.clock = Clock(now)
        self.pending, self.invitation = create_invitation(
            rng=self.rng, now=now, lifetime=3600, reply_address=b"alice-queue", one_time=one_time
        )
        bob, self.first_envelope = accept_invitation(
            self.invitation, content=first_content, rng=self.rng, now=now
        )
        alice, self.first_events = self.pending.complete(self.first_envelope, now=now)
        self.sessions: dict[Party, Session] = {ALICE: alice, BOB: bob}
        self.links: dict[Party, Link] = {ALICE: Link(), BOB: Link()}

    @property
    def alice(self) -> Session:
        """The inviter's session."""
        return self.sessions[ALICE]

    @property
    def bob(self) -> Session:
        """The acceptor's session."""
        return self.sessions[BOB]

    @property
    def now(self) -> float:
        """The clock's current time."""
        return self.clock.now

    @property
    def sent_at(self) -> int:
        """What ``MessageReceived.sent_at`` says for a message sent now (milliseconds)."""
        return int(self.clock.now * 1000)

    def send(self, sender: Party, content: bytes = b"") -> bytes:
        """``sender`` encrypts ``content``; the envelope goes nowhere by itself."""
        return self.sessions[sender].send(content, now=self.clock.now)

    def deliver(self, envelope: bytes, *, to: Party) -> list[Event]:
        """Hand ``envelope`` to ``to``'s session; errors propagate."""
        return self.sessions[to].receive(envelope, now=self.clock.now)

    def exchange(self, sender: Party, content: bytes = b"") -> list[Event]:
        """Send from ``sender`` and deliver straight to the peer."""
        return self.deliver(self.send(sender, content), to=sender.peer)

    def round_trip(self) -> None:
        """Bob to Alice, Alice to Bob: afterwards both have stepped the DH ratchet.

        Bob has heard back, so his envelopes are ``MESSAGE`` from then on.
        """
        self.exchange(BOB, b"ping")
        self.exchange(ALICE, b"pong")

    # -- the link ---------------------------------------------------------------------

    def link(self, sender: Party) -> Link:
        """The link carrying ``sender``'s envelopes to the peer."""
        return self.links[sender]

    def post(self, sender: Party, content: bytes = b"") -> bytes:
        """Send from ``sender`` and queue the envelope on its outgoing link."""
        envelope = self.send(sender, content)
        self.links[sender].put(envelope)
        return envelope

    def flush(self, sender: Party) -> list[list[Event]]:
        """Deliver everything queued on ``sender``'s link, in queue order."""
        return [self.deliver(envelope, to=sender.peer) for envelope in self.links[sender].take_all()]

    # -- state ------------------------------------------------------------------------

    def clone(self, party: Party) -> Session:
        """A second, independent copy of ``party``'s state (a seized and imaged device)."""
        return restore(snapshot(self.sessions[party]), self.rng)

    def __repr__(self) -> str:
        return f"SessionPair(alice={self.alice!r}, bob={self.bob!r}, clock={self.clock!r})"


def snapshot(state: Session | DoubleRatchet | PendingInvitation) -> bytes:
    """The serialised state (``to_bytes()``): what a test compares before and after."""
    return state.to_bytes()


def restore(data: bytes, rng: Random) -> Session:
    """A session from :func:`snapshot` bytes."""
    return Session.from_bytes(data, rng=rng)


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    """``data`` with the byte at ``index`` XORed with ``mask``."""
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


# -- wire layouts, written out independently of the code under test (docs/protocol.md §3) --

#: Byte ranges of an invitation: version, type, flags, id, expiry, keys, then reply and signature.
INV_FLAGS = 2
INV_ID = slice(3, 19)
INV_EXPIRES = slice(19, 27)
INV_SIGNING = slice(27, 59)
INV_DH = slice(59, 91)
INV_PREKEY = slice(91, 123)
INV_KEM = slice(123, 123 + 1184)

#: Byte ranges of the accept fields inside an ACCEPT envelope (after version and type).
ACC_ID = slice(2, 18)
ACC_SIGNING = slice(18, 50)
ACC_DH = slice(50, 82)
ACC_EPHEMERAL = slice(82, 114)
ACC_KEM_CT = slice(114, 114 + 1088)
ACC_SIGNATURE = slice(1202, 1266)
ACC_END = 1266


def build_invitation(
    signing: SigningKey,
    *,
    dh: bytes,
    prekey: bytes,
    kem: bytes,
    expires_at: int,
    invitation_id: bytes = bytes(16),
    reply: bytes = b"queue",
    flags: int = 0x01,
    header: bytes = b"\x01\x10",
    label: bytes = LABEL_SIG_INVITATION,
) -> bytes:
    """An invitation laid out by hand and signed with ``signing`` over ``label``."""
    unsigned = (
        header
        + bytes([flags])
        + invitation_id
        + expires_at.to_bytes(8, "big")
        + signing.verify_key.raw
        + dh
        + prekey
        + kem
        + len(reply).to_bytes(2, "big")
        + reply
    )
    return unsigned + signing.sign(label + unsigned)


def acceptance_transcript(invitation: bytes, signed_fields: bytes) -> bytes:
    """``T``: SHA-256 over the label, the invitation and the accept fields before the signature."""
    length = len(invitation).to_bytes(4, "big")
    return sha256(LABEL_TRANSCRIPT, length, invitation, b"\x01\x11", signed_fields)


def forge_acceptance(
    envelope: bytes,
    invitation: bytes,
    signing: SigningKey,
    *,
    label: bytes = LABEL_SIG_ACCEPT,
    **fields: bytes,
) -> bytes:
    """An ACCEPT envelope with some accept fields replaced and the transcript signed again.

    ``fields`` names slices of this module (``ephemeral=``, ``kem_ct=``, ``dh=``,
    ``signing_key=``); the ratchet message after the fields is kept as it was.
    """
    ranges = {"invitation_id": ACC_ID, "signing_key": ACC_SIGNING, "dh": ACC_DH}
    ranges |= {"ephemeral": ACC_EPHEMERAL, "kem_ct": ACC_KEM_CT}
    out = bytearray(envelope)
    for name, value in fields.items():
        where = ranges[name]
        if len(value) != where.stop - where.start:
            raise ValueError(f"{name} must be {where.stop - where.start} bytes")
        out[where] = value
    signed = bytes(out[2 : ACC_SIGNATURE.start])
    out[ACC_SIGNATURE] = signing.sign(label + acceptance_transcript(invitation, signed))
    return bytes(out)


#: Offset of the receive log in a session state (docs/protocol.md §8.4); the ratchet state
#: follows it as ``var32``.
SESSION_RECEIVE_LOG = 1469


def session_ratchet_state(state: bytes) -> tuple[int, bytes]:
    """Where a session state's embedded ratchet state starts, and its bytes.

    Read by hand (docs/protocol.md §8.3, §8.4): skip the receive log (33 + 8m + 40r bytes),
    then a u32 length; the ratchet state must run to the end of the session state.
    """
    at = SESSION_RECEIVE_LOG + 1 + 16 + 8  # version, chain_start[0:16], highest
    missing = int.from_bytes(state[at : at + 4], "big")
    at += 4 + 8 * missing
    recent = int.from_bytes(state[at : at + 4], "big")
    at += 4 + 40 * recent
    length = int.from_bytes(state[at : at + 4], "big")
    at += 4
    if at + length != len(state):
        raise ValueError("the ratchet state does not end the session state")
    return at, state[at:]
