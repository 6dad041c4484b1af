"""The relay end to end: a real ``burner relay serve`` process, the client library, loopback.

docs/protocol.md §14. Each test starts the relay as a subprocess on a SQLite file
(``relays`` fixture), talks to it with :class:`~burnerkit.relay.client.RelayClient`, and
leaves it to the fixture to stop it with SIGTERM, assert exit code 0 and check that
nothing the relay wrote (stdout, stderr) holds a traceback or a line that is not JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence

import pytest
from websockets.exceptions import ConnectionClosed

from burnerkit.crypto.keys import SigningKey
from burnerkit.errors import RelayRejectedError, RelayTimeoutError
from burnerkit.protocol.envelope import ENVELOPE_SIZE
from burnerkit.protocol.events import MessageReceived
from burnerkit.protocol.handshake import accept_invitation, create_invitation
from burnerkit.protocol.session import Session
from burnerkit.relay.client import (
    QueueCredentials,
    RelayClient,
    SubscriptionEnded,
)
from burnerkit.relay.protocol import (
    FRAME_SIZE,
    MAX_BODY_SIZE,
    ErrorCode,
    Ok,
    Send,
    Sub,
    decode_server_frame,
)
from burnerkit.relay.server.metrics import COMMANDS
from tests.integration.harness import (
    FAST,
    RNG,
    Peer,
    Recorder,
    Relays,
    client,
    corr_id_of,
    drain,
    free_port,
    new_queue,
    nothing_delivered,
    received,
    recording_client,
    send_id,
    spellings,
    ws_connect,
)

# -- queues, sends, deliveries ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_send_subscribe_ack_next(relays: Relays) -> None:
    relay = relays.start()
    async with client(relay.url) as recipient, client(relay.url) as sender:
        creds = await recipient.create_queue()
        assert creds.recipient_id != creds.sender_id
        for text in (b"one", b"two", b"three"):
            await sender.send(creds.sender_id, text)
        before = int(time.time())
        await recipient.subscribe(creds)
        first = await received(recipient)
        assert first.body == b"one"
        assert not first.quota_marker
        assert before - 5 <= first.received_at <= before + 1
        # One message is outstanding at a time: nothing more until it is acknowledged.
        await nothing_delivered(recipient)
        await recipient.ack(creds, first.msg_id)
        second = await received(recipient)
        assert second.body == b"two"
        assert second.msg_id != first.msg_id
        await recipient.ack(creds, second.msg_id)
        assert (await received(recipient)).body == b"three"
    await relay.astop()


@pytest.mark.asyncio
async def test_offline_recipient_gets_every_message_in_order(relays: Relays) -> None:
    relay = relays.start()
    async with client(relay.url) as recipient:
        creds = await recipient.create_queue()
    stored = creds.to_bytes()  # what the recipient keeps in its vault while offline
    async with client(relay.url) as sender:
        for number in range(40):
            await sender.send(creds.sender_id, f"message {number}".encode())
    async with client(relay.url) as recipient:
        creds = QueueCredentials.from_bytes(stored)
        await recipient.subscribe(creds)
        messages = await drain(recipient, creds, 40)
        assert [m.body for m in messages] == [f"message {n}".encode() for n in range(40)]
        assert len({m.msg_id for m in messages}) == 40
        await nothing_delivered(recipient)
    await relay.astop()


@pytest.mark.asyncio
async def test_messages_sent_to_an_online_recipient_are_pushed(relays: Relays) -> None:
    relay = relays.start()
    async with client(relay.url) as recipient, client(relay.url) as sender:
        creds = await recipient.create_queue()
        await recipient.subscribe(creds)
        await nothing_delivered(recipient, 0.1)
        for number in range(5):
            await sender.send(creds.sender_id, bytes([number]) * MAX_BODY_SIZE)
            message = await received(recipient)
            assert message.body == bytes([number]) * MAX_BODY_SIZE
            await recipient.ack(creds, message.msg_id)
    await relay.astop()


@pytest.mark.asyncio
async def test_a_locked_queue_refuses_unsigned_sends_and_takes_signed_ones(relays: Relays) -> None:
    relay = relays.start()
    sender_key = SigningKey.generate(RNG)
    stranger_key = SigningKey.generate(RNG)
    async with client(relay.url) as recipient, client(relay.url) as sender:
        creds = await recipient.create_queue()
        await sender.send(creds.sender_id, b"before the lock")
        await recipient.lock(creds, sender_key.verify_key.raw)
        with pytest.raises(RelayRejectedError) as unsigned:
            await sender.send(creds.sender_id, b"unsigned")
        assert unsigned.value.code == ErrorCode.AUTH
        with pytest.raises(RelayRejectedError) as stranger:
            await sender.send(creds.sender_id, b"signed by a stranger", sender_key=stranger_key)
        assert stranger.value.code == ErrorCode.AUTH
        await sender.send(creds.sender_id, b"signed", sender_key=sender_key)
        # Locking again to the same key is a harmless retry; to another key it is refused.
        await recipient.lock(creds, sender_key.verify_key.raw)
        with pytest.raises(RelayRejectedError) as relock:
            await recipient.lock(creds, stranger_key.verify_key.raw)
        assert relock.value.code == ErrorCode.CMD
        await recipient.subscribe(creds)
        assert [m.body for m in await drain(recipient, creds, 2)] == [b"before the lock", b"signed"]
        await nothing_delivered(recipient)
    await relay.astop()


@pytest.mark.asyncio
async def test_a_deleted_queue_is_gone_for_everyone(relays: Relays) -> None:
    relay = relays.start()
    async with client(relay.url) as phone, client(relay.url) as other_device, client(relay.url) as sender:
        creds = await phone.create_queue()
        await sender.send(creds.sender_id, b"never read")
        await phone.subscribe(creds)
        assert (await received(phone)).body == b"never read"
        # The same credentials on another connection delete the queue: the holder of the
        # subscription is told, and every later command gets AUTH.
        await other_device.delete_queue(creds)
        ended = await phone.next_delivery(5)
        assert ended == SubscriptionEnded(creds.recipient_id, None)
        with pytest.raises(RelayRejectedError) as send:
            await sender.send(creds.sender_id, b"too late")
        assert send.value.code == ErrorCode.AUTH
        for command in (phone.subscribe(creds), phone.delete_queue(creds), phone.lock(creds, bytes(32))):
            with pytest.raises(RelayRejectedError) as refused:
                await command
            assert refused.value.code == ErrorCode.AUTH
    await relay.astop()


@pytest.mark.asyncio
async def test_a_second_subscriber_displaces_the_first(relays: Relays) -> None:
    relay = relays.start()
    async with (
        client(relay.url) as first,
        client(relay.url) as second,
        client(relay.url) as third,
        client(relay.url) as sender,
    ):
        creds = await first.create_queue()
        await sender.send(creds.sender_id, b"m1")
        await sender.send(creds.sender_id, b"m2")
        await first.subscribe(creds)
        m1 = await received(first)
        assert m1.body == b"m1"
        # A clone with the same credentials subscribes: the first is told and gets no more.
        await second.subscribe(creds)
        assert await first.next_delivery(5) == SubscriptionEnded(creds.recipient_id, None)
        again = await received(second)
        assert (again.msg_id, again.body) == (m1.msg_id, b"m1")  # unacknowledged: delivered again
        # The displaced device's ACK (NO_MSG, which the client takes quietly) deletes nothing:
        # a third subscriber still gets m1.
        await first.ack(creds, m1.msg_id)
        await third.subscribe(creds)
        assert await second.next_delivery(5) == SubscriptionEnded(creds.recipient_id, None)
        assert (await received(third)).msg_id == m1.msg_id
        await sender.send(creds.sender_id, b"m3")
        await third.ack(creds, m1.msg_id)
        assert [m.body for m in await drain(third, creds, 2)] == [b"m2", b"m3"]
        for displaced in (first, second):
            await nothing_delivered(displaced, 0.1)
    await relay.astop()


# -- metrics, shutdown -----------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-z_]+)(?:\{(command|code)="([a-z_]+)"\})? (\d+)$')
_METRICS = {
    "connections_total",
    "commands_total",
    "messages_stored_total",
    "messages_delivered_total",
    "messages_acked_total",
    "messages_expired_total",
    "queues_created_total",
    "errors_total",
    "connections_active",
    "subscriptions_active",
    "mailboxes_opened_total",
    "mailboxes_crowded_total",
    "mailboxes_expired_total",
    "mailboxes_open",
}


async def http(port: int, request_line: str) -> tuple[str, dict[str, str], str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{request_line} HTTP/1.1\r\nHost: relay\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    head, _, body = data.decode().partition("\r\n\r\n")
    status, *header_lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return status, {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.asyncio
async def test_the_metrics_endpoint_shows_aggregate_counters_only(relays: Relays) -> None:
    metrics_port = free_port()
    relay = relays.start("--metrics-port", str(metrics_port))
    recorder = Recorder()
    secrets: list[bytes] = []
    async with (
        recording_client(relay.url, recorder, **FAST) as recipient,
        recording_client(relay.url, recorder, **FAST) as sender,
    ):
        queues = [await recipient.create_queue() for _ in range(2)]
        for creds in queues:
            secrets += [
                creds.recipient_id,
                creds.sender_id,
                creds.queue_key,
                creds.recipient_key.verify_key.raw,
            ]
        for body in (b"a", b"b", b"c"):
            await sender.send(queues[0].sender_id, body)
        with pytest.raises(RelayRejectedError):
            await sender.send(bytes(24), b"nowhere")  # ERR AUTH
        await recipient.subscribe(queues[0])
        message = await received(recipient)
        secrets.append(message.msg_id)
        await recipient.ack(queues[0], message.msg_id)
        secrets.append((await received(recipient)).msg_id)

        status, headers, page = await http(metrics_port, "GET /metrics")
        assert status == "HTTP/1.1 200 OK"
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        samples: dict[tuple[str, str], int] = {}
        for line in page.splitlines():
            if line.startswith("# "):
                assert line.split()[2] in _METRICS, line
                continue
            match = _SAMPLE.match(line)
            assert match is not None, f"not an aggregate sample: {line!r}"
            name, label, value, count = match.groups()
            assert name in _METRICS
            if label == "command":
                assert value in COMMANDS
            elif label == "code":
                assert value in {code.name.lower() for code in ErrorCode}
            samples[name, value or ""] = int(count)
        assert samples["queues_created_total", ""] == 2
        assert samples["messages_stored_total", ""] == 3
        assert samples["messages_acked_total", ""] == 1
        assert samples["messages_delivered_total", ""] == 2
        assert samples["errors_total", "auth"] == 1
        assert samples["commands_total", "send"] == 4
        assert samples["commands_total", "new"] == 2
        assert samples["connections_active", ""] == 2
        assert samples["subscriptions_active", ""] == 1
        assert samples["connections_total", ""] == 2
        # Nothing in it names a queue, a message, a key, an address or a port.
        forbidden = {"127.0.0.1", str(relay.port), *map(str, recorder.local_ports)}
        for secret in secrets:
            forbidden |= spellings(secret)
        assert not [word for word in forbidden if word in page]

        assert (await http(metrics_port, "GET /"))[0] == "HTTP/1.1 404 Not Found"
        assert (await http(metrics_port, "POST /metrics"))[0] == "HTTP/1.1 405 Method Not Allowed"
    await relay.astop()


@pytest.mark.asyncio
async def test_sigterm_answers_every_send_it_read_and_exits_zero(relays: Relays) -> None:
    """SIGTERM mid-stream: every SEND the relay read is answered OK and durable; the rest
    get no answer (a client would retry them); the connection closes with 1001; exit 0.

    The sender keeps up to three SENDs in flight, as a client with a small window does.
    (A sender that has pipelined more frames than the relay will read after SIGTERM has
    its closing handshake stuck behind them: the relay then cuts it after its 5 s close
    timeout, still answering every SEND it read.)
    """
    relay = relays.start("--quota", "5000")
    peer = await Peer.open(relay.port)
    queue = await new_queue(peer)
    bodies = [f"n{n:04}".encode() for n in range(900)]
    frames = [peer.frame(queue.sender_id, Send(send_id(), body)) for body in bodies]
    corr_to_body = {corr_id_of(frame): body for frame, body in zip(frames, bodies, strict=True)}
    window = asyncio.Semaphore(3)

    async def pipeline() -> None:
        for frame in frames:
            await window.acquire()
            await peer.ws.send(frame)

    writer = asyncio.create_task(pipeline())
    answered: list[bytes] = []
    while True:
        try:
            data = await peer.ws.recv(decode=False)
        except ConnectionClosed as exc:
            closed = exc
            break
        assert len(data) == FRAME_SIZE
        tx = decode_server_frame(data)
        assert tx.response == Ok(), tx
        answered.append(corr_to_body[tx.corr_id])
        window.release()
        if len(answered) == 50:
            relay.send_sigterm()  # while the next SENDs are in flight
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
        await writer
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1001  # going away: a graceful stop, not a cut connection
    assert await relay.await_exit() == 0
    events = [event["event"] for event in relay.events()]
    assert events[-2:] == ["relay_stopping", "relay_stopped"]
    assert 50 <= len(answered) < len(frames)

    # Every answered SEND is durable, and nothing unanswered was stored.
    await relay.astart()
    async with client(relay.url) as recipient:
        creds = queue
        await recipient.subscribe(creds)
        delivered = [m.body for m in await drain(recipient, creds, len(answered))]
        await nothing_delivered(recipient)
    assert delivered == sorted(answered)  # in the order they were sent, none missing, none extra
    await relay.astop()


@pytest.mark.asyncio
async def test_rude_clients_never_make_the_relay_write_a_traceback(relays: Relays) -> None:
    """Connections cut mid-command and mid-delivery, handshakes abandoned, non-WebSocket
    bytes, oversize messages and bad metrics requests: the relay logs JSON lines only, no
    traceback and no error event, keeps serving, and still stops with exit code 0."""
    metrics_port = free_port()
    relay = relays.start("--metrics-port", str(metrics_port))
    owner = await Peer.open(relay.port)
    queue = await new_queue(owner)
    # A sender that pipelines SENDs and vanishes (TCP abort) before any answer.
    rude = await Peer.open(relay.port)
    for _ in range(40):
        await rude.ws.send(rude.frame(queue.sender_id, Send(send_id(), b"x" * 1000)))
    rude.ws.transport.abort()
    # A subscriber that vanishes while messages are being pushed to it.
    assert (await owner.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    owner.ws.transport.abort()
    async with client(relay.url) as sender:
        for _ in range(5):
            await sender.send(queue.sender_id, b"to nobody")
    # Half-open and foreign connections, on both ports.
    for port, payload in (
        (relay.port, b""),
        (relay.port, b"GET / HTTP/1.1\r\n\r\n"),
        (relay.port, b"\x16\x03\x01\x02\x00" + bytes(300)),  # a TLS hello on ws://
        (relay.port, b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"),
        (metrics_port, b"NONSENSE\r\n\r\n"),
        (metrics_port, b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 2000),
        (metrics_port, b"GET /metrics"),
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        await writer.drain()
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(100), 0.2)
        writer.transport.abort()
    # A WebSocket that never reads, one that sends a message over the frame size, one that
    # closes before reading HELLO.
    silent = await Peer.open(relay.port)
    big = await Peer.open(relay.port)
    await big.ws.send(bytes(FRAME_SIZE + 1))
    with pytest.raises(ConnectionClosed):
        await big.ws.recv()
    ws = await ws_connect(relay.port)
    await ws.close()
    # The relay still serves, then stops cleanly with the silent peer still connected.
    async with client(relay.url) as recipient:
        creds = queue
        await recipient.subscribe(creds)
        bodies = []
        with contextlib.suppress(RelayTimeoutError):
            while True:
                message = await received(recipient, timeout=0.5)
                bodies.append(message.body)
                await recipient.ack(creds, message.msg_id)
        assert bodies.count(b"to nobody") == 5
        assert bodies.count(b"x" * 1000) <= 40  # what the relay read of the vanished sender's
    await relay.astop()
    await silent.ws.close()
    relay.check_output()
    assert "Traceback" not in relay.stdout_text() + relay.log_text()
    # asyncio may warn (text stripped to its logger name) that the relay wrote answers to
    # the connection that was cut: "socket.send() raised exception." Nothing else may.
    unexpected = [
        event
        for event in relay.events()
        if event["level"] not in ("info", "debug")
        and (event["level"], event["event"], event.get("logger")) != ("warning", "foreign", "asyncio")
    ]
    assert unexpected == []


# -- two real burnerkit sessions through the relay -------------------------------------------


def texts(events: Sequence[object]) -> list[bytes]:
    return [event.content for event in events if isinstance(event, MessageReceived)]


@pytest.mark.asyncio
async def test_two_sessions_exchange_envelopes_through_the_relay_one_side_offline(relays: Relays) -> None:
    """Alice invites Bob with her queue's sender id as reply address; Bob answers while
    Alice is offline; Alice answers while Bob is offline; then they talk, both online."""
    relay = relays.start()
    assert ENVELOPE_SIZE == MAX_BODY_SIZE == 15_872
    now = time.time()

    async with client(relay.url) as alice_relay:
        alice_queue = await alice_relay.create_queue()
    pending, invitation = create_invitation(
        rng=RNG, now=now, lifetime=600, reply_address=alice_queue.sender_id
    )
    # Alice is offline from here on. Bob reads the invitation (QR, link) and answers.
    async with client(relay.url) as bob_relay:
        bob_queue = await bob_relay.create_queue()
        bob, accept = accept_invitation(invitation, content=bob_queue.sender_id, rng=RNG, now=now)
        sent_by_bob = [accept] + [bob.send(f"bob {n}".encode(), now=now) for n in range(3)]
        assert {len(envelope) for envelope in sent_by_bob} == {ENVELOPE_SIZE}
        reply_address = pending.invitation.reply_address
        for envelope in sent_by_bob:
            await bob_relay.send(reply_address, envelope)

    # Alice comes online; Bob is offline now.
    async with client(relay.url) as alice_relay:
        await alice_relay.subscribe(alice_queue)
        first = await received(alice_relay)
        assert first.body == accept
        alice, events = pending.complete(first.body, now=now)
        assert texts(events) == [bob_queue.sender_id]  # Bob's reply address, end to end
        assert alice.safety_code == bob.safety_code
        await alice_relay.ack(alice_queue, first.msg_id)
        got: list[bytes] = []
        for message in await drain(alice_relay, alice_queue, 3):
            assert message.body in sent_by_bob
            got += texts(alice.receive(message.body, now=now))
        assert got == [b"bob 0", b"bob 1", b"bob 2"]
        for n in range(3):
            await alice_relay.send(bob_queue.sender_id, alice.send(f"alice {n}".encode(), now=now))

    # Bob comes back and reads what Alice left; then both are online and take turns.
    async with client(relay.url) as bob_relay, client(relay.url) as alice_relay:
        await bob_relay.subscribe(bob_queue)
        got = []
        for message in await drain(bob_relay, bob_queue, 3):
            assert len(message.body) == ENVELOPE_SIZE
            got += texts(bob.receive(message.body, now=now))
        assert got == [b"alice 0", b"alice 1", b"alice 2"]
        await alice_relay.subscribe(alice_queue)
        await exchange(alice_relay, alice_queue, alice, bob_relay, bob_queue, bob, rounds=4)
        await nothing_delivered(alice_relay, 0.1)
        await nothing_delivered(bob_relay, 0.1)
    await relay.astop()


async def exchange(
    a_relay: RelayClient,
    a_queue: QueueCredentials,
    a: Session,
    b_relay: RelayClient,
    b_queue: QueueCredentials,
    b: Session,
    *,
    rounds: int,
) -> None:
    """Take turns, a to b then b to a, each envelope checked on arrival."""
    for turn in range(rounds):
        await say(a, a_relay, f"a{turn}".encode(), to=(b, b_relay, b_queue))
        await say(b, b_relay, f"b{turn}".encode(), to=(a, a_relay, a_queue))


async def say(
    speaker: Session,
    speaker_relay: RelayClient,
    text: bytes,
    *,
    to: tuple[Session, RelayClient, QueueCredentials],
) -> None:
    listener, listener_relay, listener_queue = to
    envelope = speaker.send(text, now=time.time())
    await speaker_relay.send(listener_queue.sender_id, envelope)
    message = await received(listener_relay)
    assert message.body == envelope
    assert texts(listener.receive(message.body, now=time.time())) == [text]
    await listener_relay.ack(listener_queue, message.msg_id)
