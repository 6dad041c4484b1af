"""The examiner at the relay's door: which queues travel together on one connection.

Issue 15 items 4 and 5, docs/protocol.md §14.13a, docs/threat-model.md (the network). A
real relay process on loopback, and between it and four burners a TCP proxy that keeps
each TCP connection's bytes exactly as the relay process read them. Over ``ws://`` the
relay protocol carries each command's queue id in the clear of the frame (§14.4), so
these bytes are the relay's own view of who asked for what on which connection: the view
of its operator, of whoever seizes it running, and of a tap on the link.

Alice pairs with bob, carol and dave, messages go both ways, alice follows (the loop of
``burner chat``) while they write, then she burns; in a second run the relay restarts while
she follows, and every connection comes back on its own. Every queue id on the wire is named by
the pair of people whose conversation it carries; the defence holds if no connection ever
names two conversations. The same run with one shared connection (the old behaviour, still
a setting) shows that the examination finds the link when it is there.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from burnerkit.app.connections import ConnectionPolicy
from burnerkit.app.home import Home
from burnerkit.app.ledger import all_contacts
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.relay.protocol import ClientTransmission, Sub, decode_client_frame
from tests.integration.harness import Capture, RelayProcess, Relays, TcpProxy

PASS = "correct horse battery"
CONTACTS = ("bob", "carol", "dave")
#: Generous: the wait ends as soon as the messages are in.
_ARRIVAL_LIMIT = 20.0
#: What a WebSocket client must send to open the connection (RFC 6455 §4.1), and nothing more.
_NEEDED_HEADERS = {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version"}

Conversation = frozenset[str]


@dataclass
class Wire:
    """One TCP connection as the relay read it: the HTTP upgrade, then the commands."""

    request: bytes
    commands: list[ClientTransmission]


@dataclass
class Run:
    """What the examiner holds after a run: the connections, and whose each queue id is."""

    wires: list[Wire]
    #: queue id (recipient or sender) -> the two people of the conversation it carries
    owners: dict[bytes, Conversation]


def client_messages(stream: bytes) -> tuple[bytes, list[bytes]]:
    """The upgrade request and the binary messages of a client's side of a WebSocket.

    Client frames are masked (RFC 6455 §5.3); control frames (close) carry no command.
    A connection cut in the middle of a frame keeps the messages before it.
    """
    head_end = stream.index(b"\r\n\r\n") + 4
    position, messages, partial = head_end, [], bytearray()
    while position + 2 <= len(stream):
        first, second = stream[position], stream[position + 1]
        length, position = second & 0x7F, position + 2
        if length == 126:
            length, position = int.from_bytes(stream[position : position + 2], "big"), position + 2
        elif length == 127:
            length, position = int.from_bytes(stream[position : position + 8], "big"), position + 8
        mask, position = stream[position : position + 4], position + 4
        data = stream[position : position + length]
        if len(data) < length:
            break
        position += length
        key = (mask * (length // 4 + 1))[:length]
        payload = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
        if first & 0x0F in (0x0, 0x2):
            partial += payload
            if first & 0x80:
                messages.append(bytes(partial))
                partial.clear()
    return stream[:head_end], messages


def subscribes(capture: Capture) -> bool:
    """Whether this connection has sent a SUB yet (so it had its HELLO: it connected)."""
    if b"\r\n\r\n" not in capture.up:
        return False
    return any(isinstance(tx.command, Sub) for tx in wire_of(capture).commands)


def wire_of(capture: Capture) -> Wire:
    request, messages = client_messages(bytes(capture.up))
    return Wire(request, [decode_client_frame(message) for message in messages])


def conversations(people: dict[str, Messenger]) -> dict[bytes, Conversation]:
    """Every queue id of every burner, named by the two people whose conversation it carries."""
    out: dict[bytes, Conversation] = {}
    for name, person in people.items():
        for contact in all_contacts(person._vault):
            pair = frozenset({name, contact.alias})
            out[contact.queue.recipient_id] = pair
            out[contact.queue.sender_id] = pair
            out[contact.peer.sender_id] = pair
    return out


async def until(condition: object, what: str) -> None:
    """Wait (never longer than the limit) until ``condition()`` holds."""
    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _ARRIVAL_LIMIT
    while not condition():
        assert loop.time() < deadline, f"{what} did not happen"
        await asyncio.sleep(0.02)


async def scenario(root: Path, relay: RelayProcess, policy: ConnectionPolicy) -> Run:
    """Alice and her three contacts, through the proxy; returns what the relay read."""
    async with TcpProxy(lambda: relay.port) as proxy:
        people = {
            name: Messenger.create(Home(root / name), name, PASS, relay_url=proxy.url, kdf=FAST_TEST_KDF)
            for name in ("alice", *CONTACTS)
        }
        alice = people["alice"]
        alice.connections.policy = policy
        try:
            for name in CONTACTS:
                view = await alice.invite(name, short=False)
                await people[name].accept(view.long_link, "alice")
            assert sorted((await alice.receive()).new_contacts) == sorted(CONTACTS)
            for name in CONTACTS:
                await alice.send(name, f"hello {name}")
            for name in CONTACTS:
                got = await people[name].receive()
                assert [m.text for m in got.messages] == [f"hello {name}"]
            # Alice follows, as `burner chat` does, while her contacts write to her.
            heard: list[str] = []
            follow = asyncio.create_task(
                alice.follow(lambda news: heard.extend(m.text for m in news.messages))
            )
            for name in CONTACTS:
                await people[name].send("alice", f"from {name}")
            await until(lambda: len(heard) == len(CONTACTS), "alice hearing from all three")
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)
            assert sorted(heard) == sorted(f"from {name}" for name in CONTACTS)
            owners = conversations(people)
            report = await alice.burn()
            assert (report.queues_deleted, report.queues_failed) == (len(CONTACTS), 0)
        finally:
            for name, person in people.items():
                if name != "alice" or not alice.home.root.exists():
                    person.close()
        captures = list(proxy.captures)
    return Run([wire_of(capture) for capture in captures], owners)


@pytest.fixture(scope="module")
def per_contact(shared_relay: RelayProcess, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The default: a connection per contact (no jitter, to stay fast: the spread is the pool's tests')."""
    root = tmp_path_factory.mktemp("per-contact")
    return asyncio.run(scenario(root, shared_relay, ConnectionPolicy(shared=False, jitter=0)))


