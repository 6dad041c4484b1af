"""Pairing and chatting with the real ``burner`` command: by link, by short code, offline."""

from __future__ import annotations

import json
import subprocess
import sys

from burnerkit.protocol.wordlist import EVEN_WORDS
from tests.e2e.helpers import Follower, Running, mint, pair_by_link, queue_ids, together
from tests.integration.harness import RelayProcess, free_port, wait_until


def test_link_pairing_then_chat_both_ways(relay, people):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)

    shown = alice.run("invite", "--for", "bob")
    *qr, link = shown.stdout.splitlines()
    # The short link (the invitation waits on the relay) and a QR code that fits 80 columns.
    assert link.startswith("burner:s1.")
    assert len(link) < 200
    assert len(qr) > 20
    assert max(len(line) for line in qr) <= 80
    assert "one-time invitation for 'bob'" in shown.stderr
    accepted = bob.run("accept", link, "--name", "alice")
    assert accepted.stdout.startswith("paired with alice; safety code")
    inbox = alice.run("inbox")
    assert inbox.stdout == "new contact bob accepted your invitation\nno new messages\n"
    assert inbox.stderr == ""

    sent = alice.json("send", "bob", "Landed. The meeting moved to 15:00.")
    assert sent == {"to": "bob", "seq": sent["seq"], "status": "delivered"}
    got = bob.inbox()
    assert got == [
        {
            "type": "message",
            "from": "alice",
            "text": "Landed. The meeting moved to 15:00.",
            "sent_at": got[0]["sent_at"],
            "seq": sent["seq"],
            "burn_on_read": False,
            "expires_at": None,
        }
    ]
    assert isinstance(got[0]["sent_at"], int)

    answer = bob.run("send", "alice", "Understood. Room 412.")
    assert answer.stdout.startswith("sent to alice (#")
    got = alice.inbox()
    assert [(m["from"], m["text"]) for m in got] == [("bob", "Understood. Room 412.")]
    assert f"(#{got[0]['seq']})" in answer.stdout

    alice_history, bob_history, alice_contacts = together(
        alice.start("history", "bob", "--json"),
        bob.start("history", "alice", "--json"),
        alice.start("contacts", "--json"),
    )
    assert [(e["direction"], e["text"], e["delivered"]) for e in alice_history.json()] == [
        ("out", "Landed. The meeting moved to 15:00.", True),
        ("in", "Understood. Room 412.", False),
    ]
    assert [(e["direction"], e["text"]) for e in bob_history.json()] == [
        ("in", "Landed. The meeting moved to 15:00."),
        ("out", "Understood. Room 412."),
    ]
    # A contact paired by link is not verified until the safety codes were compared.
    (contact,) = alice_contacts.json()
    assert (contact["alias"], contact["verified"], contact["key_changed"]) == ("bob", False, False)


def test_offline_recipient_gets_every_queued_message_once(relay, people):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")

    texts = [f"message {n} while bob is offline" for n in range(1, 5)]
    seqs = [alice.json("send", "bob", text)["seq"] for text in texts]  # bob runs nothing meanwhile
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)

    got = bob.inbox()
    assert [(m["from"], m["text"], m["seq"]) for m in got] == [
        ("alice", text, seq) for text, seq in zip(texts, seqs, strict=True)
    ]
    again, history = together(bob.start("inbox", "--json"), bob.start("history", "alice", "--json"))
    assert again.json() == []
    assert [e["text"] for e in history.json()] == texts  # stored once each


def _offer_code(offer: Running) -> str:
    """The code a running ``pair --json`` prints on its first line."""
    assert offer.process.stdout is not None
    first = offer.process.stdout.readline()
    code = json.loads(first)["code"]
    assert isinstance(code, str)
    return code


def test_short_code_pairing(relay, people):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)

    offer = alice.start("pair", "--name", "bob", "--json", "--timeout", "30")
    code = _offer_code(offer)
    nameplate, *words = code.split("-")
    assert nameplate.isdigit()
    assert len(words) == 2
    joined = bob.run("pair", code, "--name", "alice", "--timeout", "30")
    assert joined.stdout.startswith("paired with alice (authenticated by the code); safety code")
    offered = offer.finish(0)
    view = json.loads(offered.stdout.splitlines()[-1])
    assert (view["alias"], view["verified"]) == ("bob", True)

    alice_contacts, bob_contacts = together(
        alice.start("contacts", "--json"), bob.start("contacts", "--json")
    )
    (for_alice,) = alice_contacts.json()
    (for_bob,) = bob_contacts.json()
    assert (for_alice["alias"], for_alice["verified"]) == ("bob", True)
    assert (for_bob["alias"], for_bob["verified"]) == ("alice", True)
    assert for_alice["safety_code"] == for_bob["safety_code"]

    together(alice.start("send", "bob", "paired by voice"), bob.start("send", "alice", "and back"))
    bob_got, alice_got = together(bob.start("inbox", "--json"), alice.start("inbox", "--json"))
    assert [(m["from"], m["text"]) for m in bob_got.json()] == [("alice", "paired by voice")]
    assert [(m["from"], m["text"]) for m in alice_got.json()] == [("bob", "and back")]


