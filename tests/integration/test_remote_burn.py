"""Remote burn orders against a real relay process (docs/protocol.md §17.9).

Alice's burner carries the office's issuer key and so owns an order queue; each attack
puts one order on that queue exactly as the office would (sealed to Alice's order key,
SENT with the order address's sender key, which the relay answers OK as any SEND), then
Alice receives. A refused order leaves Alice's burner as it was but for one
``forged-order`` event naming why, and is acknowledged (the queue is empty after it);
only a valid order reaches ``Messenger.burn``, which is counted here (patched) where
the burner must survive to be attacked again, and real elsewhere.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from burnerkit.app.home import Home
from burnerkit.app.issuer import (
    REFUSALS,
    BurnOrder,
    IssuerKeyPair,
    OrderAddress,
    Verdict,
    load_record,
    seal_order,
    send_order,
)
from burnerkit.app.messenger import Messenger
from burnerkit.app.records import Contact
from burnerkit.app.views import BurnReport
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import BurnOrderedError, RelayRejectedError
from burnerkit.relay.client import ReceivedMessage, RelayClient
from burnerkit.relay.protocol import MAX_BODY_SIZE, ErrorCode
from tests.integration.harness import RelayProcess

PASS = "correct horse battery"
NOW = 1_900_000_000.0
DAY = 86400
RNG = SystemRandom()

Alice = tuple[Messenger, OrderAddress]


def mint(root: Path, name: str, url: str) -> Messenger:
    return Messenger.create(
        Home(root / name), name, PASS, relay_url=url, lifetime=30 * DAY, kdf=FAST_TEST_KDF, clock=lambda: NOW
    )


def reopen(messenger: Messenger) -> Messenger:
    """The same burner in a new run (a new process would do the same)."""
    messenger.close()
    return Messenger.open(messenger.home, messenger.name, PASS, clock=lambda: NOW)


def deliver(address: OrderAddress, body: bytes) -> None:
    """SEND ``body`` to the order queue as the holder of the order address would."""

    async def go() -> None:
        async with RelayClient(address.relay_url, rng=RNG, timeout=10.0) as client:
            await client.send(
                address.sender_id, body, send_id=RNG.random_bytes(16), sender_key=address.sender_key
            )

    asyncio.run(go())


def forged_events(messenger: Messenger) -> list[str]:
    return [e.detail for e in messenger.events() if e.kind == "forged-order"]


@pytest.fixture
def office() -> IssuerKeyPair:
    return IssuerKeyPair.generate(RNG)


@pytest.fixture
def alice(
    tmp_path: Path, shared_relay: RelayProcess, office: IssuerKeyPair
) -> Iterator[tuple[Messenger, OrderAddress]]:
    messenger = mint(tmp_path, "alice", shared_relay.url)
    address = asyncio.run(messenger.carry_issuer(office.public))
    yield messenger, address
    messenger.close()


@pytest.fixture
def burns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Calls of ``Messenger.burn``, which leaves the burner in place: a burn cut short."""
    calls: list[str] = []

    async def burn(self: Messenger) -> BurnReport:
        calls.append(self.name)
        return BurnReport(self.name, 0, 0)

    monkeypatch.setattr(Messenger, "burn", burn)
    return calls


def assert_ignored(messenger: Messenger, verdict: Verdict) -> None:
    """The order was refused for ``verdict``'s reason, acknowledged, and changed nothing else."""
    result = asyncio.run(messenger.receive(wait=10.0))
    assert [(e.kind, e.detail) for e in result.events] == [("forged-order", REFUSALS[verdict])]
    assert messenger.info().name == "alice"  # still there, still opens
    # Acknowledged: nothing waits on the order queue any more, so a second receive is quiet.
    assert asyncio.run(messenger.receive(wait=1.0)).events == []
    assert forged_events(messenger) == [REFUSALS[verdict]]


