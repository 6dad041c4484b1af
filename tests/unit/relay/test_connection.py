"""RelayConnection, both ends (docs/protocol.md §14.5a): plain synchronous tests, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import LocalProtocolError, RemoteProtocolError
from burnerkit.relay.protocol import (
    MAX_IN_FLIGHT,
    PUSHED,
    Ack,
    Answered,
    ClientCommand,
    ClientConnection,
    ConnectionState,
    End,
    Err,
    ErrorCode,
    Greeted,
    Hello,
    MailboxEndReason,
    MbEnd,
    MbMsg,
    Msg,
    Ok,
    Ping,
    Pong,
    Pushed,
    PushResponse,
    Send,
    ServerConnection,
    Sub,
    decode_server_frame,
    derive_ack_key,
    encode_frame,
    encode_server_frame,
    verify_ack_mac,
    verify_signature,
)

SESSION = bytes(range(32))
QID = bytes(range(100, 124))
KEY = SigningKey.generate(DeterministicRandom(b"connection key"))


def pair(seed: bytes = b"pair") -> tuple[ClientConnection, ServerConnection]:
    """A client and a server connection, greeted."""
    client, server = ClientConnection(DeterministicRandom(seed)), ServerConnection(SESSION)
    assert client.receive(server.greet()) == Greeted(SESSION)
    return client, server


class ZerosFirst:
    """Randomness whose first draw is 24 zero bytes, then counts up."""

    def __init__(self) -> None:
        self.draws = 0

    def random_bytes(self, n: int) -> bytes:
        self.draws += 1
        return bytes(n) if self.draws == 1 else self.draws.to_bytes(n, "big")


# -- the client's end ----------------------------------------------------------------------


def test_client_sends_nothing_before_the_hello() -> None:
    client = ClientConnection(DeterministicRandom(b"early"))

    with pytest.raises(LocalProtocolError):
        client.send(b"", Ping())
    with pytest.raises(LocalProtocolError):
        _ = client.session_id
    assert (client.state, client.in_flight, client.can_send) == (ConnectionState.AWAITING_HELLO, 0, False)


def test_hello_opens_the_connection_with_its_session() -> None:
    client, _ = pair()

    assert (client.state, client.session_id, client.can_send) == (ConnectionState.OPEN, SESSION, True)


@pytest.mark.parametrize(
    ("first", "words"),
    [
        (encode_frame(b"\xff"), "malformed greeting"),
        (b"short", "malformed greeting"),
        (encode_server_frame(PUSHED, b"", Ok()), "no hello"),
        (encode_server_frame(bytes([1]) * 24, b"", Hello(SESSION)), "no hello"),
        (encode_server_frame(PUSHED, QID, Hello(SESSION)), "no hello"),
    ],
)
def test_a_first_frame_that_is_not_a_hello_is_a_remote_protocol_error(first: bytes, words: str) -> None:
    client = ClientConnection(DeterministicRandom(b"greet"))

    with pytest.raises(RemoteProtocolError, match=words):
        client.receive(first)
    assert client.state is ConnectionState.ERROR


def test_second_hello_is_rejected() -> None:
    client, server = pair()

    with pytest.raises(RemoteProtocolError, match="second hello"):
        client.receive(encode_server_frame(PUSHED, b"", Hello(SESSION)))
    with pytest.raises(LocalProtocolError):
        client.receive(server.push(QID, End()))  # ERROR is final: every later call raises
    with pytest.raises(LocalProtocolError):
        client.send(b"", Ping())


def test_answers_reach_their_commands_in_any_order() -> None:
    client, server = pair()
    ping = client.send(b"", Ping())
    sub = client.send(QID, Sub(), signing_key=KEY)
    tx_ping, tx_sub = server.receive(ping.frame), server.receive(sub.frame)

    assert client.receive(server.answer(tx_sub.corr_id, tx_sub.entity, Ok())) == Answered(
        sub.corr_id, QID, Ok(), Sub()
    )
    assert client.receive(server.answer(tx_ping.corr_id, b"", Pong())) == Answered(
        ping.corr_id, b"", Pong(), Ping()
    )
    assert (client.in_flight, server.in_flight) == (0, 0)
    assert verify_signature(KEY.verify_key.raw, tx_sub, SESSION)


def test_replayed_answer_is_rejected() -> None:
    client, server = pair()
    sent = client.send(b"", Ping())
    tx = server.receive(sent.frame)
    answer = server.answer(tx.corr_id, b"", Pong())
    client.receive(answer)

    with pytest.raises(RemoteProtocolError, match="no command in flight"):
        client.receive(answer)
    assert client.state is ConnectionState.ERROR


def test_answer_to_no_command_in_flight_is_rejected() -> None:
    client, _ = pair()

    with pytest.raises(RemoteProtocolError, match="no command in flight"):
        client.receive(encode_server_frame(bytes([7]) * 24, QID, Ok()))


@pytest.mark.parametrize("response", [Ok(), Err(ErrorCode.CMD), Pong()])
def test_an_answer_pushed_is_rejected(response: Ok | Err | Pong) -> None:
    client, _ = pair()

    with pytest.raises(RemoteProtocolError, match="pushed"):
        client.receive(encode_server_frame(PUSHED, QID, response))


def test_pushes_come_out_as_pushed_events() -> None:
    client, server = pair()
    pushes: list[PushResponse] = [
        Msg(bytes(24), b"sealed"),
        End(),
        MbMsg(3, b"body"),
        MbEnd(MailboxEndReason.CROWDED),
    ]

    events = [client.receive(server.push(QID, push)) for push in pushes]

    assert events == [Pushed(QID, push) for push in pushes]
    assert client.state is ConnectionState.OPEN


def test_msg_answering_an_ack_is_an_answer() -> None:
    client, server = pair()
    sent = client.send(QID, Ack(bytes(24)), queue_key=bytes(32))
    tx = server.receive(sent.frame)

    event = client.receive(server.answer(tx.corr_id, QID, Msg(bytes([9]) * 24, b"next")))

    assert event == Answered(sent.corr_id, QID, Msg(bytes([9]) * 24, b"next"), Ack(bytes(24)))


def test_seventeenth_command_waits_for_an_answer() -> None:
    client, server = pair()
    sent = [client.send(b"", Ping()) for _ in range(MAX_IN_FLIGHT)]

    assert not client.can_send
    with pytest.raises(LocalProtocolError, match="in flight"):
        client.send(b"", Ping())
    assert client.in_flight == MAX_IN_FLIGHT
    txs = [server.receive(s.frame) for s in sent]
    assert not server.reading
    client.receive(server.answer(txs[5].corr_id, b"", Pong()))
    assert client.can_send
    assert server.reading
    client.send(b"", Ping())


def test_corr_ids_are_random_and_never_zeros() -> None:
    client = ClientConnection(ZerosFirst())
    client.receive(encode_server_frame(PUSHED, b"", Hello(SESSION)))

    sent = client.send(b"", Ping())

    assert sent.corr_id != PUSHED
    assert decode_server_frame(encode_server_frame(sent.corr_id, b"", Pong())).corr_id == sent.corr_id
    with pytest.raises(ValueError, match="zeros"):
        client.send(b"", Ping(), corr_id=PUSHED)


def test_a_corr_id_in_flight_is_not_reused() -> None:
    client, _ = pair()
    sent = client.send(b"", Ping())

    with pytest.raises(LocalProtocolError, match="in flight"):
        client.send(b"", Ping(), corr_id=sent.corr_id)
    assert client.in_flight == 1


def test_a_corr_id_carries_over_to_a_later_connection() -> None:
    first, _ = pair(b"one")
    sent = first.send(QID, Sub(), signing_key=KEY)
    second, server = pair(b"two")

    again = second.send(QID, Sub(), signing_key=KEY, corr_id=sent.corr_id)

    assert server.receive(again.frame).corr_id == sent.corr_id


def test_ack_with_a_queue_key_is_maced_under_this_sessions_ack_key() -> None:
    client, server = pair()
    queue_key = bytes(range(50, 82))

    tx = server.receive(client.send(QID, Ack(bytes(24)), queue_key=queue_key).frame)

    assert verify_ack_mac(derive_ack_key(queue_key, SESSION), tx, SESSION)
    assert not verify_ack_mac(derive_ack_key(queue_key, bytes(32)), tx, SESSION)
    with pytest.raises(ValueError, match="ACK only"):
        client.send(QID, Sub(), queue_key=queue_key)


def test_a_send_that_cannot_be_encoded_changes_nothing() -> None:
    client, _ = pair()

    with pytest.raises(ValueError, match="entity"):
        client.send(b"short", Sub(), signing_key=KEY)
    with pytest.raises(ValueError, match="field"):
        client.send(QID, Send(b"short", b"body"))

    assert (client.in_flight, client.state) == (0, ConnectionState.OPEN)


# -- the server's end ----------------------------------------------------------------------


def test_server_greets_once_and_reads_nothing_before() -> None:
    server = ServerConnection(SESSION)
    with pytest.raises(LocalProtocolError):
        server.receive(encode_frame(b""))

    hello = decode_server_frame(server.greet())

    assert (hello.corr_id, hello.entity, hello.response) == (PUSHED, b"", Hello(SESSION))
    with pytest.raises(LocalProtocolError):
        server.greet()
    with pytest.raises(ValueError, match="session_id"):
        ServerConnection(b"short")


@pytest.mark.parametrize("frame", [b"", encode_frame(b"\x00\x01"), bytes(16_384)])
def test_malformed_command_is_refused_and_changes_nothing(frame: bytes) -> None:
    _, server = pair()

    with pytest.raises(RemoteProtocolError):
        server.receive(frame)

    assert server.in_flight == 0
    refusal = decode_server_frame(server.refusal())
    assert (refusal.corr_id, refusal.entity, refusal.response) == (PUSHED, b"", Err(ErrorCode.CMD))


def test_server_answers_only_commands_in_flight_and_pushes_only_pushes() -> None:
    client, server = pair()
    with pytest.raises(LocalProtocolError, match="no command"):
        server.answer(bytes([1]) * 24, b"", Ok())
    tx = server.receive(client.send(b"", Ping()).frame)
    with pytest.raises(LocalProtocolError, match="HELLO"):
        server.answer(tx.corr_id, b"", Hello(SESSION))
    with pytest.raises(LocalProtocolError, match="not pushed"):
        server.push(QID, Ok())  # type: ignore[arg-type]

    frame = server.answer(tx.corr_id, b"", Pong())

    assert frame == encode_server_frame(tx.corr_id, b"", Pong())
    assert server.in_flight == 0


# -- both ends, any interleaving ----------------------------------------------------------

_COMMANDS: st.SearchStrategy[tuple[bytes, ClientCommand]] = st.sampled_from(
    [(b"", Ping()), (QID, Sub()), (QID, Ack(bytes(24))), (QID, Send(bytes(16), b"m"))]
)
_ANSWERS: st.SearchStrategy[Ok | Err] = st.sampled_from([Ok(), Err(ErrorCode.RATE)])
_PUSHES: st.SearchStrategy[PushResponse] = st.sampled_from(
    [Msg(bytes(24), b"s"), End(), MbMsg(0, b"b"), MbEnd(MailboxEndReason.EXPIRED)]
)
_GARBAGE = st.one_of(
    st.binary(max_size=64),
    # Version 0 for a server frame, version 2 after an empty auth for a client frame.
    st.binary(max_size=200).map(lambda tail: encode_frame(b"\x00\x02" + tail)),
    st.sampled_from(
        [encode_server_frame(PUSHED, b"", Ok()), encode_server_frame(bytes([3]) * 24, b"", Pong())]
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_interleaving_answers_every_command_exactly_once(data: st.DataObject) -> None:
    """Commands, answers in any order, pushes and garbage between the two ends: each
    answer reaches its command exactly once, and garbage only ever raises our errors."""
    client, server = pair(data.draw(st.binary(min_size=1, max_size=8), label="seed"))
    wire: list[bytes] = []  # client to server, in order (a WebSocket keeps order)
    unanswered: list[tuple[bytes, bytes]] = []  # read by the server: corr id, entity
    sent: dict[bytes, ClientCommand] = {}
    answered: list[bytes] = []
    for _ in range(data.draw(st.integers(1, 60), label="steps")):
        step = data.draw(st.sampled_from(["send", "read", "answer", "push", "garbage"]), label="step")
        if step == "send" and client.can_send:
            entity, command = data.draw(_COMMANDS, label="command")
            out = client.send(entity, command, signing_key=None if isinstance(command, Ack) else KEY)
            assert out.corr_id not in sent
            assert out.corr_id != PUSHED
            sent[out.corr_id] = command
            wire.append(out.frame)
        elif step == "read" and wire and server.reading:
            tx = server.receive(wire.pop(0))
            unanswered.append((tx.corr_id, tx.entity))
        elif step == "answer" and unanswered:
            corr_id, entity = unanswered.pop(data.draw(st.integers(0, len(unanswered) - 1), label="which"))
            response = data.draw(_ANSWERS, label="response")
            event = client.receive(server.answer(corr_id, entity, response))
            assert isinstance(event, Answered)
            assert event.command == sent[event.corr_id]
            answered.append(event.corr_id)
        elif step == "push":
            push = data.draw(_PUSHES, label="push")
            assert client.receive(server.push(QID, push)) == Pushed(QID, push)
        elif step == "garbage":
            junk = data.draw(_GARBAGE, label="garbage")
            with pytest.raises(RemoteProtocolError):
                server.receive(junk)  # the server goes on
            if data.draw(st.booleans(), label="client too"):
                with pytest.raises(RemoteProtocolError):
                    client.receive(junk)
                assert client.state is ConnectionState.ERROR
                break
        assert client.in_flight == len(sent) - len(answered) <= MAX_IN_FLIGHT
        assert server.in_flight == len(unanswered) <= MAX_IN_FLIGHT
    assert len(answered) == len(set(answered))
    assert set(answered) <= set(sent)
