"""Pairing mailboxes (docs/protocol.md §14.12): the frames, the hub, and the server in-process.

The hub (relay/server/mailbox.py) is sans-IO: connections are plain objects, the clock
is a number, and each command returns the answer and the frames to push, so most tests
here are a few synchronous calls. The last ones run a RelayServer in this process and
talk to it with RelayClient over loopback WebSockets.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from burnerkit.crypto.rng import DeterministicRandom, SystemRandom
from burnerkit.errors import RelayRejectedError, RelayTimeoutError, RelayUnavailableError
from burnerkit.relay.client import MailboxEnded, RelayClient
from burnerkit.relay.protocol import (
    FRAME_SIZE,
    MAILBOX_BODY_SIZE,
    MAILBOX_MESSAGES,
    Err,
    ErrorCode,
    MailboxEndReason,
    MbAlloc,
    MbDel,
    MbEnd,
    MbGet,
    MbJoin,
    MbMsg,
    MbOpen,
    MbPut,
    Ok,
    ServerResponse,
    decode_client_frame,
    decode_server_frame,
    encode_client_frame,
    encode_server_frame,
)
from burnerkit.relay.server.config import RelayConfig
from burnerkit.relay.server.mailbox import MailboxHub, Push
from burnerkit.relay.server.metrics import Metrics
from burnerkit.relay.server.server import RelayServer
from burnerkit.relay.server.store.memory import MemoryStore

CORR = bytes(range(24))
TOKEN = bytes(range(100, 124))
NOW = 1_000.0


class Conn:
    """A connection, as the hub sees one: something hashable."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Conn({self.name})"


def hub(ttl: float = 600.0, capacity: int = 100, per_connection: int = 4) -> MailboxHub:
    return MailboxHub(
        rng=DeterministicRandom(b"hub"),
        metrics=Metrics(),
        ttl=ttl,
        capacity=capacity,
        per_connection=per_connection,
    )


def opened(answer: tuple[ServerResponse, list[Push]]) -> MbOpen:
    response, _ = answer
    assert isinstance(response, MbOpen), response
    return response


def pair(h: MailboxHub, a: Conn, b: Conn) -> tuple[MbOpen, MbOpen]:
    side_a = opened(h.handle(a, b"", MbAlloc(), NOW))
    side_b = opened(h.handle(b, b"", MbJoin(side_a.nameplate), NOW))
    return side_a, side_b


# -- frames ----------------------------------------------------------------------------------------

mailbox_commands = st.one_of(
    st.builds(MbAlloc),
    st.builds(MbJoin, st.integers(0, 0xFFFF)),
    st.builds(MbPut, st.integers(0, 0xFF), st.binary(max_size=MAILBOX_BODY_SIZE + 10)),
    st.builds(MbGet),
    st.builds(MbDel),
)
mailbox_responses = st.one_of(
    st.builds(MbOpen, st.integers(0, 0xFFFF), st.binary(min_size=24, max_size=24)),
    st.builds(MbMsg, st.integers(0, 0xFF), st.binary(max_size=MAILBOX_BODY_SIZE)),
    st.builds(MbEnd, st.sampled_from(MailboxEndReason)),
    st.just(Err(ErrorCode.MAILBOX)),
)


@settings(max_examples=150, deadline=None)
@given(mailbox_commands)
def test_mailbox_commands_are_one_frame_size_and_roundtrip(command):
    entity = b"" if isinstance(command, MbAlloc | MbJoin) else TOKEN
    frame = encode_client_frame(CORR, entity, command, session_id=bytes(32))
    assert len(frame) == FRAME_SIZE
    parsed = decode_client_frame(frame)
    assert (parsed.corr_id, parsed.entity, parsed.command, parsed.signature) == (CORR, entity, command, b"")


@settings(max_examples=150, deadline=None)
@given(mailbox_responses)
def test_mailbox_responses_are_one_frame_size_and_roundtrip(response):
    frame = encode_server_frame(CORR, TOKEN, response)
    assert len(frame) == FRAME_SIZE
    assert decode_server_frame(frame).response == response


