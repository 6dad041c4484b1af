"""Remote burn through the real ``burner`` command: an office's key, an order, a burner gone (§17.9)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.e2e.helpers import STEP_TIMEOUT, Follower, Person, queue_ids
from tests.integration.harness import RelayProcess


def office_and_burner(relay: RelayProcess, office: Person, alice: Person) -> tuple[str, str]:
    """The office makes its key; Alice mints a burner that carries it. (public key, order address file)."""
    office.home.mkdir(parents=True)
    key = str(office.home / "office.key")
    made = office.json("issuer", "new", "--out", key)
    assert made["public_key"].startswith("burner:ik1.")
    assert (office.home / "office.key").stat().st_mode & 0o077 == 0
    before = queue_ids(relay.store_path)
    order_file = str(alice.home.parent / "alice.order")
    minted = alice.mint(
        relay.url, "--issuer", made["public_key"], "--order-address", order_file, "--json"
    ).finish()
    address = minted.json()["order_address"]
    assert address.startswith("burner:oa1.")
    assert Path(order_file).read_text().strip() == address
    assert len(queue_ids(relay.store_path) - before) == 1  # the order queue
    return key, order_file


def test_valid_burn_order_burns_the_burner_once_through_the_cli(
    relay: RelayProcess, people: Callable[..., list[Person]]
) -> None:
    office, alice = people("office", "alice")
    key, order_file = office_and_burner(relay, office, alice)
    directory = alice.directory
    assert directory.exists()
    sent = office.run("issuer", "burn", "--key", key, "--to", order_file)
    assert "burn order sent" in sent.stdout
    burned = alice.run("inbox", expect=1)
    assert "burned by its issuer's order" in burned.error
    assert not directory.exists()
    assert alice.run("inbox", expect=3).error.startswith("burner: no burner")
    # Once: the order queue is gone with the burner, so the relay refuses a second order.
    again = office.run("issuer", "burn", "--key", key, "--to", order_file, expect=6)
    assert "AUTH" in again.error or "refused" in again.error


def test_forged_burn_order_is_ignored_through_the_cli(
    relay: RelayProcess, people: Callable[..., list[Person]]
) -> None:
    office, rogue, alice = people("office", "rogue", "alice")
    _, order_file = office_and_burner(relay, office, alice)
    rogue.home.mkdir(parents=True)
    rogue_key = str(rogue.home / "rogue.key")
    rogue.run("issuer", "new", "--out", rogue_key)
    # The rogue holds the order address, not the issuer's key: the relay takes the order as
    # it takes any message (the command says "sent"), and the burner ignores it.
    rogue.run("issuer", "burn", "--key", rogue_key, "--to", order_file)
    items = alice.json("inbox")
    assert [(i["type"], i["kind"]) for i in items] == [("event", "forged-order")]
    assert alice.directory.exists()
    # The burner's report to the office, sealed before it burns, holds the anomaly.
    report = alice.home.parent / "alice.report"
    alice.run("burn", "--yes", "--report-to", str(report))
    opened = json.loads(
        office.run("issuer", "open-report", "--key", str(office.home / "office.key"), str(report)).stdout
    )
    assert opened["burner"] == "alice"
    assert [e["kind"] for e in opened["events"]] == ["forged-order"]
    # Sealed to the office: the rogue's key does not open it.
    assert (
        "not sealed to this issuer"
        in rogue.run("issuer", "open-report", "--key", rogue_key, str(report), expect=2).error
    )


def test_valid_burn_order_burns_a_following_inbox(
    relay: RelayProcess, people: Callable[..., list[Person]]
) -> None:
    office, alice = people("office", "alice")
    key, order_file = office_and_burner(relay, office, alice)
    directory = alice.directory
    with Follower(alice) as follower:
        office.run("issuer", "burn", "--key", key, "--to", order_file)
        # It stops by itself: no Ctrl-C.
        assert follower.process.wait(timeout=STEP_TIMEOUT) == 1
        assert follower.process.stderr is not None
        errors = follower.process.stderr.read()
    assert "burned by its issuer's order" in errors
    assert "Traceback" not in errors
    assert not directory.exists()
