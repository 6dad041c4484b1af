"""Contacts on two relay processes: one goes down, messages wait in the outbox, then flow once."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import together, waiting_messages


# Two relay processes (one stopped and restarted) and some 25 burner runs: the most CPU of
# the e2e tests, so `make soak` (run by CI) runs it, not `make test`.
@pytest.mark.slow
def test_contacts_split_across_two_relays(relays, people):
    one, two = relays.start(), relays.start()
    alice, bob, carol = people("alice", "bob", "carol")
    together(alice.mint(one.url), bob.mint(two.url), carol.mint(one.url))
    for_bob = alice.json("invite", "--for", "bob")["link"]
    for_carol = alice.json("invite", "--for", "carol")["link"]
    together(
        bob.start("accept", for_bob, "--name", "alice"), carol.start("accept", for_carol, "--name", "alice")
    )
    out = alice.run("inbox").stdout
    assert "new contact bob accepted your invitation" in out
    assert "new contact carol accepted your invitation" in out
    # Where each contact receives: bob on relay two, carol on relay one.
    assert {c["alias"]: c["relay"] for c in alice.json("contacts")} == {"bob": two.url, "carol": one.url}

    # Messages flow every way: alice-bob crosses the relays, alice-carol stays on relay one.
    together(
        alice.start("send", "bob", "to bob on relay two"),
        carol.start("send", "alice", "carol to alice"),
    )
    together(
        bob.start("send", "alice", "bob to alice"),
        alice.start("send", "carol", "to carol on relay one"),
    )
    alice_got, bob_got, carol_got = together(
        alice.start("inbox", "--json"), bob.start("inbox", "--json"), carol.start("inbox", "--json")
    )
    assert sorted((m["from"], m["text"]) for m in alice_got.json()) == [
        ("bob", "bob to alice"),
        ("carol", "carol to alice"),
    ]
    assert [(m["from"], m["text"]) for m in bob_got.json()] == [("alice", "to bob on relay two")]
    assert [(m["from"], m["text"]) for m in carol_got.json()] == [("alice", "to carol on relay one")]

    # Relay two goes down: alice still talks to carol; a message to bob waits in her outbox.
    two.stop()
    alice.relay_timeout = 3
    alice.run("send", "carol", "relay one still works")
    assert carol.texts() == ["relay one still works"]
    queued = alice.run("send", "bob", "while relay two is down")
    assert queued.stdout == ""
    last = alice.json("history", "bob")[-1]
    assert (last["direction"], last["text"], last["delivered"]) == ("out", "while relay two is down", False)
    assert queued.error == (
        f"bob's relay is unreachable: {two.url} (connection refused); "
        f"message #{last['seq']} waits in the outbox"
    )

    # Relay two comes back on the same port with the same store: the next alice command
    # flushes her outbox, and bob gets the message exactly once.
    two.start()
    flushed = alice.run("inbox")
    assert flushed.stdout == "no new messages\n"
    assert flushed.stderr == ""
    assert waiting_messages(two.store_path) == 1
    assert alice.json("history", "bob")[-1]["delivered"] is True
    got = bob.inbox()
    assert [(m["from"], m["text"], m["seq"]) for m in got] == [
        ("alice", "while relay two is down", last["seq"])
    ]
    assert bob.inbox() == []
    assert waiting_messages(two.store_path) == 0
