"""Burning: nothing readable left behind, relay queues deleted, an interrupted burn completes."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest

from burnerkit.app.burning import BURN_STEPS, ENV_KILL_AFTER, JOURNAL_BUCKET
from burnerkit.errors import VaultLockedError
from burnerkit.vault import Vault
from burnerkit.vault.format import open_burn_journal
from tests.e2e.helpers import (
    Person,
    burn_marker,
    files_containing,
    files_under,
    is_burning,
    mint,
    pair_by_link,
    queue_ids,
    relay_files_bytes,
    spellings_of,
    together,
)
from tests.examiner.test_device_copy import opened_canaries, record_keys


def _queue_rows(store: Path) -> dict[bytes, tuple[bytes, ...]]:
    """Every queue row of the relay's store, by recipient id."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT recipient_id, sender_id, recipient_key, queue_key FROM queues").fetchall()
    finally:
        db.close()
    return {bytes(row[0]): tuple(bytes(value) for value in row) for row in rows}


def test_canary_absent_from_every_file_after_delete_and_after_burn(relays, people):
    relay = relays.start()
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    token = os.urandom(8).hex()
    shown_to_bob, burned_for_bob, shown_to_alice, burned_for_alice = (
        f"canary-{token}-{what}"
        for what in ("shown-to-bob", "read-once-by-bob", "shown-to-alice", "read-once-by-alice")
    )
    canaries = [shown_to_bob, burned_for_bob, shown_to_alice, burned_for_alice]

    link = alice.json("invite", "--for", "bob")["link"]
    before = _queue_rows(relay.store_path)
    bob.run("accept", link, "--name", "alice")
    bob_queues = {rid: row for rid, row in _queue_rows(relay.store_path).items() if rid not in before}
    assert len(bob_queues) == 1  # the queue bob receives alice's messages on
    alice.run("inbox")

    alice.run("send", "bob", shown_to_bob)
    alice.run("send", "bob", burned_for_bob, "--disappear", "read")
    got = bob.inbox()
    assert [(m["text"], m["burn_on_read"]) for m in got] == [(shown_to_bob, False), (burned_for_bob, True)]
    bob.run("send", "alice", shown_to_alice, "--disappear", "off")
    bob.run("send", "alice", burned_for_alice, "--disappear", "read")
    got = alice.inbox()
    assert [(m["text"], m["burn_on_read"]) for m in got] == [
        (shown_to_alice, False),
        (burned_for_alice, True),
    ]

    # The burn-on-read messages are gone from both sides; the shown ones are kept (sealed).
    alice_history, bob_history = together(
        alice.start("history", "bob", "--json"), bob.start("history", "alice", "--json")
    )
    assert [(e["direction"], e["text"]) for e in alice_history.json()] == [
        ("out", shown_to_bob),
        ("in", shown_to_alice),
    ]
    assert [(e["direction"], e["text"]) for e in bob_history.json()] == [
        ("in", shown_to_bob),
        ("out", shown_to_alice),
    ]

    # No file of either burner, and no file of the relay, holds a canary in any spelling.
    for person in (alice, bob):
        names = {path.name for path in files_under(person.home)}
        assert "vault.sqlite" in names
        assert "vault.key" in names
        assert list(files_containing(person.home, canaries)) == [], person
    for name, data in relay_files_bytes(relay.store_path).items():
        for canary in canaries:
            assert not any(spelling in data for spelling in spellings_of(canary)), (name, canary)

    # Bob burns: his directory is gone, nothing of it is left, the relay forgets his queue.
    queues_before = queue_ids(relay.store_path)
    burned = bob.json("burn", "--yes")
    assert burned == {
        "burned": "bob",
        "queues_deleted": 1,
        "queues_failed": 0,
        "notices_sent": 1,
        "notices_failed": 0,
    }
    assert not bob.directory.exists()
    assert files_under(bob.home) == []
    listed = bob.run("list")
    assert listed.stdout == f"no burners in {bob.home}\n"
    assert bob.json("list") == []
    queues_after = queue_ids(relay.store_path)
    assert queues_after == queues_before - set(bob_queues)
    assert len(queues_after) == len(queues_before) - 1

    # Once the relay has closed its store (a checkpoint), not a byte of bob's queue is on its disk.
    # (While it runs too: DEL is checkpointed out of the WAL, see the test below.)
    relay.stop()
    files = relay_files_bytes(relay.store_path)
    assert files
    for name, data in files.items():
        for canary in canaries:
            assert not any(spelling in data for spelling in spellings_of(canary)), (name, canary)
        for row in bob_queues.values():
            for value in row:
                assert value not in data, (name, value.hex())
    log = relay.log_text() + relay.stdout_text()
    assert log
    for canary in canaries:
        assert canary not in log


