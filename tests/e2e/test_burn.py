"""Burning: nothing readable left behind, relay queues deleted, an interrupted burn completes."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from tests.e2e.helpers import (
    burn_marker,
    files_containing,
    files_under,
    is_burning,
    killed,
    mint,
    queue_ids,
    relay_files_bytes,
    spellings_of,
    start_child,
    together,
)


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
    assert burned == {"burned": "bob", "queues_deleted": 1, "queues_failed": 0}
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

    assert bob.json("burn", "--yes") == {"burned": "bob", "queues_deleted": 3, "queues_failed": 0}
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


#: Where a burn is killed (kill -9): a patch for the child script.
KILL_POINTS = {
    # Marker written, relay queues deleted, vault intact.
    "before-shredding": """
from burnerkit.vault import Vault
Vault.destroy = lambda self: die()
""",
    # Header shredded (nothing readable any more), the database files still there.
    "after-shredding-the-header": """
import burnerkit.vault.vault as vault_module
real_shred_file = vault_module._shred_file
def shred_file(path, *, random):
    real_shred_file(path, random=random)
    if path.name == "vault.key":
        die()
vault_module._shred_file = shred_file
""",
    # Every file shredded, only the marker left.
    "before-removing-the-marker": """
import burnerkit.app.messenger as messenger_module
messenger_module.finish_burn = lambda home, directory: die()
""",
}


def test_burn_killed_at_each_step_completes_on_next_start(relay, people, tmp_path):
    names = [f"victim{n}" for n in range(len(KILL_POINTS))]
    victims = people(*names)
    mint(relay.url, *victims)
    children = [
        start_child(
            victim, patch + "\nasyncio.run(open_messenger().burn())\n", tmp_path / f"{victim.name}.py"
        )
        for victim, patch in zip(victims, KILL_POINTS.values(), strict=True)
    ]
    for child in children:
        killed(child)
    for victim in victims:
        assert is_burning(victim.directory), victim
    resumed = together(*(victim.start("inbox") for victim in victims), expect=3)
    for victim, outcome, point in zip(victims, resumed, KILL_POINTS, strict=True):
        # Once the header is shredded the name, sealed in the vault, is gone with it.
        what = f"burner '{victim.name}'" if point == "before-shredding" else "the burner"
        assert outcome.error == f"burner: {what} was being burned; the burn is now complete"
        assert files_under(victim.home) == [], victim
        assert not victim.directory.exists()


def test_burn_killed_before_deleting_queues_deletes_them_on_next_start(relay, people, tmp_path):
    (bob,) = people("bob")
    mint(relay.url, bob)
    before = queue_ids(relay.store_path)
    bob.json("invite", "--for", "alice")  # a pending invitation: its queue and its link's, on the relay
    bob_queues = queue_ids(relay.store_path) - before
    assert len(bob_queues) == 2
    patch = """
import burnerkit.app.messenger
async def delete_queues(connect, queues):
    die()
burnerkit.app.messenger.delete_queues = delete_queues
"""
    killed(start_child(bob, patch + "\nasyncio.run(open_messenger().burn())\n", tmp_path / "bob.py"))
    assert is_burning(bob.directory)
    bob.run("inbox", expect=3)  # the burn completes...
    assert not bob.directory.exists()
    assert queue_ids(relay.store_path) & bob_queues == set()  # ...and so should the queues' deletion
