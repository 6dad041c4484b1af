"""What the integration tests share: a real relay process, raw peers, recorders and a proxy.

Every test in this directory talks to ``python -m burnerkit relay serve`` running as a
subprocess on loopback, never to a server object in the test's own process:

- :class:`RelayProcess` starts the relay, reads the ``relay listening on ws://HOST:PORT``
  line from its stdout, keeps every run's stdout and stderr (the JSON log lines) in
  files, and stops it with SIGTERM (graceful, exit code 0) or SIGKILL. A restart reuses
  the same port and the same SQLite file. The process is forked from this worker's relay
  zygote, which has the relay's modules imported (tests/e2e/zygote.py): a process of its
  own all the same, with its own pid, signals and exit status.
- :class:`Peer` is one raw WebSocket connection driven with the sans-IO encoders of
  :mod:`burnerkit.relay.protocol`, for attacks that need hand-made frames. Every frame it
  receives is checked to be exactly ``FRAME_SIZE`` bytes.
- :func:`recording_client` is a :class:`~burnerkit.relay.client.RelayClient` whose
  connections record every frame both ways and their local ports.
- :class:`TcpProxy` sits between a client and the relay: it records the bytes on the
  wire and can swallow the relay's answers (to lose an ``OK`` on purpose).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.rng import DeterministicRandom, SystemRandom
from burnerkit.errors import RelayTimeoutError
from burnerkit.relay.client import QueueCredentials, ReceivedMessage, RelayClient
from burnerkit.relay.protocol import (
    CORR_ID_SIZE,
    FRAME_SIZE,
    SEND_ID_SIZE,
    Ack,
    ClientCommand,
    Delivery,
    Hello,
    Ids,
    Msg,
    New,
    ServerTransmission,
    decode_client_frame,
    decode_server_frame,
    derive_ack_key,
    derive_queue_key,
    encode_client_frame,
    open_delivery,
    open_ids,
)
from burnerkit.relay.transport import Transport, WebSocketTransport, map_exceptions
from tests.e2e import zygote

RNG = SystemRandom()
ZERO_CORR = bytes(CORR_ID_SIZE)
#: ``ws://`` or, serving TLS, ``wss://`` with the certificate's pin (docs/protocol.md §14.13).
_LISTENING = re.compile(r"^relay listening on (wss?://127\.0\.0\.1:(\d+)(?:#sha256=[A-Za-z0-9_-]{43})?)$")
#: Seconds a relay may take to print its listening line.
_START_TIMEOUT = 15.0
#: Seconds a relay may take to stop after SIGTERM (its own grace period is 10 s).
_STOP_TIMEOUT = 20.0


def corr() -> bytes:
    return RNG.random_bytes(CORR_ID_SIZE)


def send_id() -> bytes:
    return RNG.random_bytes(SEND_ID_SIZE)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (for ``--metrics-port``)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Dice:
    """Seeded, reproducible choices for tests (``random`` is banned in this project)."""

    def __init__(self, seed: bytes) -> None:
        self._rng = DeterministicRandom(seed)

    def below(self, n: int) -> int:
        return int.from_bytes(self._rng.random_bytes(8), "big") % n

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * int.from_bytes(self._rng.random_bytes(8), "big") / 2**64

    def bytes(self, n: int) -> bytes:
        return self._rng.random_bytes(n)

    def sample(self, population: Sequence[int], k: int) -> list[int]:
        pool = list(population)
        return [pool.pop(self.below(len(pool))) for _ in range(k)]


# -- the relay process -----------------------------------------------------------------------


@dataclass
class Run:
    """One life of a relay process: where its output went and how it ended."""

    stdout: Path
    stderr: Path
    returncode: int | None = None


class RelayProcess:
    """``python -m burnerkit relay serve`` as a subprocess; restartable on the same port and store."""

    def __init__(self, workdir: Path, name: str, store: Path | str, args: Sequence[str]) -> None:
        self.workdir = workdir
        self.name = name
        self.store = store
        self.args = list(args)
        #: fixed by the first start; every restart listens on the same port
        self._port: int | None = None
        #: the URL the relay printed (a TLS relay's carries its certificate's pin)
        self._url: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.runs: list[Run] = []

    @property
    def port(self) -> int:
        assert self._port is not None, "the relay was never started"
        return self._port

    @property
    def url(self) -> str:
        return self._url or f"ws://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def store_path(self) -> Path:
        assert isinstance(self.store, Path)
        return self.store

    def start(self) -> None:
        """Start the relay and wait for its listening line (retrying a port still in use)."""
        assert self.process is None, "already running"
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            run = Run(
                self.workdir / f"{self.name}.{len(self.runs)}.stdout",
                self.workdir / f"{self.name}.{len(self.runs)}.stderr",
            )
            self.runs.append(run)
            command = [
                sys.executable,
                "-m",
                "burnerkit",
                "relay",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self._port or 0),
                "--store",
                str(self.store),
                *self.args,
            ]
            with run.stdout.open("wb") as out, run.stderr.open("wb") as err:
                # Forked from this worker's relay zygote when it can be (tests/e2e/zygote.py).
                process = zygote.popen(command, stdout=out, stderr=err, cwd=self.workdir)
            line = self._await_listening(process, run, deadline)
            if line is None:  # the port was still held; try again
                time.sleep(0.05)
                continue
            match = _LISTENING.match(line)
            assert match is not None, f"unexpected first line {line!r}"
            port = int(match.group(2))
            assert self._port in (None, port), "a restart must listen on the same port"
            self._port = port
            self._url = match.group(1)
            self.process = process
            return

    def _await_listening(self, process: subprocess.Popen[bytes], run: Run, deadline: float) -> str | None:
        while True:
            text = run.stdout.read_bytes().decode()
            if "\n" in text:
                return text.splitlines()[0]
            returncode = process.poll()
            if returncode is not None:
                run.returncode = returncode
                error = run.stderr.read_text()
                if (
                    "address already in use" in error
                    and self.port is not None
                    and time.monotonic() < deadline
                ):
                    return None
                raise RuntimeError(f"relay exited with {returncode} before listening: {error}")
            if time.monotonic() > deadline:
                process.kill()
                run.returncode = process.wait()
                raise RuntimeError("relay did not start in time")
            time.sleep(0.005)

    def terminate(self) -> int:
        """SIGTERM, wait for the exit, return the exit code."""
        process = self._take()
        process.send_signal(signal.SIGTERM)
        return self._reap(process, process.wait(timeout=_STOP_TIMEOUT))

    def stop(self) -> None:
        """SIGTERM and assert a clean exit (code 0)."""
        returncode = self.terminate()
        assert returncode == 0, f"relay exited with {returncode}: {self.runs[-1].stderr.read_text()}"

    def send_sigterm(self) -> None:
        """SIGTERM without waiting; :meth:`await_exit` collects the exit code."""
        assert self.process is not None, "not running"
        self.process.send_signal(signal.SIGTERM)

    async def await_exit(self) -> int:
        process = self._take()
        return self._reap(process, await asyncio.to_thread(process.wait, _STOP_TIMEOUT))

    def kill(self) -> None:
        """SIGKILL (kill -9) and wait for the process to be gone."""
        process = self._take()
        process.send_signal(signal.SIGKILL)
        returncode = self._reap(process, process.wait(timeout=_STOP_TIMEOUT))
        assert returncode == -signal.SIGKILL

    def _take(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, "not running"
        process, self.process = self.process, None
        return process

    def _reap(self, process: subprocess.Popen[bytes], returncode: int) -> int:
        self.runs[-1].returncode = returncode
        return returncode

    # Async tests must not block their loop while the relay closes their connections
    # (the relay waits for the closing handshake), so they use these.

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)

    # -- what it counts ---------------------------------------------------------------------

    @property
    def metrics_port(self) -> int:
        """The ``--metrics-port`` it was started with."""
        assert "--metrics-port" in self.args, "started without --metrics-port"
        return int(self.args[self.args.index("--metrics-port") + 1])

    def metric(self, name: str) -> float:
        """One unlabelled sample of its ``GET /metrics`` page (``subscriptions_active``, ...)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as page:
            text = page.read().decode()
        for line in text.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        raise AssertionError(f"no metric {name!r} in {text!r}")

    # -- what it wrote ----------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything every run wrote to stderr: the relay's JSON log lines."""
        return "".join(run.stderr.read_text() for run in self.runs if run.stderr.exists())

    def stdout_text(self) -> str:
        return "".join(run.stdout.read_text() for run in self.runs if run.stdout.exists())

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_text().splitlines() if line.strip()]

    def check_output(self) -> None:
        """No traceback anywhere; stdout is the listening line only; stderr is JSON lines only."""
        for run in self.runs:
            out = run.stdout.read_text() if run.stdout.exists() else ""
            err = run.stderr.read_text() if run.stderr.exists() else ""
            assert "Traceback" not in out, out
            assert "Traceback" not in err, err
            assert all(_LISTENING.match(line) for line in out.splitlines()), out
            for line in err.splitlines():
                if run.returncode == 1 and line.startswith("burner: "):
                    continue  # a start refused (port still in use), one line by design
                record = json.loads(line)
                assert isinstance(record, dict), line
                assert isinstance(record.get("event"), str), line


