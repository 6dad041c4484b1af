"""Every message sent is shown exactly once, whatever order people do things in.

A hypothesis state machine over two real Messengers and a real relay process: Bob
accepts Alice's invitation at any point, either side writes, reads with ``receive``,
reads with ``follow`` while the other side accepts and writes, or restarts (closes and
reopens its vault). At the end both sides read what is left, and every message sent
must have been shown exactly once on the other side, with no gap recorded
(docs/protocol.md §17.6, the acknowledgement rule).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.app.views import InboxResult
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from tests.integration.harness import Relays

PASS = "correct horse battery"
#: How long a read keeps listening after the last delivery (the default 0.5 s only slows the test).
IDLE = 0.1


# In `make soak` (CI runs it): every interleaving of two burners' sends and receives: 18 s.
@pytest.mark.slow
def test_every_message_sent_is_shown_exactly_once_in_any_interleaving(relays: Relays) -> None:
    url = relays.start().url

    class Conversation(RuleBasedStateMachine):
        """Alice invited Bob; what happens next is up to hypothesis."""

        def __init__(self) -> None:
            super().__init__()
            self.root = Path(tempfile.mkdtemp(prefix="interleavings-"))
            self.sent: dict[str, list[str]] = {"alice": [], "bob": []}
            self.shown: dict[str, list[str]] = {"alice": [], "bob": []}
            self.accepted = False
            self.count = 0

        @initialize()
        def mint_and_invite(self) -> None:
            self.people = {
                name: Messenger.create(
                    Home(self.root / name), name, PASS, relay_url=url, kdf=FAST_TEST_KDF, relay_timeout=5.0
                )
                for name in ("alice", "bob")
            }
            self.link = asyncio.run(self.people["alice"].invite("bob")).link

        def other(self, name: str) -> str:
            return "bob" if name == "alice" else "alice"

        def take(self, name: str, result: InboxResult) -> None:
            self.shown[name].extend(m.text for m in result.messages)

        def knows_peer(self, name: str) -> bool:
            return bool(self.people[name].contacts())

        @precondition(lambda self: not self.accepted)
        @rule()
        def bob_accepts(self) -> None:
            asyncio.run(self.people["bob"].accept(self.link, "alice"))
            self.accepted = True

        @rule(name=st.sampled_from(["alice", "bob"]))
        def write(self, name: str) -> None:
            if not self.knows_peer(name):
                return  # Alice knows Bob only once she has read his acceptance
            self.count += 1
            text = f"{name}-{self.count}"
            asyncio.run(self.people[name].send(self.other(name), text))
            self.sent[name].append(text)

        @rule(name=st.sampled_from(["alice", "bob"]))
        def read(self, name: str) -> None:
            self.take(name, asyncio.run(self.people[name].receive(idle=IDLE)))

        @rule(name=st.sampled_from(["alice", "bob"]), writes=st.integers(0, 2), accept_first=st.booleans())
        def read_with_follow_while_the_other_acts(self, name: str, writes: int, accept_first: bool) -> None:
            other = self.other(name)

            async def scenario() -> None:
                follower = asyncio.create_task(
                    self.people[name].follow(lambda result: self.take(name, result))
                )
                await asyncio.sleep(0.2)
                if accept_first and not self.accepted:
                    await self.people["bob"].accept(self.link, "alice")
                    self.accepted = True
                for _ in range(writes):
                    if self.people[other].contacts():
                        self.count += 1
                        text = f"{other}-{self.count}"
                        await self.people[other].send(name, text)
                        self.sent[other].append(text)
                # Until everything the other side sent is shown (bounded: the test does
                # not judge speed, the final check judges what arrived).
                async with asyncio.timeout(10):
                    while not set(self.sent[other]) <= set(self.shown[name]):
                        await asyncio.sleep(0.05)
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower

            asyncio.run(scenario())

        @rule(name=st.sampled_from(["alice", "bob"]))
        def restart(self, name: str) -> None:
            self.people[name].close()
            self.people[name] = Messenger.open(Home(self.root / name), name, PASS, relay_timeout=5.0)

        @invariant()
        def nothing_is_shown_twice(self) -> None:
            for name in ("alice", "bob"):
                assert [t for t, n in Counter(self.shown[name]).items() if n > 1] == []

        def teardown(self) -> None:
            try:
                for name in ("alice", "bob", "alice"):
                    self.take(name, asyncio.run(self.people[name].receive(idle=IDLE)))
                for name in ("alice", "bob"):
                    assert sorted(self.shown[name]) == sorted(self.sent[self.other(name)]), name
                    gaps = [e for e in self.people[name].events() if e.kind in ("gap", "abandoned")]
                    assert gaps == [], name
            finally:
                for messenger in self.people.values():
                    messenger.close()
                shutil.rmtree(self.root, ignore_errors=True)

    Conversation.TestCase.settings = settings(
        max_examples=12,
        stateful_step_count=8,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    Conversation.TestCase().runTest()
