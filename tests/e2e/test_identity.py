"""Trust and lifetime: a changed identity key blocks sending; an expired burner refuses to work."""

from __future__ import annotations

import time

import pytest

from tests.e2e.helpers import files_under, mint, pair_by_link, together


def test_identity_key_change_blocks_sending_until_reverified(relay, people):
    alice, bob, mallory = people("alice", "bob", "mallory")
    mint(relay.url, alice, bob, mallory)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    bob_code = alice.json("verify", "bob")["safety_code"]
    alice.run("verify", "bob", "--code", bob_code)  # as if bob had read it out

    # Someone else answers a new invitation that alice meant for "bob" (a re-pairing: she
    # says so with --replace, as there is no terminal to ask her on).
    link = alice.json("invite", "--for", "bob", "--replace")["link"]
    mallory.run("accept", link, "--name", "alice")
    taken = alice.run("inbox", expect=13)  # 13: it printed an alert
    assert taken.stdout == "no new messages\n"  # the alias existed: a re-pairing, not a new contact
    assert "ALERT: bob: key-changed: re-paired by link" in taken.stderr
    (contact,) = alice.json("contacts")
    assert (contact["alias"], contact["verified"], contact["key_changed"]) == ("bob", False, True)
    assert contact["alerts"] == ["key-changed"]

    # A wrong code (here: the old bob's) is refused and changes nothing; sending stays blocked.
    refused, mallory_view = together(
        alice.start("verify", "bob", "--code", bob_code),
        mallory.start("verify", "alice", "--json"),
        expect=None,
    )
    assert refused.returncode == 9
    assert refused.error == (
        "burner: the safety code does not match 'bob''s: someone may be in the middle; "
        "do not trust this contact"
    )
    mallory_code = mallory_view.json()["safety_code"]
    assert mallory_code != bob_code
    blocked = alice.run("send", "bob", "are you still you?", expect=9)
    assert blocked.error == (
        "burner: bob's identity key changed since you paired: compare safety codes "
        "('burner verify bob') and confirm with 'burner verify bob --code CODE'"
    )
    assert blocked.stdout == ""
    # Nothing was stored or queued; the history says the contact is on alert.
    assert alice.json("history", "bob") == [
        {"type": "alert", "contact": "bob", "alerts": ["key-changed", "code-mismatch"]}
    ]

    confirmed = alice.run("verify", "bob", "--code", mallory_code)
    assert confirmed.stdout == "bob is verified: the safety codes match\n"
    sent = alice.json("send", "bob", "verified again")
    assert sent["status"] == "delivered"
    mallory_got, bob_got = together(mallory.start("inbox", "--json"), bob.start("inbox", "--json"))
    assert [m["text"] for m in mallory_got.json()] == ["verified again"]
    assert bob_got.json() == []  # the old bob's session is gone


# In `make soak` (CI runs it), to keep `make test` under 2 minutes; the same
# check in one process: tests/integration/test_burning.py.
@pytest.mark.slow
def test_expired_burner_burns_itself_on_its_next_start(relay, people):
    alice, bob = people("alice", "bob")
    minted = alice.run("new", "alice", "--relay", relay.url, "--expires", "6s", "--json").json()
    mint(relay.url, bob)
    pair_by_link(bob, alice, inviter_calls="alice", acceptor_calls="bob")
    time.sleep(max(0.0, minted["expires_at"] + 0.1 - time.time()))

    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(minted["expires_at"]))
    burned = alice.run("send", "bob", "too late", expect=5)
    assert burned.error == (
        f"burner: burner 'alice' expired at {stamp}; it has burned itself "
        "(its contacts were told, its relay queues and files are gone)"
    )
    assert burned.stdout == ""
    assert files_under(alice.home) == []
    assert alice.json("list") == []
    # Its contact took the notice: alice is burned there.
    got = bob.json("inbox")
    assert [(e["contact"], e["kind"]) for e in got if e["type"] == "event"] == [("alice", "burned")]