class Relays:
    """Starts relay processes for one test and checks all their output at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[RelayProcess] = []

    def new(self, *args: str, store: Path | str | None = None) -> RelayProcess:
        name = f"relay{len(self.processes)}"
        path = self.workdir / f"{name}.sqlite" if store is None else store
        relay = RelayProcess(self.workdir, name, path, args)
        self.processes.append(relay)
        return relay

    def start(self, *args: str, store: Path | str | None = None) -> RelayProcess:
        relay = self.new(*args, store=store)
        relay.start()
        return relay

    def close(self) -> None:
        left: list[tuple[RelayProcess, int]] = []
        for relay in self.processes:
            if relay.process is not None:
                left.append((relay, relay.terminate()))
        for relay in self.processes:
            relay.check_output()
        for relay, returncode in left:
            assert returncode == 0, f"{relay.name} exited with {returncode} on SIGTERM"


# -- waiting for a condition ---------------------------------------------------------------

#: Seconds a condition may take to come true before the test fails (a hang guard only: no
#: test asserts how long anything takes).
CONDITION_TIMEOUT = 60.0


def wait_until(condition: Callable[[], bool], what: str, timeout: float = CONDITION_TIMEOUT) -> None:
    """Poll ``condition`` until it holds; fail (not hang) if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