@settings(max_examples=300, deadline=None)
@given(tag=st.integers(0x08, 0x0C), tail=st.binary(max_size=40))
def test_mangled_mailbox_commands_parse_or_raise_remote_protocol_error(tag, tail):
    from burnerkit.errors import RemoteProtocolError
    from burnerkit.relay.protocol import encode_frame

    content = b"\x00\x01" + CORR + b"\x18" + TOKEN + bytes([tag]) + tail
    try:
        decoded = decode_client_frame(encode_frame(content))
    except RemoteProtocolError:
        return
    assert decoded.corr_id == CORR  # what parses is read from the bytes given


@pytest.mark.parametrize("bad", [MbJoin(-1), MbJoin(0x10000), MbPut(256, b""), MbPut(-1, b"")])
def test_out_of_range_fields_are_refused_when_encoding(bad):
    with pytest.raises(ValueError, match="between"):
        encode_client_frame(CORR, TOKEN, bad, session_id=bytes(32))


# -- the hub ---------------------------------------------------------------------------------------


def test_nameplates_are_small_random_and_distinct():
    h = hub()
    plates = [opened(h.handle(Conn(str(i)), b"", MbAlloc(), NOW)).nameplate for i in range(60)]
    assert len(set(plates)) == 60
    assert all(1 <= p <= 999 for p in plates)
    assert plates != sorted(plates)


def test_nameplates_widen_when_half_the_small_ones_are_taken():
    h = hub(capacity=2_000, per_connection=2_000)
    conn = Conn("busy")
    plates = [opened(h.handle(conn, b"", MbAlloc(), NOW)).nameplate for _ in range(600)]
    assert max(plates) > 999
    assert len(set(plates)) == 600


def test_peer_messages_are_pushed_in_order_and_backlog_comes_after_join():
    h = hub()
    a, b = Conn("a"), Conn("b")
    side_a = opened(h.handle(a, b"", MbAlloc(), NOW))
    assert h.handle(a, side_a.token, MbPut(0, b"first"), NOW) == (Ok(), [])
    response, pushes = h.handle(b, b"", MbJoin(side_a.nameplate), NOW)
    assert isinstance(response, MbOpen)
    assert pushes == [Push(b, response.token, MbMsg(0, b"first"), True)]
    assert h.handle(a, side_a.token, MbPut(1, b"second"), NOW) == (
        Ok(),
        [Push(b, response.token, MbMsg(1, b"second"), False)],
    )


def test_third_party_joining_a_nameplate_is_refused():
    h = hub()
    a, b, guesser = Conn("a"), Conn("b"), Conn("guesser")
    side_a, side_b = pair(h, a, b)
    response, pushes = h.handle(guesser, b"", MbJoin(side_a.nameplate), NOW)
    # The same answer an unknown nameplate gets...
    assert response == Err(ErrorCode.MAILBOX)
    assert h.handle(guesser, b"", MbJoin(999 if side_a.nameplate != 999 else 998), NOW)[0] == response
    # ...and the code is burnt: both sides are told, nothing more can be put.
    assert pushes == [
        Push(a, side_a.token, MbEnd(MailboxEndReason.CROWDED), False),
        Push(b, side_b.token, MbEnd(MailboxEndReason.CROWDED), False),
    ]
    assert h.handle(a, side_a.token, MbPut(0, b"x"), NOW)[0] == Err(ErrorCode.MAILBOX)
    assert h.handle(guesser, b"", MbJoin(side_a.nameplate), NOW)[0] == Err(ErrorCode.MAILBOX)


def test_a_wrong_or_foreign_token_is_refused():
    h = hub()
    side_a, _ = pair(h, Conn("a"), Conn("b"))
    forged = bytes([side_a.token[0] ^ 1]) + side_a.token[1:]
    for token in (forged, bytes(24), side_a.token[:23], b""):
        for command in (MbPut(0, b"x"), MbGet(), MbDel()):
            assert h.handle(Conn("evil"), token, command, NOW) == (Err(ErrorCode.MAILBOX), [])


