"""The protocol core's scenario in one process (``burner demo --core``).

The "network" here is a list of envelopes that we drop, reorder, replay and tamper
with by hand, to show what the core detects. Everything else is the real protocol
core: the hybrid handshake (docs/protocol.md §5), the PQ ratchet (§6), fixed-size
envelopes and the anomaly events a burner reports (§7).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import (
    BurnerError,
    DecryptionError,
    DemoFailedError,
    DuplicateMessageError,
    ForkDetectedError,
)
from burnerkit.protocol.envelope import ENVELOPE_SIZE
from burnerkit.protocol.events import Event, MessageReceived
from burnerkit.protocol.handshake import accept_invitation, create_invitation
from burnerkit.protocol.session import Session

__all__ = ["run"]


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailedError(f"demo check failed: {what}")


def _texts(events: list[Event]) -> list[str]:
    return [e.content.decode() for e in events if isinstance(e, MessageReceived)]


def _describe(events: list[Event]) -> str:
    parts = []
    for event in events:
        if isinstance(event, MessageReceived):
            parts.append(f"#{event.seq} {event.content.decode()!r}")
        else:
            parts.append(repr(event))
    return ", ".join(parts)


def run(say: Callable[[str], None]) -> None:
    """Run the scenario, narrating through ``say``.

    Raises:
        DemoFailedError: if any step does not behave as specified.
    """
    rng = SystemRandom()
    now = time.time()
    say("burnerkit demo: the post-quantum secure-session core, in-process")
    say("(this demo plays the network by hand; 'burner demo' runs the real relay and CLI)")
    say("")

    say("1. Alice mints a one-time invitation (per-contact identity, X25519 + ML-KEM-768 prekeys).")
    pending, invitation = create_invitation(rng=rng, now=now, lifetime=600, reply_address=b"alice-queue")
    say(f"   invitation: {len(invitation)} bytes, expires in 10 minutes")

    say("2. Bob accepts it: X25519 x3 + ML-KEM-768 encapsulation, signed transcript, first message.")
    bob, first = accept_invitation(invitation, content=b"hello Alice, this is Bob", rng=rng, now=now)
    alice, events = pending.complete(first, now=now)
    say(f"   Alice reads: {_describe(events)}")
    _check(_texts(events) == ["hello Alice, this is Bob"], "first message")
    say(f"   safety code (Alice): {alice.safety_code}")
    say(f"   safety code (Bob):   {bob.safety_code}")
    _check(alice.safety_code == bob.safety_code, "safety codes match")

    say("3. A second acceptance of the one-time invitation is refused.")
    try:
        pending.complete(first, now=now)
    except BurnerError as exc:
        say(f"   refused: {type(exc).__name__}: {exc}")
    else:
        raise DemoFailedError("demo check failed: replayed handshake accepted")

    say("4. They talk; every message ratchets X25519 and ML-KEM-768 when the speaker changes.")
    for sender, receiver, name, text in [
        (alice, bob, "Alice", "the meeting moved to 14:00"),
        (bob, alice, "Bob", "understood, same room?"),
        (alice, bob, "Alice", "room 3, second floor"),
    ]:
        envelope = sender.send(text.encode(), now=now)
        _check(len(envelope) == ENVELOPE_SIZE, "fixed envelope size")
        got = receiver.receive(envelope, now=now)
        say(f"   {name} -> {_describe(got)}   ({len(envelope)} bytes on the wire)")
        _check(_texts(got) == [text], "message delivered")

    say("5. A hostile network drops one message, reorders two, and replays one.")
    burst = [bob.send(f"update {i}".encode(), now=now) for i in range(1, 5)]
    for index in (0, 3, 2):  # update 2 is dropped, 3 and 4 swapped
        say(f"   Alice gets: {_describe(alice.receive(burst[index], now=now))}")
    try:
        alice.receive(burst[2], now=now)
    except DuplicateMessageError as exc:
        say(f"   replay of 'update 3' refused: {type(exc).__name__}")
    say(f"   the late 'update 2' arrives: {_describe(alice.receive(burst[1], now=now))}")

    say("6. A tampered envelope is refused and leaves the session untouched.")
    before = alice.to_bytes()
    genuine = bob.send(b"still there?", now=now)
    tampered = bytearray(genuine)
    tampered[-100] ^= 0x01
    try:
        alice.receive(bytes(tampered), now=now)
    except DecryptionError as exc:
        say(f"   refused: {type(exc).__name__}: {exc}")
    _check(alice.to_bytes() == before, "state unchanged after a forged message")
    say(f"   the genuine one still works: {_describe(alice.receive(genuine, now=now))}")

    say("7. Bob's phone is imaged at the border; the copy and the original both send.")
    clone = Session.from_bytes(bob.to_bytes(), rng=rng)
    original_msg = bob.send(b"from the real Bob", now=now)
    clone_msg = clone.send(b"from the clone", now=now)
    say(f"   Alice gets the real one: {_describe(alice.receive(original_msg, now=now))}")
    try:
        alice.receive(clone_msg, now=now)
    except ForkDetectedError as exc:
        say(f"   clone alert: {type(exc).__name__}: {exc}")
    else:
        raise DemoFailedError("demo check failed: clone not detected")

    say("")
    say("All checks passed. Run `make test` for the full suite and `make bench` for the figures.")