class Lines:
    """The lines a child process writes to a pipe, each read with a deadline.

    ``pipe.readline()`` blocks for as long as the child lives: a line that never comes
    would hang the whole run. A thread reads instead, and :meth:`next` fails after
    ``timeout`` with what the child said on stderr.
    """

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._process = process
        self._lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, pipe: Any) -> None:
        for line in pipe:
            self._lines.put(line)
        self._lines.put("")  # end of output

    def next(self, timeout: float = CONDITION_TIMEOUT) -> str:
        """The next line (without its newline); fails at the end of output or after ``timeout``."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s from {self._process.args!r}") from None
        assert line, f"{self._process.args!r} ended its output (exit {self._process.poll()})"
        return line.rstrip("\n")

    def close(self) -> None:
        """Close the pipe once the child has closed it (the reading thread is done)."""
        self._thread.join(CONDITION_TIMEOUT)
        if not self._thread.is_alive() and self._process.stdout is not None:
            self._process.stdout.close()

    def rest(self) -> str:
        """Everything after the lines read, once the child has closed its stdout."""
        self._thread.join(CONDITION_TIMEOUT)
        assert not self._thread.is_alive(), "the child never closed its stdout"
        out = []
        while (line := self._lines.get_nowait()) != "":
            out.append(line)
        return "".join(out)


# -- raw peers -------------------------------------------------------------------------------


async def peers(port: int, count: int) -> list[Peer]:
    return [await Peer.open(port) for _ in range(count)]


async def ws_connect(port: int) -> ClientConnection:
    return await connect(
        f"ws://127.0.0.1:{port}",
        max_size=FRAME_SIZE,
        compression=None,
        ping_interval=None,
        open_timeout=5,
        close_timeout=2,
    )


def corr_id_of(frame: bytes) -> bytes:
    """The corr_id of a well-formed client frame."""
    return decode_client_frame(frame).corr_id


class Peer:
    """One raw connection to the relay; records every frame, checks every frame's size."""

    def __init__(self, ws: ClientConnection, session_id: bytes) -> None:
        self.ws = ws
        self.session_id = session_id
        self.pushed: list[ServerTransmission] = []
        self.sent: list[bytes] = []
        self.received: list[bytes] = []

    @classmethod
    async def open(cls, port: int) -> Peer:
        ws = await ws_connect(port)
        data = await asyncio.wait_for(ws.recv(decode=False), 5)
        assert len(data) == FRAME_SIZE
        hello = decode_server_frame(data)
        assert hello.corr_id == ZERO_CORR
        assert isinstance(hello.response, Hello)
        peer = cls(ws, hello.response.session_id)
        peer.received.append(data)
        return peer

    @property
    def local_port(self) -> int:
        port: int = self.ws.local_address[1]
        return port

    async def close(self) -> None:
        await self.ws.close()

    async def send_raw(self, frame: bytes | str) -> None:
        if isinstance(frame, bytes):
            self.sent.append(frame)
        await self.ws.send(frame)

    async def recv_raw(self, timeout: float = 5) -> bytes:
        data = await asyncio.wait_for(self.ws.recv(decode=False), timeout)
        assert len(data) == FRAME_SIZE, len(data)
        self.received.append(data)
        return data

    def frame(
        self,
        entity: bytes,
        command: ClientCommand,
        key: SigningKey | None = None,
        corr_id: bytes | None = None,
    ) -> bytes:
        return encode_client_frame(
            corr() if corr_id is None else corr_id,
            entity,
            command,
            session_id=self.session_id,
            signing_key=key,
        )

    def mac_ack(self, queue: QueueCredentials, msg_id: bytes, corr_id: bytes | None = None) -> bytes:
        """An ACK authenticated by MAC (as RelayClient sends it), keyed for this connection's session."""
        return encode_client_frame(
            corr() if corr_id is None else corr_id,
            queue.recipient_id,
            Ack(msg_id),
            session_id=self.session_id,
            ack_key=derive_ack_key(queue.queue_key, self.session_id),
        )

    async def answer_to(self, corr_id: bytes, timeout: float = 5) -> tuple[ServerTransmission, bytes]:
        """The next frame carrying ``corr_id``; pushed frames met on the way are kept."""
        while True:
            data = await self.recv_raw(timeout)
            tx = decode_server_frame(data)
            if tx.corr_id == corr_id:
                return tx, data
            assert tx.corr_id == ZERO_CORR, "an answer to a command we did not send"
            self.pushed.append(tx)

    async def request_raw(self, frame: bytes) -> tuple[ServerTransmission, bytes]:
        await self.send_raw(frame)
        return await self.answer_to(corr_id_of(frame))

    async def request(
        self, entity: bytes, command: ClientCommand, key: SigningKey | None = None
    ) -> ServerTransmission:
        tx, _ = await self.request_raw(self.frame(entity, command, key))
        return tx

    async def push(self, timeout: float = 5) -> ServerTransmission:
        if self.pushed:
            return self.pushed.pop(0)
        tx = decode_server_frame(await self.recv_raw(timeout))
        assert tx.corr_id == ZERO_CORR
        return tx

    async def nothing_pushed(self, wait: float = 0.2) -> None:
        assert self.pushed == []
        with contextlib.suppress(TimeoutError):
            data = await asyncio.wait_for(self.ws.recv(decode=False), wait)
            raise AssertionError(f"unexpected frame {decode_server_frame(data)!r}")


