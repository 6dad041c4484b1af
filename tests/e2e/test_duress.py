"""The duress passphrase through real ``burner`` processes (docs/protocol.md §17.11).

A coercer makes the owner type a passphrase into ``burner``; an examiner holds images of
the home from before and after. What the duress passphrase must give them: a plausible
burner of the same name, the real one's key gone first, and the same files touched as by
a normal unlock.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from burnerkit.app.home import Home
from burnerkit.errors import VaultLockedError
from burnerkit.vault import Vault
from tests.e2e.helpers import STEP_TIMEOUT, Person, mint, pair_by_link
from tests.integration.test_duress import snapshot, touched

DURESS = "the duress passphrase"


def roles(home: Path, alice: Person) -> tuple[Path, Path]:
    """Alice's real directory and her decoy's."""
    real = decoy = None
    for slot in Home(home).slots():
        try:
            Vault.open(slot, alice.passphrase).close()
            real = slot
        except VaultLockedError:
            decoy = slot
    assert real is not None
    assert decoy is not None
    return real, decoy


def alert_arrives(bob: Person) -> list[dict[str, object]]:
    """What ``bob inbox --json`` shows once something arrived (exit 13: an alert), polling."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        outcome = bob.run("inbox", "--json", "--wait", "1", expect=None)
        if outcome.returncode == 13 or time.monotonic() > deadline:
            break
        assert outcome.returncode == 0, outcome.describe()
        assert outcome.json() == [], outcome.describe()
    assert outcome.returncode == 13, outcome.describe()
    items: list[dict[str, object]] = outcome.json()
    return items


def test_duress_unlock_through_the_cli_opens_the_decoy_and_destroys_the_real_burner(relay, people):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    alice.run("send", "bob", "see you at the border")
    alice.run("duress", "alice", "--alert", "bob", env={"BURNER_DURESS_PASSPHRASE": DURESS})
    assert bob.texts() == ["see you at the border"]  # the alert key is never shown
    status = alice.json("duress", "alice", "--status")
    assert status == {"burner": "alice", "duress": True, "alerts": ["bob"], "stale": []}
    # The decoy is a burner like any other: the home now holds two, so commands name theirs.
    assert "1 burner that this passphrase does not open" in alice.run("list").stdout
    assert [c["alias"] for c in alice.json("contacts", "--burner", "alice")] == ["bob"]

    coerced = alice.run("contacts", "--burner", "alice", "--json", env={"BURNER_PASSPHRASE": DURESS})
    assert coerced.json() == []
    assert coerced.stderr == ""
    assert alice.run("history", "bob", "--burner", "alice", env={"BURNER_PASSPHRASE": DURESS}, expect=3).error

    refused = alice.run("contacts", "--burner", "alice", expect=4)
    assert "no burner named 'alice' opens with this passphrase" in refused.stderr
    # The alert goes out from a detached child of the coerced command; bob sees it, and only it.
    items = alert_arrives(bob)
    assert [(i["type"], i.get("kind") or i.get("alerts")) for i in items] == [
        ("event", "duress"),
        ("alert", ["duress"]),
    ], items
    (contact,) = bob.json("contacts")
    assert contact["alias"] == "alice"
    assert contact["alerts"] == ["duress"]
    assert not contact["burned"]


def test_duress_and_normal_cli_unlocks_touch_the_same_set_of_files(relay, people, tmp_path):
    """Two images of the home, before and after ``burner contacts``: the same changes either way."""
    (alice,) = people("alice")
    alice.start(
        "new",
        "alice",
        "--relay",
        relay.url,
        "--expires",
        "1d",
        "--duress",
        env={"BURNER_DURESS_PASSPHRASE": DURESS},
    ).finish()
    real, decoy = roles(alice.home, alice)
    seen = {}
    for passphrase, opened in ((alice.passphrase, real), (DURESS, decoy)):
        copy = tmp_path / ("normal" if opened == real else "duress")
        shutil.copytree(alice.home, copy)
        before = snapshot(copy)
        alice.run(
            "contacts", "--burner", "alice", env={"BURNER_HOME": str(copy), "BURNER_PASSPHRASE": passphrase}
        )
        other = decoy if opened == real else real
        seen[opened == real] = touched(before, snapshot(copy), {opened.name: "opened", other.name: "other"})
    assert seen[True] == seen[False]
    assert ("other", "vault.key", "rewritten") in seen[True]
