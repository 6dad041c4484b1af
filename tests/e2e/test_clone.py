"""A burner imaged at the border, then used: what its peers and the original see (issue 16, item 6).

The image is a byte-for-byte copy of the burner's whole home (``shutil.copytree``), opened
with the same passphrase, as an examiner who kept the image and later learned the
passphrase would. Each side then types ``burner`` commands against a real relay process.

- A contact's image that sends forks the conversation: the peer refuses the conflicting
  message (the second one for a ratchet position it already read) and raises a ``fork``
  alert (docs/protocol.md §6.6, §7.4, §17.6).
- Our own image that receives subscribes to our queues: the relay ends the original's
  subscription, which records a ``displaced`` alert (§14, §17.6).

Both show in ``contacts``, ``alerts``, ``inbox`` (exit 13) and ``debrief``, and stay in the
debrief after the alert is cleared (§17.10). ``burner chat`` shows them too: tests/tui.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.helpers import Follower, Person, mint, pair_by_link
from tests.integration.harness import RelayProcess, free_port, wait_until

#: ``burner inbox`` exits 13 while a contact is on alert (docs/cli.md).
EXIT_ALERT = 13


def image_of(person: Person, root: Path) -> Person:
    """The border image: a copy of ``person``'s whole home, opened with the same passphrase."""
    image = Person(root, person.name)
    shutil.copytree(person.home, image.home)
    return image


def on_alert(person: Person) -> dict[str, list[str]]:
    """``burner contacts --json``: each contact on alert, with its alert kinds."""
    return {c["alias"]: c["alerts"] for c in person.json("contacts") if c["alerts"]}


@pytest.mark.parametrize("first", ["original", "image"])
def test_cloned_burner_is_detected_by_its_peer(relay, people, tmp_path, first):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    bob.run("send", "alice", "before the border")
    assert alice.texts() == ["before the border"]

    image = image_of(bob, tmp_path / "border")
    # Both hold the same ratchet state: each sends the next message at the same position.
    senders = {"original": bob, "image": image}
    second = "image" if first == "original" else "original"
    senders[first].run("send", "alice", f"from the {first}")
    senders[second].run("send", "alice", f"from the {second}")

    # The first to arrive reads as usual; the other is refused and raises the clone alert.
    inbox = alice.run("inbox", "--json", expect=EXIT_ALERT).json()
    assert [m["text"] for m in inbox if m["type"] == "message"] == [f"from the {first}"]
    assert [(e["contact"], e["kind"], e["alert"]) for e in inbox if e["type"] == "event"] == [
        ("bob", "fork", True)
    ]
    assert {"type": "alert", "contact": "bob", "alerts": ["fork"]} in inbox
    assert f"from the {second}" not in str(alice.json("history", "bob"))

    assert on_alert(alice) == {"bob": ["fork"]}
    assert "ALERT: fork" in alice.run("contacts").stdout
    # Shown again by every inbox until cleared: a script cannot miss it.
    again = alice.run("inbox", expect=EXIT_ALERT)
    assert "ALERT on bob: fork" in again.stderr
    alerts = alice.json("alerts")
    assert {"type": "alert", "contact": "bob", "alerts": ["fork"]} in alerts
    assert [e["kind"] for e in alerts if e["type"] == "event"] == ["fork"]

    debrief = alice.json("debrief")
    assert debrief["kinds"]["fork"] == 1
    assert [(c["contact"], c["counts"]) for c in debrief["contacts"]] == [("bob", {"fork": 1})]

    # Clearing the alert is the user's act; the debrief keeps the event.
    alice.run("alerts", "--clear", "bob")
    assert on_alert(alice) == {}
    assert alice.run("inbox").returncode == 0
    assert alice.json("debrief")["events"] == debrief["events"]


def test_original_learns_of_its_clone_from_a_displaced_subscription(relays, people, tmp_path):
    # A relay of this test alone, so that its subscription count is the follower's.
    relay: RelayProcess = relays.start("--metrics-port", str(free_port()))
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    image = image_of(alice, tmp_path / "border")

    wait_until(lambda: relay.metric("subscriptions_active") == 0, "the pairing's subscriptions are gone")
    with Follower(alice) as follower:
        wait_until(lambda: relay.metric("subscriptions_active") >= 1, "the original has subscribed")
        # The image reads alice's queue: the relay hands the queue to it and ends the
        # original's subscription, which is how the original learns of its copy.
        image.run("inbox", expect=None)
        event = follower.next()
        follower.stop()
    assert (event["type"], event["contact"], event["kind"], event["alert"]) == (
        "event",
        "bob",
        "displaced",
        True,
    )
    assert "may be cloned" in event["detail"]
    assert follower.returncode == EXIT_ALERT, follower.errors
    assert "ALERT: bob: displaced" in follower.errors

    assert on_alert(alice) == {"bob": ["displaced"]}
    assert "ALERT: displaced" in alice.run("contacts").stdout
    assert "ALERT on bob: displaced" in alice.run("inbox", expect=EXIT_ALERT).stderr
    assert [e["kind"] for e in alice.json("alerts") if e["type"] == "event"] == ["displaced"]
    debrief = alice.json("debrief")
    assert debrief["kinds"]["displaced"] == 1
    assert debrief["contacts"][0]["contact"] == "bob"
    assert "bob: 1 displaced (1 alert)" in alice.run("debrief").stdout