# A queue made by a raw peer is kept as the client library keeps one.
RawQueue = QueueCredentials


async def new_queue(peer: Peer) -> RawQueue:
    key = SigningKey.generate(RNG)
    dh = X25519PrivateKey.generate(RNG)
    tx = await peer.request(b"", New(key.verify_key.raw, dh.public_key.raw), key)
    assert isinstance(tx.response, Ids), tx
    queue_key = derive_queue_key(dh, tx.response.server_dh)
    ids = open_ids(queue_key, tx.response.sealed)
    return QueueCredentials(ids.recipient_id, ids.sender_id, key, queue_key)


def opened(queue: RawQueue, tx: ServerTransmission, *, answering: bool = False) -> tuple[bytes, Delivery]:
    """The msg id and the opened delivery of a pushed ``MSG`` (``answering``: of the ``MSG``
    that answers an ACK instead of its ``OK``, §14.8)."""
    assert (tx.corr_id != ZERO_CORR) == answering
    assert tx.entity == queue.recipient_id
    assert isinstance(tx.response, Msg), tx
    return tx.response.msg_id, open_delivery(queue.queue_key, tx.response.msg_id, tx.response.sealed)


# -- a client whose connections record their frames ------------------------------------------


@dataclass
class Recorder:
    """Frames of every connection of one client, in order, and the connections' local ports."""

    frames: list[tuple[str, bytes]] = field(default_factory=list)  #: ("out" | "in", frame)
    local_ports: list[int] = field(default_factory=list)

    def outgoing(self) -> list[bytes]:
        return [frame for way, frame in self.frames if way == "out"]

    def incoming(self) -> list[bytes]:
        return [frame for way, frame in self.frames if way == "in"]