def test_short_code_pairing_with_three_words(relay, people):
    """``--words 3`` on the offering side only: the joiner takes the longer code as it is."""
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)

    refused = bob.run("pair", "7-acme-adroitness", "--words", "3", expect=2)
    assert refused.error == "burner: --words is for making a code; the code you were told works as it is"
    offer = alice.start("pair", "--name", "bob", "--json", "--words", "3", "--timeout", "30")
    code = _offer_code(offer)
    nameplate, *words = code.split("-")
    assert nameplate.isdigit()
    assert [w in EVEN_WORDS for w in words] == [True, False, True]
    joined = bob.run("pair", code.upper(), "--name", "alice", "--json", "--timeout", "30")
    offered = offer.finish(0)
    for_alice = json.loads(offered.stdout.splitlines()[-1])
    for_bob = json.loads(joined.stdout.splitlines()[-1])
    assert (for_alice["alias"], for_alice["verified"], for_bob["alias"], for_bob["verified"]) == (
        "bob",
        True,
        "alice",
        True,
    )
    assert for_alice["safety_code"] == for_bob["safety_code"]


def test_wrong_short_code_fails_and_destroys_the_code(relay, people):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    queues_before = queue_ids(relay.store_path)

    offer = alice.start("pair", "--name", "bob", "--json", "--timeout", "30")
    code = _offer_code(offer)
    nameplate, first, second = code.split("-")
    wrong_first = next(word for word in EVEN_WORDS if word != first)
    wrong = f"{nameplate}-{wrong_first}-{second}"  # the right nameplate, a wrong word

    joined = bob.run("pair", wrong, "--name", "alice", "--timeout", "30", expect=8)
    offered = offer.finish(8)
    mismatch = "burner: the short code did not match on both sides; it is destroyed"
    assert joined.error == mismatch
    assert offered.error == mismatch
    assert offered.stdout == ""  # nothing after the code line: no contact was made

    # The code is destroyed: the right one no longer works either.
    again = bob.run("pair", code, "--name", "alice", "--timeout", "10", expect=8)
    assert again.error == (
        "burner: no pairing waits under this code: it was mistyped, used, destroyed or expired"
    )
    alice_contacts, bob_contacts = together(
        alice.start("contacts", "--json"), bob.start("contacts", "--json")
    )
    assert alice_contacts.json() == []
    assert bob_contacts.json() == []
    # The invitation the failed pairing made is withdrawn, and its queue leaves the relay.
    assert alice.run("inbox").stdout == "no new messages\n"
    assert queue_ids(relay.store_path) == queues_before


def test_inbox_follow_prints_each_message_as_it_arrives_until_interrupted(relays, people):
    # A relay of this test alone, so that its subscription count is the follower's.
    relay: RelayProcess = relays.start("--metrics-port", str(free_port()))
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")

    def subscribed() -> float:
        return relay.metric("subscriptions_active")

    wait_until(lambda: subscribed() == 0, "the relay has let go of the inbox runs' subscriptions")
    with Follower(bob) as follower:
        # Write only once the follower listens: sent earlier, a message would wait in
        # the queue and come with the subscription, which is the offline path, not this.
        wait_until(lambda: subscribed() >= 1, "the follower has subscribed")
        for text in ("first while following", "second while following"):
            alice.run("send", "bob", text)
            assert follower.next()["text"] == text  # while the follower keeps running
        follower.stop()
    assert follower.returncode == 0, follower.errors
    assert follower.rest == ""
    assert "Traceback" not in follower.errors
    assert bob.inbox() == []  # both were stored, acknowledged and shown once
    assert [h["text"] for h in bob.json("history", "alice")] == [
        "first while following",
        "second while following",
    ]


def test_message_read_from_stdin_stays_out_of_argv(relay, people):
    """`burner send bob -` reads the text from stdin: no process listing or shell history holds it."""
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    text = "Meet at the north gate.\nBring nothing written down."
    sent = subprocess.run(
        [sys.executable, "-m", "burnerkit", "send", "bob", "-", "--json"],
        input=text + "\n",
        env=alice.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["status"] == "delivered"
    assert [m["text"] for m in bob.inbox()] == [text]
    empty = subprocess.run(
        [sys.executable, "-m", "burnerkit", "send", "bob", "-"],
        input="",
        env=alice.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert empty.returncode == 2
    assert empty.stderr.strip().splitlines()[-1] == "burner: the message is empty"


def test_link_read_from_stdin_is_accepted(relay, people):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    link = alice.json("invite", "--for", "bob")["link"]
    accepted = subprocess.run(
        [sys.executable, "-m", "burnerkit", "accept", "-", "--name", "alice", "--json"],
        input=link[:40] + "\n" + link[40:] + "\n",  # wrapped, as a mail client would
        env=bob.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["alias"] == "alice"
    assert alice.run("inbox").stdout.startswith("new contact bob accepted your invitation")
