"""``Messenger.debrief()`` (docs/protocol.md §17.10): every anomaly, never content, never pruned.

The clone scenario through the real CLI is tests/e2e/test_clone.py; here the report's
shape: every :class:`EventKind` counted without the debrief knowing it by name, one line
per contact, removed contacts kept apart, and nothing lost to clearing alerts or removing
a contact.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from burnerkit.app.debrief import DEBRIEF_VERSION
from burnerkit.app.home import Home
from burnerkit.app.ledger import find_contact, record_event
from burnerkit.app.messenger import Messenger
from burnerkit.app.records import ALERT_KINDS, EventKind
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import SystemRandom
from tests.integration.harness import RelayProcess

PASS = "correct horse battery staple"
NOW = 1_800_000_000
CANARY = "the meeting is at the old mill"


def mint(tmp_path: Path, name: str, url: str) -> Messenger:
    return Messenger.create(
        Home(tmp_path / name), name, PASS, relay_url=url, lifetime=86400, kdf=FAST_TEST_KDF, clock=lambda: NOW
    )


@pytest.fixture
def alice(tmp_path: Path, shared_relay: RelayProcess) -> Iterator[Messenger]:
    """Alice with two contacts, Bob and Carol, each of whom has written (with a canary)."""
    url = shared_relay.url
    alice = mint(tmp_path, "alice", url)
    for name in ("bob", "carol"):
        peer = mint(tmp_path, name, url)
        link = asyncio.run(alice.invite(name)).link
        asyncio.run(peer.accept(link, "alice"))
        asyncio.run(peer.send("alice", CANARY))
        assert asyncio.run(alice.receive()).new_contacts == [name]
        peer.close()
    yield alice
    alice.close()


def record(messenger: Messenger, alias: str, kind: EventKind, detail: str) -> None:
    with messenger._vault.transaction() as tx:
        contact_id = find_contact(tx, alias).contact_id if alias else b""
        record_event(tx, SystemRandom(), contact_id, kind, detail, NOW)


def test_debrief_counts_every_event_kind_without_knowing_it(alice: Messenger) -> None:
    assert alice.debrief().events == []  # pairing and reading are not anomalies
    for kind in EventKind:
        record(alice, "bob", kind, f"a {kind.value}")
    record(alice, "carol", EventKind.GAP, "messages 2-3 missing")
    record(alice, "", EventKind.ABANDONED, "a delivery on a queue no longer in use")

    report = alice.debrief()
    assert report.kinds == {kind.value: 1 for kind in EventKind} | {"gap": 2, "abandoned": 2}
    assert [c.contact for c in report.contacts] == ["", "bob", "carol"]
    bob = report.contacts[1]
    assert bob.counts == {kind.value: 1 for kind in EventKind}
    assert bob.alerts == len(ALERT_KINDS)
    assert bob.summary.startswith("bob: 1 gap, 1 reordered, 1 fork, ")
    assert report.contacts[0].summary == "this burner: 1 abandoned"
    assert report.contacts[2].summary == "carol: 1 gap"
    assert report.alerts == len(ALERT_KINDS)

    document = report.to_json()
    assert (document["type"], document["version"]) == ("debrief", DEBRIEF_VERSION)
    assert document["burner"] == "alice"
    assert document["total"] == len(EventKind) + 2
    assert {e["kind"] for e in document["events"]} == {kind.value for kind in EventKind}
    assert CANARY not in json.dumps(document)


def test_clearing_alerts_and_removing_a_contact_keep_its_events_in_the_debrief(alice: Messenger) -> None:
    record(alice, "bob", EventKind.FORK, "at 4: sequence-reused")
    record(alice, "carol", EventKind.DISPLACED, "another device subscribed to our queue")
    before = alice.debrief()

    alice.clear_alerts("bob")
    assert alice.contact("bob").alerts == []
    assert alice.debrief() == before

    asyncio.run(alice.remove_contact("carol"))
    after = alice.debrief()
    assert [(e.contact, e.kind) for e in after.events] == [
        (e.contact if e.contact != "carol" else "removed contact 1", e.kind) for e in before.events
    ]
    assert [(c.contact, c.removed, c.counts) for c in after.contacts] == [
        ("bob", False, {"fork": 1}),
        ("removed contact 1", True, {"displaced": 1}),
    ]