def test_burned_queue_ids_leave_the_running_relays_files(relays, people):
    relay = relays.start()
    (bob,) = people("bob")
    mint(relay.url, bob)
    bob.json("invite", "--for", "alice")  # two queues on the relay, bob's: the invitation's and its link's
    rows = list(_queue_rows(relay.store_path).values())
    assert len(rows) == 2
    assert bob.json("burn", "--yes")["queues_deleted"] == 2
    assert _queue_rows(relay.store_path) == {}
    for name, data in relay_files_bytes(relay.store_path).items():
        for value in (value for row in rows for value in row):
            assert value not in data, (name, value.hex())


def test_burn_deletes_the_relay_queues(relay, people):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    start = queue_ids(relay.store_path)
    link = alice.json("invite", "--for", "bob")["link"]
    made = queue_ids(relay.store_path) - start  # the invitation's queue and its short link's
    bob.run("accept", link, "--name", "alice")
    alice.run("inbox")  # the link's queue stays alice's until the invitation would expire
    alice_queues = made & queue_ids(relay.store_path)
    bob.json("invite", "--for", "carol")  # a pending invitation: two more queues of bob's
    bob_queues = queue_ids(relay.store_path) - start - made
    assert (len(made), len(alice_queues), len(bob_queues)) == (2, 2, 3)

    assert bob.json("burn", "--yes") == {
        "burned": "bob",
        "queues_deleted": 3,
        "queues_failed": 0,
        "notices_sent": 1,
        "notices_failed": 0,
    }
    assert queue_ids(relay.store_path) - start == alice_queues
    assert files_under(bob.home) == []
    # What alice sends now finds no queue: the relay says so and nothing waits for bob.
    refused = alice.run("send", "bob", "anyone there?", expect=6)
    assert refused.error.startswith(
        "burner: bob's relay no longer has their queue (they may have burned their burner)"
    )


def test_interrupted_burn_completes_on_next_start(relay, people):
    (alice,) = people("alice")
    mint(relay.url, alice)
    burn_marker(alice.directory).touch()  # what a burn killed after its first step leaves
    resumed = alice.run("inbox", expect=3)
    assert resumed.error == "burner: burner 'alice' was being burned; the burn is now complete"
    assert resumed.stdout == ""
    assert not alice.directory.exists()
    assert files_under(alice.home) == []
    assert alice.json("list") == []
    gone = alice.run("inbox", expect=3)
    assert gone.error == f"burner: no burner in {alice.home}: make one with 'burner new NAME'"


# In `make soak` (CI runs it): a kill -9 after each of the burn's steps: a fault run.
@pytest.mark.slow
def test_burn_killed_at_each_step_completes_on_next_start(relay, people):
    """kill -9 after each step of §17.7 (the test-only hook): the next start finishes the burn."""
    carol, *victims = people("carol", *(f"victim{n}" for n in range(len(BURN_STEPS))))
    others = queue_ids(relay.store_path)  # the shared relay's, of earlier tests
    mint(relay.url, carol, *victims)
    for victim in victims:
        pair_by_link(carol, victim, inviter_calls=victim.name, acceptor_calls="carol")
    before = queue_ids(relay.store_path) - others
    burning = together(
        *(
            victim.start("burn", "--yes", env={ENV_KILL_AFTER: step})
            for victim, step in zip(victims, BURN_STEPS, strict=True)
        ),
        expect=-signal.SIGKILL,
    )
    assert len(burning) == len(BURN_STEPS)
    for victim, step in zip(victims, BURN_STEPS, strict=True):
        assert is_burning(victim.directory), step
        # Only a burn killed right after its journal still has its key; from the key step
        # on, the vault opens for nobody.
        assert _locked(victim) == (step != "journal"), step
    resumed = together(*(victim.start("inbox") for victim in victims), expect=3)
    for victim, outcome in zip(victims, resumed, strict=True):
        # The journal holds the name: even with the key gone, the burn says whose it was.
        assert outcome.error == f"burner: burner '{victim.name}' was being burned; the burn is now complete"
        assert files_under(victim.home) == [], victim
        assert not victim.directory.exists()
    # Carol heard from each exactly once, and stops using their queues.
    got = carol.json("inbox")
    burned = sorted(item["contact"] for item in got if item["type"] == "event" and item["kind"] == "burned")
    assert burned == sorted(victim.name for victim in victims)
    contacts = {view["alias"]: view["burned"] for view in carol.json("contacts")}
    assert contacts == {victim.name: True for victim in victims}
    # Every queue of the victims is gone, and carol's for them too: only the short links'
    # queues of carol's invitations stay, until those invitations would have expired (§17.2).
    left = queue_ids(relay.store_path) - others
    assert left < before
    assert len(left) == len(victims)


