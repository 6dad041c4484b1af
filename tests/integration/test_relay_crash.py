"""Kill -9 the relay and restart it on the same SQLite file: nothing it acknowledged is lost.

BRIEF §5 ("relay kill -9 at each step of receive, store, ack, deliver, delete"),
docs/protocol.md §14.8 (durability, idempotency). The relay runs as a subprocess; we
SIGKILL it (no handler runs, no checkpoint, no close) and start it again on the same
port and the same SQLite file. The clients are the real
:class:`~burnerkit.relay.client.RelayClient`: they reconnect, resubscribe and retry
sends with the same ``send_id``.

What this proves and what it does not: a process crash at any moment loses no message
whose SEND was answered OK, and a retried SEND is stored once. SIGKILL leaves the page
cache intact, so this does not test power loss (that is ``synchronous=FULL``'s job).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from burnerkit.errors import RelayError, RelayTimeoutError
from burnerkit.relay.client import QueueCredentials, ReceivedMessage, RelayClient
from burnerkit.relay.protocol import Send, decode_client_frame
from tests.integration.harness import (
    Dice,
    Recorder,
    RelayProcess,
    Relays,
    TcpProxy,
    client,
    received,
    recording_client,
)

#: Rounds, messages per round, kills per round: 3 rounds of 70 messages and 2 kills each.
ROUNDS = 3
MESSAGES = 70
KILLS_PER_ROUND = 2
SEED = b"burnerkit relay kill -9"


def number_of(body: bytes) -> int:
    _, number = body.decode().split(":")
    return int(number)


@dataclass
class Round:
    acknowledged: list[int] = field(default_factory=list)  #: send() returned: the relay said OK
    unacknowledged: list[int] = field(default_factory=list)  #: send() raised
    delivered: list[int] = field(default_factory=list)  #: every delivery, duplicates included
    msg_ids: dict[int, set[bytes]] = field(default_factory=dict)  #: the relay's ids of each number
    kills: int = 0


async def _writer(sender: RelayClient, creds: QueueCredentials, index: int, state: Round) -> None:
    for number in range(MESSAGES):
        try:
            await sender.send(creds.sender_id, f"{index}:{number}".encode())
        except RelayError:
            state.unacknowledged.append(number)
        else:
            state.acknowledged.append(number)


async def _reader(recipient: RelayClient, creds: QueueCredentials, state: Round) -> None:
    await recipient.subscribe(creds)
    while True:
        event = await recipient.next_delivery(None)
        assert isinstance(event, ReceivedMessage), event
        state.delivered.append(number_of(event.body))
        state.msg_ids.setdefault(number_of(event.body), set()).add(event.msg_id)
        with contextlib.suppress(RelayError):  # not deleted, then: it comes again after the reconnect
            await recipient.ack(creds, event.msg_id)


async def _killer(relay: RelayProcess, dice: Dice, state: Round) -> None:
    """Kill -9 once the writer passes each of a few seeded thresholds, after a seeded delay."""
    thresholds = sorted(dice.sample(range(5, MESSAGES - 5), KILLS_PER_ROUND))
    for threshold in thresholds:
        while len(state.acknowledged) + len(state.unacknowledged) < threshold:
            await asyncio.sleep(0.001)
        await asyncio.sleep(dice.uniform(0, 0.02))
        await relay.akill()
        state.kills += 1
        await asyncio.sleep(dice.uniform(0, 0.1))
        await relay.astart()


@pytest.mark.asyncio
@pytest.mark.parametrize("write_behind", ["0", "0.25"], ids=["write-through", "write-behind"])
async def test_relay_kill_9_loses_no_acknowledged_message(
    relays: Relays, record_property: Callable[[str, object], None], write_behind: str
) -> None:
    """Every message the relay acknowledged comes through, once after dedupe, in order.

    Write-through (every message written before it is delivered): a retried SEND never
    makes a second copy, so each number has exactly one msg id. Write-behind (the relay's
    default, §14.8): a message delivered from memory and lost with the process before its
    write comes again after its sender's retry, as a second copy; so a number may have as
    many msg ids as its SEND went out, never more.
    """
    relay = relays.start("--write-behind", write_behind)
    dice = Dice(SEED)
    ids_by_body: dict[bytes, set[bytes]] = {}
    totals = {"kills": 0, "acknowledged": 0, "unacknowledged": 0, "delivered": 0, "duplicates": 0}
    recorder = Recorder()
    async with (
        client(relay.url, timeout=30.0) as recipient,
        recording_client(relay.url, recorder, timeout=30.0, backoff=(0.02, 0.2)) as sender,
    ):
        for index in range(ROUNDS):
            creds = await recipient.create_queue()
            state = Round()
            reader = asyncio.create_task(_reader(recipient, creds, state))
            killer = asyncio.create_task(_killer(relay, dice, state))
            await _writer(sender, creds, index, state)
            await killer
            # Wait until everything acknowledged has come through (or fail after 30 s).
            deadline = time.monotonic() + 30
            while not set(state.acknowledged) <= set(state.delivered):
                assert time.monotonic() < deadline, sorted(set(state.acknowledged) - set(state.delivered))
                assert not reader.done(), reader
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # a last redelivery, if any, is counted too
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader

            missing = set(state.acknowledged) - set(state.delivered)
            unknown = set(state.delivered) - set(range(MESSAGES))
            assert missing == set()
            assert unknown == set()
            first_seen = list(dict.fromkeys(state.delivered))
            # After dedupe, each exactly once, in the order it was sent.
            assert first_seen == sorted(first_seen)
            if write_behind == "0":
                # A redelivery is the same stored message (same msg id); a retried SEND never
                # made a second copy (which would carry a second msg id).
                assert all(len(ids) == 1 for ids in state.msg_ids.values())
            for number, ids in state.msg_ids.items():
                ids_by_body[f"{index}:{number}".encode()] = ids
            assert state.kills == KILLS_PER_ROUND
            totals["kills"] += state.kills
            totals["acknowledged"] += len(state.acknowledged)
            totals["unacknowledged"] += len(state.unacknowledged)
            totals["delivered"] += len(state.delivered)
            totals["duplicates"] += len(state.delivered) - len(first_seen)
    await relay.astop()
    assert sum(run.returncode == -9 for run in relay.runs) == ROUNDS * KILLS_PER_ROUND
    assert count_messages(relay.store_path) == 0  # every one acknowledged by the reader, and deleted
    sent = [
        tx.command for tx in map(decode_client_frame, recorder.outgoing()) if isinstance(tx.command, Send)
    ]
    sends = Counter(command.send_id for command in sent)
    assert len(sends) == totals["acknowledged"] + totals["unacknowledged"]
    # Each copy the relay stored came from a SEND of its own (write-behind: a retry).
    transmissions = Counter(command.body for command in sent)
    assert all(len(ids) <= transmissions[body] for body, ids in ids_by_body.items())
    totals["second_copies"] = sum(len(ids) - 1 for ids in ids_by_body.values())
    totals["sends_retried"] = sum(count > 1 for count in sends.values())
    totals["relay_starts"] = len(relay.runs)
    print(f"\nkill -9 statistics: {totals}")
    for name, value in totals.items():
        record_property(name, value)


def count_messages(store: Path) -> int:
    with sqlite3.connect(store, timeout=5) as db:
        (count,) = db.execute("SELECT count(*) FROM messages").fetchone()
    db.close()
    assert isinstance(count, int)
    return count


@pytest.mark.asyncio
@pytest.mark.parametrize("acked_before_the_retry", [False, True], ids=["waiting", "already-acked"])
async def test_kill_9_between_store_and_ok_does_not_duplicate_after_retry(
    relays: Relays, acked_before_the_retry: bool
) -> None:
    """The relay stores a SEND and answers OK; the OK never reaches the sender (a proxy
    swallows it); the relay is killed -9 and restarted; the client library retries with
    the same send_id and gets OK; the message exists once.

    Deterministic: the kill happens once the message is in the SQLite file and before
    the sender has seen any answer, which is the state "killed between store and OK" leaves.
    With ``acked_before_the_retry``, the recipient even fetches and acknowledges it
    (deleting it) before the retry: the send_id is still remembered, so it is not stored again.
    """
    relay = relays.start()
    async with (
        TcpProxy(lambda: relay.port) as proxy,
        client(relay.url) as recipient,
        client(proxy.url) as sender,
    ):
        creds = await recipient.create_queue()
        await sender.send(creds.sender_id, b"warm-up: the sender is connected")
        await recipient.subscribe(creds)
        warm_up = await received(recipient)
        await recipient.ack(creds, warm_up.msg_id)
        assert count_messages(relay.store_path) == 0

        proxy.swallow_answers()
        sending = asyncio.create_task(sender.send(creds.sender_id, b"exactly once"))
        await wait_for_messages(relay.store_path, 1)
        assert not sending.done()  # stored, and the sender has seen no OK
        if acked_before_the_retry:
            message = await received(recipient)
            assert message.body == b"exactly once"
            await recipient.ack(creds, message.msg_id)
            assert count_messages(relay.store_path) == 0
        await relay.akill()
        await relay.astart()
        await asyncio.wait_for(sending, 20)  # the retry, answered OK (a duplicate, not stored)

        assert count_messages(relay.store_path) == (0 if acked_before_the_retry else 1)
        # The recipient reconnected and resubscribed. Delivery is at least once, so it may
        # see the message before the kill and again after; it is one message, one msg id.
        deliveries = await all_deliveries(recipient)
        assert all(m.body == b"exactly once" for m in deliveries)
        assert len({m.msg_id for m in deliveries}) == (0 if acked_before_the_retry else 1)
        for message in deliveries:
            await recipient.ack(creds, message.msg_id)
        assert await all_deliveries(recipient) == []
        assert count_messages(relay.store_path) == 0
    await relay.astop()


async def all_deliveries(recipient: RelayClient, quiet: float = 0.5) -> list[ReceivedMessage]:
    """Every delivery until none comes for ``quiet`` seconds."""
    deliveries: list[ReceivedMessage] = []
    while True:
        try:
            event = await recipient.next_delivery(quiet)
        except RelayTimeoutError:
            return deliveries
        assert isinstance(event, ReceivedMessage), event
        deliveries.append(event)


async def wait_for_messages(store: Path, count: int) -> None:
    deadline = time.monotonic() + 10
    while await asyncio.to_thread(count_messages, store) != count:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