class RecordingTransport:
    """A :class:`WebSocketTransport` that writes down every frame it carries."""

    def __init__(self, inner: WebSocketTransport, recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder

    async def send(self, frame: bytes) -> None:
        self._recorder.frames.append(("out", bytes(frame)))
        await self._inner.send(frame)

    async def recv(self) -> bytes:
        frame = await self._inner.recv()
        self._recorder.frames.append(("in", frame))
        return frame

    async def close(self) -> None:
        await self._inner.close()


def recording_client(url: str, recorder: Recorder, **options: Any) -> RelayClient:
    """A RelayClient over real WebSockets whose frames and local ports ``recorder`` keeps."""

    async def factory() -> Transport:
        with map_exceptions():
            ws = await connect(url, open_timeout=5, max_size=FRAME_SIZE, compression=None, ping_interval=None)
        recorder.local_ports.append(ws.local_address[1])
        return RecordingTransport(WebSocketTransport(ws), recorder)

    return RelayClient(url, transport_factory=factory, **options)


# -- the client library, with short backoff ------------------------------------------------

#: Options for clients in tests: a short backoff, so that reconnects take milliseconds.
FAST: dict[str, Any] = {"timeout": 10.0, "backoff": (0.02, 0.2)}


def client(url: str, timeout: float = 10.0) -> RelayClient:
    return RelayClient(url, timeout=timeout, backoff=(0.02, 0.2))


async def received(client: RelayClient, timeout: float = 5) -> ReceivedMessage:
    """The next event, which must be a message."""
    event = await client.next_delivery(timeout)
    assert isinstance(event, ReceivedMessage), event
    return event


async def nothing_delivered(client: RelayClient, wait: float = 0.3) -> None:
    try:
        event = await client.next_delivery(wait)
    except RelayTimeoutError:
        return
    raise AssertionError(f"unexpected event {event!r}")


async def drain(client: RelayClient, creds: QueueCredentials, count: int) -> list[ReceivedMessage]:
    """Receive and acknowledge ``count`` messages of ``creds``' queue, in delivery order."""
    messages = []
    for _ in range(count):
        message = await received(client)
        assert message.recipient_id == creds.recipient_id
        messages.append(message)
        await client.ack(creds, message.msg_id)
    return messages


# -- a TCP proxy that records the wire and can swallow answers -------------------------------


@dataclass(eq=False)
class Capture:
    """The bytes of one proxied TCP connection, each way."""

    up: bytearray = field(default_factory=bytearray)  #: client to relay
    down: bytearray = field(default_factory=bytearray)  #: relay to client, as the relay sent them
    swallow_down: bool = False  #: drop what the relay sends (it never reaches the client)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class TcpProxy:
    """A loopback TCP proxy in front of the relay, one upstream connection per client connection."""

    def __init__(self, upstream_port: Callable[[], int]) -> None:
        self._upstream_port = upstream_port
        self._server: asyncio.Server | None = None
        self.captures: list[Capture] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def swallow_answers(self) -> None:
        """From now on, what the relay sends on the open connections never reaches the client."""
        for capture in self.captures:
            capture.swallow_down = True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port())
        except OSError:
            writer.close()
            return
        capture = Capture(writers=[writer, up_writer])
        self.captures.append(capture)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, capture.up, lambda: False),
                self._pump(up_reader, writer, capture.down, lambda: capture.swallow_down),
            )
        finally:
            self._tasks.discard(task)

    @staticmethod
    async def _pump(
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        record: bytearray,
        swallow: Callable[[], bool],
    ) -> None:
        try:
            while data := await source.read(1 << 16):
                record += data
                if not swallow():
                    sink.write(data)
                    await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for capture in self.captures:
            for writer in capture.writers:
                writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