def test_forged_burn_order_is_ignored(alice: Alice, burns: list[str]) -> None:
    messenger, address = alice
    rogue = IssuerKeyPair.generate(RNG)  # holds the order address (it leaked), not the issuer key
    order = BurnOrder.issue(rogue, address.order_id, now=NOW, rng=RNG)
    asyncio.run(send_order(address, order, RNG, timeout=10.0))  # the relay says OK: the sender learns nothing
    assert_ignored(messenger, Verdict.FORGED)
    deliver(address, RNG.random_bytes(MAX_BODY_SIZE))  # noise of the right size
    again = asyncio.run(messenger.receive(wait=10.0))
    assert [(e.kind, e.detail) for e in again.events] == [("forged-order", REFUSALS[Verdict.FORGED])]
    assert burns == []


def test_misaddressed_burn_order_is_ignored(
    tmp_path: Path, shared_relay: RelayProcess, office: IssuerKeyPair, alice: Alice, burns: list[str]
) -> None:
    messenger, address = alice
    bob = mint(tmp_path, "bob", shared_relay.url)
    try:
        bobs = asyncio.run(bob.carry_issuer(office.public))
    finally:
        bob.close()
    # A genuine order for Bob, opened by whoever holds Bob's order key and sealed to Alice's.
    order = BurnOrder.issue(office, bobs.order_id, now=NOW, rng=RNG)
    deliver(address, seal_order(order, address.order_key, RNG))
    assert_ignored(messenger, Verdict.MISADDRESSED)
    assert burns == []


@pytest.mark.parametrize(
    ("issued_at", "lifetime"),
    [
        (NOW - 8 * DAY, 7 * DAY),  # past its not-after
        (NOW + 3600, 7 * DAY),  # dated an hour ahead of the burner's time
    ],
    ids=["expired", "future"],
)
def test_stale_burn_order_is_ignored(
    alice: Alice, office: IssuerKeyPair, burns: list[str], issued_at: float, lifetime: int
) -> None:
    messenger, address = alice
    order = BurnOrder.issue(office, address.order_id, now=issued_at, rng=RNG, lifetime=lifetime)
    asyncio.run(send_order(address, order, RNG, timeout=10.0))
    assert_ignored(messenger, Verdict.STALE)
    assert burns == []


def test_stale_burn_order_is_ignored_with_the_clock_set_back(
    alice: Alice, office: IssuerKeyPair, burns: list[str]
) -> None:
    # The burner's time is its floor (Messenger.now()): a clock turned back after a run
    # does not make an expired order fresh again.
    messenger, address = alice
    order = BurnOrder.issue(office, address.order_id, now=NOW - 2 * DAY, rng=RNG, lifetime=DAY)
    messenger._clock = lambda: NOW - 2 * DAY + 60  # the device's clock, set back two days
    assert messenger.now() >= NOW
    asyncio.run(send_order(address, order, RNG, timeout=10.0))
    assert_ignored(messenger, Verdict.STALE)
    assert burns == []


def test_replayed_burn_order_is_ignored(alice: Alice, office: IssuerKeyPair, burns: list[str]) -> None:
    messenger, address = alice
    order = BurnOrder.issue(office, address.order_id, now=NOW, rng=RNG)
    captured = seal_order(order, address.order_key, RNG)
    deliver(address, captured)
    with pytest.raises(BurnOrderedError):
        asyncio.run(messenger.receive(wait=10.0))
    assert burns == ["alice"]
    # The burn was cut short. The relay drops the delivery it made and puts the captured
    # order back as a new message (a new msg_id): a replay of an order already accepted.
    record = load_record(messenger._vault.get)
    assert record is not None

    async def drop_and_replay() -> None:
        async with RelayClient(address.relay_url, rng=RNG, timeout=10.0) as client:
            await client.subscribe(record.queue)
            event = await client.next_delivery(timeout=10.0)
            assert isinstance(event, ReceivedMessage)
            assert event.body == captured
            await client.ack(record.queue, event.msg_id)

    asyncio.run(drop_and_replay())
    deliver(address, captured)
    messenger = reopen(messenger)
    try:
        assert_ignored(messenger, Verdict.REPLAYED)
        assert burns == ["alice"]
    finally:
        messenger.close()