def test_put_is_stored_once_per_index():
    h = hub()
    a = Conn("a")
    side_a, _ = pair(h, a, Conn("b"))
    assert h.handle(a, side_a.token, MbPut(0, b"one"), NOW)[0] == Ok()
    assert h.handle(a, side_a.token, MbPut(0, b"one"), NOW) == (Ok(), [])  # a retry: no second push
    assert h.handle(a, side_a.token, MbPut(0, b"other"), NOW)[0] == Err(ErrorCode.CMD)
    assert h.handle(a, side_a.token, MbPut(2, b"gap"), NOW)[0] == Err(ErrorCode.CMD)


def test_side_quota_and_body_size_are_enforced():
    h = hub()
    a = Conn("a")
    side_a = opened(h.handle(a, b"", MbAlloc(), NOW))
    assert h.handle(a, side_a.token, MbPut(0, bytes(MAILBOX_BODY_SIZE + 1)), NOW)[0] == Err(ErrorCode.LARGE)
    for index in range(MAILBOX_MESSAGES):
        assert h.handle(a, side_a.token, MbPut(index, bytes([index])), NOW)[0] == Ok()
    assert h.handle(a, side_a.token, MbPut(MAILBOX_MESSAGES, b"x"), NOW)[0] == Err(ErrorCode.QUOTA)


def test_per_connection_and_relay_caps():
    h = hub(capacity=6, per_connection=2)
    one = Conn("one")
    assert isinstance(h.handle(one, b"", MbAlloc(), NOW)[0], MbOpen)
    assert isinstance(h.handle(one, b"", MbAlloc(), NOW)[0], MbOpen)
    assert h.handle(one, b"", MbAlloc(), NOW)[0] == Err(ErrorCode.QUOTA)
    for i in range(4):
        assert isinstance(h.handle(Conn(str(i)), b"", MbAlloc(), NOW)[0], MbOpen)
    assert h.handle(Conn("late"), b"", MbAlloc(), NOW)[0] == Err(ErrorCode.QUOTA)


def test_delete_frees_the_nameplate_and_the_peer_can_still_fetch():
    h = hub()
    a, b = Conn("a"), Conn("b")
    side_a, side_b = pair(h, a, b)
    h.handle(a, side_a.token, MbPut(0, b"last words"), NOW)
    assert h.handle(a, side_a.token, MbDel(), NOW) == (
        Ok(),
        [Push(b, side_b.token, MbEnd(MailboxEndReason.DELETED), False)],
    )
    assert h.handle(Conn("c"), b"", MbJoin(side_a.nameplate), NOW)[0] == Err(ErrorCode.MAILBOX)
    assert h.handle(a, side_a.token, MbGet(), NOW)[0] == Err(ErrorCode.MAILBOX)
    # B reconnects: it still gets what A left, then the end.
    b2 = Conn("b2")
    assert h.handle(b2, side_b.token, MbGet(), NOW) == (
        Ok(),
        [
            Push(b2, side_b.token, MbMsg(0, b"last words"), True),
            Push(b2, side_b.token, MbEnd(MailboxEndReason.DELETED), True),
        ],
    )
    assert h.handle(b2, side_b.token, MbPut(0, b"x"), NOW)[0] == Err(ErrorCode.MAILBOX)
    assert h.open_count == 1
    assert h.handle(b2, side_b.token, MbDel(), NOW) == (Ok(), [])
    assert h.open_count == 0


def test_mailboxes_expire_after_their_ttl():
    h = hub(ttl=10.0)
    a, b = Conn("a"), Conn("b")
    side_a, side_b = pair(h, a, b)
    assert h.expire(NOW + 9.9) == []
    assert h.expire(NOW + 10.0) == [
        Push(a, side_a.token, MbEnd(MailboxEndReason.EXPIRED), False),
        Push(b, side_b.token, MbEnd(MailboxEndReason.EXPIRED), False),
    ]
    assert h.open_count == 0
    assert h.handle(a, side_a.token, MbGet(), NOW + 11)[0] == Err(ErrorCode.MAILBOX)
    assert h.handle(a, b"", MbJoin(side_a.nameplate), NOW + 11)[0] == Err(ErrorCode.MAILBOX)