@dataclass(frozen=True)
class WsFrame:
    fin: bool
    opcode: int
    length: int


def ws_frames(stream: bytes) -> list[WsFrame]:
    """The WebSocket frames of one direction of a connection (after the HTTP upgrade).

    Raises:
        AssertionError: if the bytes do not parse as whole frames.
    """
    position = stream.index(b"\r\n\r\n") + 4
    frames: list[WsFrame] = []
    while position < len(stream):
        first, second = stream[position], stream[position + 1]
        length = second & 0x7F
        position += 2
        if length == 126:
            length = int.from_bytes(stream[position : position + 2], "big")
            position += 2
        elif length == 127:
            length = int.from_bytes(stream[position : position + 8], "big")
            position += 8
        if second & 0x80:
            position += 4  # masking key
        frames.append(WsFrame(bool(first & 0x80), first & 0x0F, length))
        position += length
    assert position == len(stream), "the stream ends inside a frame"
    return frames


# -- looking for things that must not be there -----------------------------------------------


def spellings(value: bytes) -> set[str]:
    """How an id or key could be written in a log line: hex, base64 (both alphabets), base32, repr."""
    std = base64.b64encode(value).decode()
    url = base64.urlsafe_b64encode(value).decode()
    b32 = base64.b32encode(value).decode()
    return {
        value.hex(),
        value.hex().upper(),
        value[:8].hex(),  # a truncated id is still an id
        std,
        std.rstrip("="),
        std[:16],
        url,
        url.rstrip("="),
        url[:16],
        b32.rstrip("="),
        b32.lower().rstrip("="),
        repr(value)[2:18],
    }


def without_timestamps(log_text: str) -> str:
    """The log text without the value of each line's ``ts`` (whose digits could hold any number)."""
    return re.sub(r'"ts":[0-9.]+', '"ts":0', log_text)


def files_of(store: Path) -> Iterator[Path]:
    """The SQLite file and whichever of its -wal, -shm and -journal files exist."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(str(store) + suffix)
        if path.exists():
            yield path