@pytest.fixture(scope="module")
def shared(shared_relay: RelayProcess, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("shared")
    return asyncio.run(scenario(root, shared_relay, ConnectionPolicy(shared=True, jitter=0)))


def named(run: Run, wire: Wire) -> set[Conversation]:
    """The conversations whose queue ids this connection carried; every id must be known."""
    ids = {tx.entity for tx in wire.commands if tx.entity}
    unknown = ids - run.owners.keys()
    assert not unknown, f"{len(unknown)} queue ids on the wire that no burner owns"
    return {run.owners[i] for i in ids}


def alices(run: Run) -> Iterator[tuple[Wire, set[Conversation]]]:
    for wire in run.wires:
        found = named(run, wire)
        if any("alice" in pair for pair in found):
            yield wire, found


def test_two_contacts_queues_never_share_a_connection(per_contact: Run) -> None:
    """The relay (or a tap) that groups queue ids by connection learns no two contacts of one burner."""
    linked = [found for wire in per_contact.wires if len(found := named(per_contact, wire)) > 1]
    assert linked == [], f"connections naming several conversations: {linked}"
    # The examination saw the traffic it judges: alice subscribed each conversation's
    # queue, each on a connection of its own, and sent to each contact.
    subscribed = [
        found
        for wire, found in alices(per_contact)
        if any(isinstance(tx.command, Sub) for tx in wire.commands)
    ]
    every = {frozenset({"alice", name}) for name in CONTACTS}
    assert set().union(*subscribed) == every
    assert sum(1 for found in subscribed if found) >= len(CONTACTS)


def test_one_shared_connection_links_the_contacts_the_examiner_sees_it(shared: Run) -> None:
    """The setting that shares one connection gives the link away, and the examination finds it."""
    every = {frozenset({"alice", name}) for name in CONTACTS}
    assert any(found == every for _, found in alices(shared))


def test_handshake_names_no_client_library(per_contact: Run) -> None:
    """No ``User-Agent`` naming Python and websockets: only the headers RFC 6455 needs go out."""
    assert per_contact.wires
    for wire in per_contact.wires:
        head = wire.request.decode("latin-1")
        lines = head.split("\r\n")
        assert re.fullmatch(r"GET /\S* HTTP/1\.1", lines[0]), lines[0]
        names = {line.split(":", 1)[0].strip().lower() for line in lines[1:] if line}
        assert names == _NEEDED_HEADERS, sorted(names)
        for word in (b"python", b"websockets", b"user-agent", b"burner"):
            assert word not in wire.request.lower(), word


async def restart_scenario(root: Path, relay: RelayProcess) -> Run:
    """Alice follows her three contacts across a relay restart; returns what the relay read."""
    async with TcpProxy(lambda: relay.port) as proxy:
        people = {
            name: Messenger.create(Home(root / name), name, PASS, relay_url=proxy.url, kdf=FAST_TEST_KDF)
            for name in ("alice", *CONTACTS)
        }
        alice = people["alice"]
        alice.connections.policy = ConnectionPolicy(jitter=0)
        try:
            for name in CONTACTS:
                view = await alice.invite(name, short=False)
                await people[name].accept(view.long_link, "alice")
            assert sorted((await alice.receive()).new_contacts) == sorted(CONTACTS)
            heard: list[str] = []
            follow = asyncio.create_task(
                alice.follow(lambda news: heard.extend(m.text for m in news.messages))
            )
            opened = len(proxy.captures)

            def subscribed() -> int:
                return sum(subscribes(capture) for capture in proxy.captures[opened:])

            await until(lambda: subscribed() == len(CONTACTS), "alice subscribing on her connections")
            before = len(proxy.captures)
            await relay.astop()
            await relay.astart()  # same port, same store: every connection must come back by itself
            for name in CONTACTS:
                await people[name].send("alice", f"after the restart, {name}")
            await until(lambda: len(heard) == len(CONTACTS), "alice hearing from all three again")
            assert len(proxy.captures) > before + len(CONTACTS)  # reconnections, not the old ones
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)
            owners = conversations(people)
        finally:
            for person in people.values():
                person.close()
        captures = list(proxy.captures)
    return Run([wire_of(capture) for capture in captures], owners)


def test_reconnections_after_a_relay_restart_keep_contacts_apart(tmp_path: Path, relays: Relays) -> None:
    """The connections that all broke at once come back each with one contact's queues alone."""
    run = asyncio.run(restart_scenario(tmp_path, relays.start()))
    linked = [found for wire in run.wires if len(found := named(run, wire)) > 1]
    assert linked == [], f"connections naming several conversations: {linked}"