def test_burn_order_redelivered_after_a_cut_short_burn_burns_again(
    alice: Alice, office: IssuerKeyPair, burns: list[str]
) -> None:
    # The same delivery again (the relay's msg_id of the accepted one) is not a replay:
    # the burn was cut short before its first step, and the next receive finishes it.
    messenger, address = alice
    deliver(
        address,
        seal_order(BurnOrder.issue(office, address.order_id, now=NOW, rng=RNG), address.order_key, RNG),
    )
    with pytest.raises(BurnOrderedError):
        asyncio.run(messenger.receive(wait=10.0))
    messenger = reopen(messenger)
    try:
        with pytest.raises(BurnOrderedError):
            asyncio.run(messenger.receive(wait=10.0))
        assert burns == ["alice", "alice"]
        assert forged_events(messenger) == []
    finally:
        messenger.close()


def test_valid_burn_order_burns_the_burner_once(alice: Alice, office: IssuerKeyPair) -> None:
    messenger, address = alice
    directory = messenger._directory
    asyncio.run(
        send_order(address, BurnOrder.issue(office, address.order_id, now=NOW, rng=RNG), RNG, timeout=10.0)
    )
    with pytest.raises(BurnOrderedError, match="burned by its issuer's order"):
        asyncio.run(messenger.receive(wait=10.0))
    assert not directory.exists()
    assert Home(messenger.home.root).count() == 0
    # The order queue went with it: a second order is refused by the relay (no such queue).
    with pytest.raises(RelayRejectedError) as refused:
        asyncio.run(
            send_order(
                address, BurnOrder.issue(office, address.order_id, now=NOW, rng=RNG), RNG, timeout=10.0
            )
        )
    assert refused.value.code == ErrorCode.AUTH


def test_order_queue_traffic_looks_like_a_contact_queue_at_the_relay(
    tmp_path: Path, shared_relay: RelayProcess, office: IssuerKeyPair, alice: Alice
) -> None:
    # What the relay stores of an order and of a message: queues made alike, bodies of one size.
    messenger, address = alice
    bob = mint(tmp_path, "bob", shared_relay.url)
    try:
        view = asyncio.run(messenger.invite("bob"))
        asyncio.run(bob.accept(view.link, "alice"))
        assert asyncio.run(messenger.receive(wait=10.0)).new_contacts == ["bob"]
        asyncio.run(
            send_order(
                address, BurnOrder.issue(office, address.order_id, now=NOW, rng=RNG), RNG, timeout=10.0
            )
        )
        asyncio.run(bob.send("alice", "hello"))
    finally:
        bob.close()
    record = load_record(messenger._vault.get)
    assert record is not None
    (contact_queue,) = [c.queue for c in _contacts(messenger)]
    db = sqlite3.connect(f"file:{shared_relay.store_path}?mode=ro", uri=True)
    try:
        rows = {
            bytes(rid): (len(rid), len(sid), len(rkey), len(qkey), len(skey), secured)
            for rid, sid, rkey, qkey, skey, secured in db.execute(
                "SELECT recipient_id, sender_id, recipient_key, queue_key, sender_key, sender_secured "
                "FROM queues"
            )
        }
        bodies = {
            bytes(rid): len(body) for rid, body in db.execute("SELECT recipient_id, body FROM messages")
        }
    finally:
        db.close()
    order_q, contact_q = record.queue.recipient_id, contact_queue.recipient_id
    assert rows[order_q] == rows[contact_q]
    assert rows[order_q][-1] == 1  # sender-secured, locked by the first SEND, as a contact's
    assert bodies[order_q] == bodies[contact_q] == MAX_BODY_SIZE


def _contacts(messenger: Messenger) -> list[Contact]:
    from burnerkit.app.ledger import all_contacts

    return all_contacts(messenger._vault)