def _locked(person: Person) -> bool:
    try:
        Vault.open(person.directory, person.passphrase).close()
    except VaultLockedError:
        return True
    return False


# In `make soak` (CI runs it), to keep `make test` under 2 minutes; the same
# check in one process: tests/integration/test_burning.py (the contact's side).
@pytest.mark.slow
def test_burn_notice_marks_the_contact_burned_and_erases_the_conversation_when_asked(relay, people):
    alice, bob, carol = people("alice", "bob", "carol")
    mint(relay.url, alice, bob, carol)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    pair_by_link(carol, bob, inviter_calls="bob", acceptor_calls="carol")
    alice.run("send", "bob", "kept by alice")
    carol.run("send", "bob", "erased at carol")
    assert sorted(bob.texts()) == ["erased at carol", "kept by alice"]
    bob.run("send", "alice", "to alice")
    bob.run("send", "carol", "to carol")

    burned = bob.json("burn", "--yes", "--erase-conversations")
    assert (burned["notices_sent"], burned["notices_failed"]) == (2, 0)

    # Each contact takes the notice: the contact is burned, shown so everywhere.
    for person in (alice, carol):
        got = person.json("inbox")
        events = [(item["contact"], item["kind"]) for item in got if item["type"] == "event"]
        assert events == [("bob", "burned")], person
        # bob's last message, unread, went with the conversation it asked to erase.
        assert [item for item in got if item["type"] == "message"] == []
        (view,) = person.json("contacts")
        assert (view["alias"], view["burned"], view["safety_code"]) == ("bob", True, "")
        listed = person.run("contacts").stdout
        assert listed.startswith("bob  [BURNED]"), listed
        # Nothing is sent to a burned contact: a typed error, exit 9, nothing queued.
        refused = person.run("send", "bob", "still there?", expect=9)
        assert refused.error.startswith(
            "burner: bob burned their burner: nothing can be sent to them any more"
        )
    # bob asked to erase the conversations: both sides' copies are gone.
    assert alice.json("history", "bob") == []
    assert carol.json("history", "bob") == []
    # A second inbox shows nothing new: the notice is taken once.
    assert [item for item in alice.json("inbox") if item["type"] == "event"] == []


def test_burn_without_erase_keeps_the_contacts_conversation(relay, people):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    alice.run("send", "bob", "remember this")
    assert bob.texts() == ["remember this"]
    assert bob.json("burn", "--yes")["notices_sent"] == 1
    alice.run("inbox")
    assert [(e["direction"], e["text"]) for e in alice.json("history", "bob")] == [("out", "remember this")]
    (view,) = alice.json("contacts")
    assert view["burned"] is True


def test_no_canary_and_nothing_a_border_copy_opens_during_and_after_burn(relay, people, tmp_path):
    """A burn killed half way (its journal too), then done: no canary; a copy from before opens nothing."""
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    border = tmp_path / "border"
    shutil.copytree(bob.directory, border)  # the border copy, at T
    token = os.urandom(8).hex()
    canaries = [f"canary-{token}-{what}" for what in ("received", "sent")]
    alice.run("send", "bob", canaries[0])
    assert bob.texts() == [canaries[0]]
    bob.run("send", "alice", canaries[1])
    directory = bob.directory

    # Killed after its notices: the journal is the marker; the key is gone.
    bob.run("burn", "--yes", env={ENV_KILL_AFTER: "notices"}, expect=-signal.SIGKILL)
    mid = {path.name: path.read_bytes() for path in files_under(directory)}
    journal = [name for name in mid if not name.startswith("vault.")]
    assert len(journal) == 1
    sealed = mid[journal[0]]
    # Padded to a power of two of at least 64 KiB: the size does not count the contacts.
    assert len(sealed) == 34 + 12 + JOURNAL_BUCKET + 16
    assert list(files_containing(bob.home, canaries)) == []
    # The passphrase opens the journal (what a seizure now learns, §17.7), and it holds no canary.
    body = open_burn_journal(sealed, bob.passphrase)
    assert not any(spelling in body for canary in canaries for spelling in spellings_of(canary))
    with pytest.raises(VaultLockedError):
        Vault.open(directory, bob.passphrase)  # the vault key is gone
    # The border copy and the passphrase open nothing written after T in any file of the burn.
    keys = record_keys((border / "vault.key").read_bytes(), bob.passphrase)
    assert keys
    assert opened_canaries([mid], keys, canaries) == set()

    resumed = bob.run("inbox", expect=3)
    assert resumed.error == "burner: burner 'bob' was being burned; the burn is now complete"
    assert files_under(bob.home) == []
    got = alice.json("inbox")
    assert [(e["contact"], e["kind"]) for e in got if e["type"] == "event"] == [("bob", "burned")]
