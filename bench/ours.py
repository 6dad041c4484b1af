"""burnerkit's own figures: handshakes, one-way and ping-pong ratchet messaging.

Same shapes as the peer and the limit: 256-byte messages, encrypt then decrypt
right away; in ping-pong the two sides alternate, so every message carries a full
X25519 + ML-KEM-768 ratchet step.
"""

from __future__ import annotations

import time

from burnerkit.crypto.rng import SystemRandom
from burnerkit.protocol.handshake import accept_invitation, create_invitation
from burnerkit.protocol.session import Session

from ._timing import rate

__all__ = ["measure"]

_MESSAGE = b"m" * 256
_RNG = SystemRandom()


def _pair(now: float) -> tuple[Session, Session]:
    pending, invitation = create_invitation(rng=_RNG, now=now, lifetime=3600, reply_address=b"q")
    acceptor, first = accept_invitation(invitation, content=b"hi", rng=_RNG, now=now)
    inviter, _ = pending.complete(first, now=now)
    return inviter, acceptor


def handshakes_per_s(seconds: float) -> float:
    """Both sides of a full handshake, first message included."""
    now = time.time()
    return rate(lambda: _pair(now), seconds)


def one_way_msgs_per_s(seconds: float) -> float:
    """Inviter sends, acceptor decrypts: one symmetric step per message."""
    now = time.time()
    sender, receiver = _pair(now)

    def step() -> None:
        receiver.receive(sender.send(_MESSAGE, now=now), now=now)

    return rate(step, seconds)


def pingpong_msgs_per_s(seconds: float) -> float:
    """Sides alternate; every message is a full PQ ratchet step."""
    now = time.time()
    a, b = _pair(now)
    turn = [a, b]

    def step() -> None:
        sender, receiver = turn
        receiver.receive(sender.send(_MESSAGE, now=now), now=now)
        turn.reverse()

    return rate(step, seconds)


def measure(seconds: float) -> dict[str, float]:
    """The figures bench.run expects."""
    return {
        "handshakes_per_s": handshakes_per_s(seconds),
        "ratchet_one_way_msgs_per_s": one_way_msgs_per_s(seconds),
        "ratchet_pingpong_msgs_per_s": pingpong_msgs_per_s(seconds),
    }