def test_detached_side_gets_nothing_pushed_until_it_fetches():
    h = hub()
    a, b = Conn("a"), Conn("b")
    side_a, side_b = pair(h, a, b)
    h.detach(b)
    assert h.handle(a, side_a.token, MbPut(0, b"while away"), NOW) == (Ok(), [])
    assert h.handle(b, side_b.token, MbGet(), NOW)[1] == [
        Push(b, side_b.token, MbMsg(0, b"while away"), True)
    ]


# -- the server, in this process ---------------------------------------------------------------


@pytest_asyncio.fixture
async def relay():
    server = RelayServer(MemoryStore(), RelayConfig(port=0, mailbox_ttl=1.0))
    await server.start()
    yield server
    await server.stop()


def client(server: RelayServer) -> RelayClient:
    return RelayClient(f"ws://127.0.0.1:{server.bound_port}", rng=SystemRandom(), timeout=5.0)


@pytest.mark.asyncio
async def test_client_mailbox_roundtrip_and_delete(relay):
    async with client(relay) as a, client(relay) as b:
        side_a = await a.mailbox_allocate()
        await a.mailbox_put(side_a, b"hello")
        side_b = await b.mailbox_join(side_a.nameplate)
        assert await b.mailbox_receive(side_b, timeout=2) == b"hello"
        await b.mailbox_put(side_b, b"hi")
        assert await a.mailbox_receive(side_a, timeout=2) == b"hi"
        assert repr(side_a) == f"Mailbox(nameplate={side_a.nameplate})"
        await a.mailbox_delete(side_a)
        ended = MailboxEnded(MailboxEndReason.DELETED)
        assert await b.mailbox_receive(side_b, timeout=2) == ended
        assert await b.mailbox_receive(side_b, timeout=2) == ended
        with pytest.raises(RelayRejectedError) as info:
            await b.mailbox_put(side_b, b"late")
        assert info.value.code == ErrorCode.MAILBOX
        await b.mailbox_delete(side_b)
        await b.mailbox_delete(side_b)  # gone already: still fine
        with pytest.raises(RelayUnavailableError):
            await b.mailbox_receive(side_b, timeout=1)
        with pytest.raises(RelayRejectedError) as info:
            await a.mailbox_join(side_a.nameplate)
        assert info.value.code == ErrorCode.MAILBOX
    assert relay._mailboxes.open_count == 0


@pytest.mark.asyncio
async def test_client_sees_expiry_and_the_relay_sweeps(relay):
    async with client(relay) as a:
        side_a = await a.mailbox_allocate()
        with pytest.raises(RelayTimeoutError):
            await a.mailbox_receive(side_a, timeout=0.05)
        assert await a.mailbox_receive(side_a, timeout=3) == MailboxEnded(MailboxEndReason.EXPIRED)
    assert relay._mailboxes.open_count == 0
    assert relay.metrics.mailboxes_expired_total == 1


@pytest.mark.asyncio
async def test_client_refetches_after_reconnect_and_deduplicates(relay):
    async with client(relay) as a, client(relay) as b:
        side_a = await a.mailbox_allocate()
        side_b = await b.mailbox_join(side_a.nameplate)
        await a.mailbox_put(side_a, b"one")
        assert await b.mailbox_receive(side_b, timeout=2) == b"one"
        # Cut b's connection; its supervisor reconnects and re-attaches with MB_GET.
        assert b._conn is not None
        await b._conn.transport.close()
        await a.mailbox_put(side_a, b"two")
        assert await b.mailbox_receive(side_b, timeout=3) == b"two"  # "one" came again, dropped
        await b.mailbox_put(side_b, b"back")
        assert await a.mailbox_receive(side_a, timeout=2) == b"back"


@pytest.mark.asyncio
async def test_relay_logs_nothing_about_mailboxes(relay, caplog):
    caplog.set_level("DEBUG")
    async with client(relay) as a, client(relay) as b:
        side_a = await a.mailbox_allocate()
        side_b = await b.mailbox_join(side_a.nameplate)
        await a.mailbox_put(side_a, b"secret body")
        await b.mailbox_receive(side_b, timeout=2)
        await a.mailbox_delete(side_a)
    text = caplog.text
    for secret in (side_a.token.hex(), side_b.token.hex(), "secret body", f'"{side_a.nameplate}"'):
        assert secret not in text
    await asyncio.sleep(0)
