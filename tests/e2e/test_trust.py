"""The orders of steps people really walk, and what hostile events look like, over real ``burner`` runs.

Each test reproduces a way the landed path lost a message, reported a hijacked
invitation as success, or raised an alert that did not stick (docs/protocol.md §17.6).
"""

from __future__ import annotations

from tests.e2e.helpers import Follower, mint, pair_by_link, together
from tests.integration.harness import RelayProcess, free_port, wait_until

#: ``burner accept`` of an invitation somebody accepted first (src/burnerkit/cli/errors.py).
EXIT_INVITATION_USED = 12
#: ``burner inbox`` printed an alert.
EXIT_ALERT = 13


def test_message_written_right_after_accepting_arrives_once(relay, people):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    link = alice.json("invite", "--for", "bob")["link"]
    bob.run("accept", link, "--name", "alice")
    assert bob.run("send", "alice", "hi").stdout == "sent to alice (#2)\n"  # before Alice's inbox
    # An inbox stops after half a second of quiet, which a loaded machine can exceed between
    # two deliveries: read until the message shows (each run shows only what is new).
    lines: list[str] = []
    for _ in range(10):
        lines += [line for line in alice.run("inbox").stdout.splitlines() if line != "no new messages"]
        if any(line.endswith("bob #2: hi") for line in lines):
            break
    assert lines[0] == "new contact bob accepted your invitation"
    assert [line.split("] ", 1)[1] for line in lines[1:]] == ["bob #2: hi"]
    bob.run("send", "alice", "and again")
    texts: list[str] = []
    for _ in range(10):
        texts += alice.texts()
        if texts:
            break
    assert texts == ["and again"]  # no gap, nothing twice
    assert [h["text"] for h in alice.json("history", "bob")] == ["hi", "and again"]


def test_messages_written_while_the_inviter_follows_arrive_once(relays, people):
    # A relay of this test alone, so that its subscription count is the follower's.
    relay: RelayProcess = relays.start("--metrics-port", str(free_port()))
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    link = alice.json("invite", "--for", "bob")["link"]
    with Follower(alice) as follower:
        # Bob accepts and writes only once the follower listens on the invitation's
        # queue: the case where the acceptance turns that queue into Bob's under it.
        wait_until(lambda: relay.metric("subscriptions_active") >= 1, "the follower has subscribed")
        bob.run("accept", link, "--name", "alice")
        for text in ("one", "two"):
            bob.run("send", "alice", text)
        got: list[str] = []
        while len(got) < 2:
            item = follower.next()
            if item["type"] == "message":
                got.append(item["text"])
        follower.stop()
    assert got == ["one", "two"]
    assert follower.returncode == 0, follower.errors
    assert follower.rest == ""
    assert "Traceback" not in follower.errors
    assert alice.inbox() == []
    assert [c["alias"] for c in alice.json("contacts")] == ["bob"]


def test_hijacked_invitation_is_refused_with_its_own_exit_code_and_the_inviter_is_alerted(relay, people):
    alice, bob, mallory = people("alice", "bob", "mallory")
    mint(relay.url, alice, bob, mallory)
    # The long link (no copy on the relay): every copy is good, so the sender-secured queue decides.
    invite = alice.json("invite", "--for", "bob", "--long")
    link = invite["link"]
    assert link == invite["long_link"]
    assert link.startswith("burner:i1.")
    mallory.run("accept", link, "--name", "alice")  # intercepted on the way
    refused = bob.run("accept", link, "--name", "alice", expect=EXIT_INVITATION_USED)
    assert refused.error == (
        "burner: this invitation was already used: it may have been intercepted; ask for a new one"
    )
    assert bob.json("contacts") == []
    inbox = alice.run("inbox", expect=EXIT_ALERT)
    assert "new contact bob accepted your invitation" in inbox.stdout
    assert "ALERT: bob: sender-refused:" in inbox.stderr
    (contact,) = alice.json("contacts")
    assert contact["alerts"] == ["sender-refused"]
    assert contact["verified"] is False
    # The alert sticks: later runs keep showing it until it is cleared.
    assert "ALERT: sender-refused" in alice.run("contacts").stdout
    again = alice.run("inbox", expect=EXIT_ALERT)
    assert again.stdout == "no new messages\n"
    assert again.error.startswith("ALERT on bob: sender-refused")
    alice.run("alerts", "--clear", "bob")
    assert alice.json("contacts")[0]["alerts"] == []
    assert alice.run("inbox").stdout == "no new messages\n"  # exit 0 again


def test_accepting_our_own_invitation_or_one_link_twice_is_refused(relay, people):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    invite = alice.json("invite", "--for", "bob")
    assert set(invite) == {"link", "long_link", "for", "expires_at"}
    assert invite["link"].startswith("burner:s1.")
    assert invite["long_link"].startswith("burner:i1.")
    own = alice.run("accept", invite["link"], "--name", "me", expect=2)
    assert "own invitation" in own.error
    bob.run("accept", invite["link"], "--name", "alice")
    twice = bob.run("accept", invite["long_link"], "--name", "alice2", expect=2)
    assert twice.error == "burner: this burner already accepted this invitation: it is contact 'alice'"
    # The short link's copy stays until the invitation expires: the same burner is told it
    # accepted already, as with the long link (another is refused by the relay: exit 12).
    again = bob.run("accept", invite["link"], "--name", "alice3", expect=2)
    assert again.error == twice.error
    assert [c["alias"] for c in bob.json("contacts")] == ["alice"]


def test_inbox_json_shows_alert_events_next_to_messages(relay, people):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    failed = alice.run("verify", "bob", "--code", "1" * 60, expect=9)
    assert "does not match" in failed.error
    bob.run("send", "alice", "hello")
    items = alice.run("inbox", "--json", expect=EXIT_ALERT).json()
    assert items == [
        {**items[0], "type": "message", "from": "bob", "text": "hello"},
        {"type": "alert", "contact": "bob", "alerts": ["code-mismatch"]},
    ]
    contacts, history = together(alice.start("contacts", "--json"), alice.start("history", "bob", "--json"))
    assert contacts.json()[0]["alerts"] == ["code-mismatch"]
    assert history.json()[-1] == {"type": "alert", "contact": "bob", "alerts": ["code-mismatch"]}
