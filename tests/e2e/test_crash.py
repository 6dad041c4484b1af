"""A receiver killed (kill -9) between decrypt and store, or between store and ACK: shown exactly once.

The crash is real: a child Python process opens the burner with the real
:class:`~burnerkit.app.messenger.Messenger`, with one method patched to ``SIGKILL`` its
own process at the chosen instant, and the next ``burner inbox`` picks up the pieces.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.e2e.helpers import Person, killed, mint, pair_by_link, start_child, together
from tests.integration.harness import RelayProcess

#: After the real decryption returns, before the vault transaction commits.
KILL_AFTER_DECRYPT = """
from burnerkit.protocol.session import Session
real_receive = Session.receive
def receive(self, *args, **kwargs):
    events = real_receive(self, *args, **kwargs)
    die()
    return events
Session.receive = receive
asyncio.run(open_messenger().receive(wait=3))
print("the message never arrived")
"""

#: After the vault commit, before the relay gets its ACK.
KILL_BEFORE_ACK = """
from burnerkit.relay.client import RelayClient
async def ack(self, *args, **kwargs):
    die()
RelayClient.ack = ack
asyncio.run(open_messenger().receive(wait=3))
print("the message never arrived")
"""


def _crash_while_receiving(
    relay: RelayProcess, people: Callable[..., list[Person]], tmp_path: Path, script: str
) -> tuple[Person, Person]:
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    alice.run("send", "bob", "exactly once, please")
    killed(start_child(bob, script, tmp_path / "crash.py"))
    return alice, bob


def test_crash_between_decrypt_and_store_shows_the_message_exactly_once(relay, people, tmp_path):
    alice, bob = _crash_while_receiving(relay, people, tmp_path, KILL_AFTER_DECRYPT)
    # Nothing was committed: the relay delivers again and the session decrypts it afresh.
    first = bob.run("inbox", "--json")
    assert [(m["from"], m["text"]) for m in first.json()] == [("alice", "exactly once, please")]
    assert first.stderr == ""  # no replay, no gap: the crash left no trace in the session
    assert bob.inbox() == []
    # The ratchet state is whole: the conversation goes on both ways.
    bob.run("send", "alice", "got it")
    assert alice.texts() == ["got it"]


def test_crash_between_store_and_ack_shows_the_message_exactly_once(relay, people, tmp_path):
    _, bob = _crash_while_receiving(relay, people, tmp_path, KILL_BEFORE_ACK)
    # Stored but not acknowledged: the relay delivers the same message (same msg id) again,
    # which the vault knows as its last delivery: acknowledged with no replay alert (it
    # is our own crash, not the relay's doing), and the stored copy is shown, once.
    first = bob.run("inbox", "--json")
    assert [(m["from"], m["text"]) for m in first.json()] == [("alice", "exactly once, please")]
    assert first.stderr == ""
    second, history = together(bob.start("inbox", "--json"), bob.start("history", "alice", "--json"))
    assert second.json() == []
    assert second.stderr == ""  # acknowledged this time: the relay delivers nothing more
    assert [e["text"] for e in history.json()] == ["exactly once, please"]
