"""The relay's figures for ``make bench``: throughput, latency, memory, and this machine's raw limits.

Every server runs in a process of its own, started here and stopped at the end of
its figure (the throughput servers, the echo and three relays, all stay up through
their interleaved rounds, see :func:`_throughput_rounds`): the relay as ``python -m
burnerkit relay serve --port 0 --store <tmp>.sqlite`` (the durable SQLite store, as
deployed), the bare echo as ``python -m bench._ws_echo_server``. The clients all run
in this process, on one asyncio loop, over loopback, and speak the relay protocol
directly through the sans-IO encoders of :mod:`burnerkit.relay.protocol` (not through
:class:`~burnerkit.relay.client.RelayClient`)
on the lean WebSocket connections of :mod:`bench._lean_ws` (websockets' sans-I/O client
protocol on an asyncio protocol, not the ``websockets`` asyncio client): clients and
servers share the machine's processors, and a lean client leaves them to the server.
The echo, the relay runs, the latency run, the setup requests and the idle connections
all use that same client, so ``relay_vs_ws_echo`` compares two servers driven alike.
Every frame, both ways, is 16,384 bytes; every SEND carries a full 15,872-byte body.

Figures (:func:`measure`):

- ``ws_echo_msgs_per_s``: :data:`ECHO_CONNECTIONS` connections, each keeping
  :data:`ECHO_WINDOW` frames in flight; a message is one frame there and back.
- ``relay_msgs_per_s``: :data:`RELAY_QUEUES` queues spread over :data:`RELAY_CONNECTIONS`
  subscribed recipient connections and as many sender connections; a message is SEND
  (answered OK once safe), MSG to the recipient, ACK (answered by the next MSG, or by OK
  once deleted). Each queue keeps at most :data:`RELAY_WINDOW` messages between SEND and
  the answer to their ACK; a message counts when that answer arrives.
  ``relay_vs_ws_echo`` divides it by the echo of the same round (the median of those
  ratios). The relay runs as deployed, write-behind on, but for a per-connection
  rate limit no run reaches (:data:`_UNLIMITED_RATE`); ``relay_write_through_msgs_per_s``
  is the same run with ``--write-behind 0`` (every message written, then deleted),
  ``relay_memory_store_msgs_per_s`` with ``--store :memory:``.
- ``ws_echo_server_cpu_us_per_msg``, ``relay_server_cpu_us_per_msg``,
  ``relay_client_cpu_us_per_msg``: CPU time per message of the server process and of
  this one; ``ed25519_sign_us``, ``ed25519_verify_us``: one ACK's signature and check.
- ``relay_p50_ms_at_500``, ``relay_p99_ms_at_500``: open loop at 500 msgs/s, spread
  over :data:`LATENCY_QUEUES` queues; each SEND goes out at its scheduled instant
  whatever happened to earlier ones, and its latency runs from that instant to the
  arrival of its MSG (the body carries its sequence number, read after the queue layer
  is opened).
- ``sqlite_insert_delete_per_s_commit_each``, ``..._group_64``: this process, bare
  ``sqlite3`` with the relay's pragmas and checkpoint policy.
- ``relay_idle_conn_kib``, ``relay_connections_held``: growth of the relay's resident
  set per idle subscribed connection, and how many of them still answer a PING.

:func:`method` describes all of it for docs/performance.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from burnerkit.crypto.kdf import LABEL_RELAY_AUTH
from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.rng import SystemRandom
from burnerkit.relay.client import QueueCredentials
from burnerkit.relay.protocol import (
    CORR_ID_SIZE,
    FRAME_SIZE,
    MAX_BODY_SIZE,
    MSG_ID_SIZE,
    QUEUE_ID_SIZE,
    SEND_ID_SIZE,
    SESSION_ID_SIZE,
    Ack,
    ClientCommand,
    Hello,
    Ids,
    Msg,
    New,
    Ok,
    Ping,
    Pong,
    Send,
    ServerResponse,
    Sub,
    decode_client_frame,
    decode_server_frame,
    derive_ack_key,
    derive_queue_key,
    encode_client_frame,
    encode_server_frame,
    open_delivery,
    open_ids,
    verify_signature,
)

from . import _lean_ws
from ._lean_ws import LeanConnection
from ._timing import rate

__all__ = ["FIGURES", "measure", "method"]

ROOT = Path(__file__).resolve().parent.parent

#: The keys :func:`measure` returns, in table order.
FIGURES = (
    "ws_echo_msgs_per_s",
    "relay_msgs_per_s",
    "relay_vs_ws_echo",
    "ws_echo_server_cpu_us_per_msg",
    "relay_server_cpu_us_per_msg",
    "relay_client_cpu_us_per_msg",
    "relay_event_loop_cpu_cores",
    "relay_store_thread_cpu_cores",
    "relay_memory_store_msgs_per_s",
    "relay_memory_store_vs_ws_echo",
    "relay_write_through_msgs_per_s",
    "relay_write_through_vs_ws_echo",
    "ed25519_sign_us",
    "ed25519_verify_us",
    "relay_p50_ms_at_500",
    "relay_p99_ms_at_500",
    "sqlite_insert_delete_per_s_commit_each",
    "sqlite_insert_delete_per_s_group_64",
    "relay_idle_conn_kib",
    "relay_connections_held",
)

ECHO_CONNECTIONS = 16
ECHO_WINDOW = 8
RELAY_QUEUES = 64
RELAY_CONNECTIONS = 32  # of each kind: sender and recipient
RELAY_WINDOW = 8
LATENCY_QUEUES = 16
LATENCY_CONNECTIONS = 4
LATENCY_RATE = 500.0
#: Connections opened at once while filling the relay with idle subscribers.
CONNECT_BATCH = 100

_RNG = SystemRandom()
MEMORY_STORE = ":memory:"
_ZERO_CORR = bytes(CORR_ID_SIZE)
_STARTUP_TIMEOUT = 30.0
_DRAIN_TIMEOUT = 30.0


@dataclass(frozen=True)
class Plan:
    """How long each relay figure is measured."""

    runs: int  # timed runs of each throughput figure; the median is kept
    seconds: float  # one timed throughput run
    warmup_seconds: float
    latency_seconds: float  # samples kept, after latency_warmup_seconds
    latency_warmup_seconds: float
    sqlite_seconds: float
    idle_connections: int


QUICK = Plan(
    runs=1,
    seconds=1.5,
    warmup_seconds=0.5,
    latency_seconds=3.0,
    latency_warmup_seconds=0.5,
    sqlite_seconds=0.5,
    idle_connections=1_000,
)
FULL = Plan(
    runs=5,
    seconds=3.0,
    warmup_seconds=1.0,
    latency_seconds=10.0,
    latency_warmup_seconds=1.0,
    sqlite_seconds=2.0,
    idle_connections=5_000,
)


def measure(quick: bool) -> dict[str, float]:
    """Every relay figure (see the module docstring), unrounded."""
    plan = QUICK if quick else FULL
    _raise_fd_limit(2 * plan.idle_connections + 256)
    figures: dict[str, float] = {}
    print(
        "  measuring ws_echo_msgs_per_s and relay_msgs_per_s (durable, memory store, write-through),"
        f" in {plan.runs} interleaved rounds ...",
        flush=True,
    )
    rounds = asyncio.run(_throughput_rounds(plan))
    echo = _Run.median([run["echo"] for run in rounds])
    figures["ws_echo_msgs_per_s"] = echo.rate
    figures["ws_echo_server_cpu_us_per_msg"] = echo.server_cpu_us
    relayed = _Run.median([run["durable"] for run in rounds])
    figures["relay_msgs_per_s"] = relayed.rate
    figures["relay_vs_ws_echo"] = _ratio(rounds, "durable")
    figures["relay_server_cpu_us_per_msg"] = relayed.server_cpu_us
    figures["relay_client_cpu_us_per_msg"] = relayed.client_cpu_us
    figures["relay_event_loop_cpu_cores"] = relayed.server_main_thread_cores
    figures["relay_store_thread_cpu_cores"] = relayed.server_store_thread_cores
    figures["relay_memory_store_msgs_per_s"] = _Run.median([run["memory"] for run in rounds]).rate
    figures["relay_memory_store_vs_ws_echo"] = _ratio(rounds, "memory")
    figures["relay_write_through_msgs_per_s"] = _Run.median([run["write_through"] for run in rounds]).rate
    figures["relay_write_through_vs_ws_echo"] = _ratio(rounds, "write_through")
    sign_us, verify_us = _ed25519_us(plan)
    figures["ed25519_sign_us"] = sign_us
    figures["ed25519_verify_us"] = verify_us
    print("  measuring relay latency at 500 msgs/s ...", flush=True)
    p50, p99 = asyncio.run(_relay_latency_figure(plan))
    figures["relay_p50_ms_at_500"] = p50
    figures["relay_p99_ms_at_500"] = p99
    print("  measuring bare sqlite insert+delete ...", flush=True)
    figures["sqlite_insert_delete_per_s_commit_each"] = _sqlite_figure(1, plan)
    figures["sqlite_insert_delete_per_s_group_64"] = _sqlite_figure(64, plan)
    print(f"  measuring relay memory with {plan.idle_connections:,} idle subscribers ...", flush=True)
    kib, held = asyncio.run(_relay_idle_figure(plan))
    figures["relay_idle_conn_kib"] = kib
    figures["relay_connections_held"] = float(held)
    return {name: figures[name] for name in FIGURES}


# -- processes ----------------------------------------------------------------------------


def _raise_fd_limit(wanted: int) -> None:
    """Lift this process's open-file limit (inherited by the servers) towards ``wanted``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return env


@dataclass(frozen=True)
class _Server:
    port: int
    pid: int


@contextlib.asynccontextmanager
async def _serving(argv: Sequence[str]) -> AsyncIterator[_Server]:
    """Run a server process that prints ``... PORT`` (last field, after ``:`` or a space) when ready."""
    with tempfile.TemporaryFile() as log:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
            env=_child_env(),
        )
        try:
            assert proc.stdout is not None
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), _STARTUP_TIMEOUT)
            except TimeoutError:
                line = b""
            try:
                port = int(line.decode().strip().replace(":", " ").split()[-1])
            except (ValueError, IndexError):
                log.seek(0)
                tail = log.read()[-2000:].decode(errors="replace")
                raise RuntimeError(f"server {argv[2:]} did not start: {line!r}\n{tail}") from None
            yield _Server(port, proc.pid)
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), _DRAIN_TIMEOUT)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


#: The relay with its write-behind off: every message is written before it is delivered.
_WRITE_THROUGH: Final = ("--write-behind", "0")

#: A per-connection rate limit no throughput run reaches. A bench connection carries the
#: traffic of many burners: at 25,000 msgs/s each of the 32 sends about 800 commands/s,
#: beyond the 500/s of a deployed relay, whose bucket would answer ERR RATE. The bucket
#: is charged for every command whatever its limit, so the relay's work is unchanged.
_UNLIMITED_RATE: Final = ("--rate-limit", "1000000", "--rate-burst", "1000000")


@contextlib.asynccontextmanager
async def _relay(store: str | None = None, options: Sequence[str] = ()) -> AsyncIterator[_Server]:
    """A relay process on the durable SQLite store of a temporary directory, or on ``store``;
    ``options``: more arguments of ``burner relay serve``."""
    with tempfile.TemporaryDirectory(prefix="burner-bench-") as tmp:
        where = str(Path(tmp) / "relay.sqlite") if store is None else store
        argv = [
            sys.executable,
            "-m",
            "burnerkit",
            "relay",
            "serve",
            "--port",
            "0",
            "--store",
            where,
            *options,
        ]
        async with _serving(argv) as server:
            yield server


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc")


async def _connect(port: int) -> LeanConnection:
    return await _lean_ws.open(port, timeout=_STARTUP_TIMEOUT, max_size=FRAME_SIZE)


# -- the echo -----------------------------------------------------------------------------


#: The relays of the throughput rounds: name, ``--store`` (None: a fresh SQLite file),
#: more options. "durable" is the relay as deployed, but for :data:`_UNLIMITED_RATE`.
_THROUGHPUT_RELAYS: Final = (
    ("durable", None, _UNLIMITED_RATE),
    ("memory", MEMORY_STORE, _UNLIMITED_RATE),
    ("write_through", None, (*_UNLIMITED_RATE, *_WRITE_THROUGH)),
)


async def _throughput_rounds(plan: Plan) -> list[dict[str, _Run]]:
    """Every throughput run, in rounds: the echo, then each relay of _THROUGHPUT_RELAYS.

    All servers are up for the whole measurement, each idle while another is timed, so
    that the runs of one round are seconds apart: this machine's speed drifts by tens of
    percent over a minute (shared processors), and a ratio of runs minutes apart would
    measure that drift. A warm-up run of each comes first.
    """
    async with contextlib.AsyncExitStack() as stack:
        echo = await stack.enter_async_context(_serving([sys.executable, "-m", "bench._ws_echo_server"]))
        relays: dict[str, tuple[_Server, _Fleet]] = {}
        for name, store, options in _THROUGHPUT_RELAYS:
            server = await stack.enter_async_context(_relay(store, options))
            fleet = await _Fleet.open(server.port, RELAY_QUEUES, RELAY_CONNECTIONS)
            stack.push_async_callback(fleet.close)
            relays[name] = (server, fleet)
        rounds: list[dict[str, _Run]] = []
        for index in range(plan.runs + 1):  # the first round is the warm-up
            seconds = plan.warmup_seconds if index == 0 else plan.seconds
            runs = {"echo": await _echo_run(echo, seconds)}
            for name, (server, fleet) in relays.items():
                runs[name] = await _relay_run(fleet, seconds, server.pid)
            rounds.append(runs)
        return rounds[1:]


def _ratio(rounds: list[dict[str, _Run]], name: str) -> float:
    """The median over the rounds of relay ``name``'s rate over the echo's in the same round."""
    return statistics.median(run[name].rate / run["echo"].rate for run in rounds)


async def _echo_run(server: _Server, seconds: float) -> _Run:
    conns = await asyncio.gather(*(_connect(server.port) for _ in range(ECHO_CONNECTIONS)))
    frame = os.urandom(FRAME_SIZE)
    counter = _Counter()

    async def pump(ws: LeanConnection) -> None:
        window = asyncio.Semaphore(ECHO_WINDOW)

        def echoed(data: bytes) -> None:
            if len(data) != FRAME_SIZE:
                raise RuntimeError("echo returned a frame of the wrong size")
            counter.count += 1
            window.release()

        reader = asyncio.create_task(ws.run(echoed))
        try:
            while not counter.stopped:
                await window.acquire()
                ws.send(frame)
            for _ in range(ECHO_WINDOW):  # let every frame in flight come back
                await window.acquire()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    try:
        return await counter.time_run([pump(ws) for ws in conns], seconds, server.pid)
    finally:
        await asyncio.gather(*(ws.close() for ws in conns))


@dataclass(frozen=True)
class _Run:
    """One closed-loop run: messages per second, and CPU microseconds per message."""

    rate: float
    server_cpu_us: float  # the server process, every thread, user and system
    client_cpu_us: float  # this process
    server_main_thread_cores: float  # CPU seconds per second of the server's main thread
    server_store_thread_cores: float  # the same, of its SQLite writer thread (0 if it has none)

    @staticmethod
    def median(runs: list[_Run]) -> _Run:
        return _Run(
            statistics.median(run.rate for run in runs),
            statistics.median(run.server_cpu_us for run in runs),
            statistics.median(run.client_cpu_us for run in runs),
            statistics.median(run.server_main_thread_cores for run in runs),
            statistics.median(run.server_store_thread_cores for run in runs),
        )


def _store_thread(pid: int) -> int | None:
    """The thread id of a relay process's SQLite writer: its busiest thread but the main one.

    (Python 3.11 does not name its threads for the kernel; the writer is the only other
    thread that does real work.)
    """
    busiest: tuple[float, int] | None = None
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = int(task.name)
        if tid == pid:
            continue
        with contextlib.suppress(OSError, ValueError):
            cpu = _cpu_seconds(pid, tid)
            if busiest is None or cpu > busiest[0]:
                busiest = (cpu, tid)
    return None if busiest is None else busiest[1]


def _cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User plus system CPU time of a process (all its threads), or of one of its threads."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Counter:
    """Completed messages, and the stop flag of a closed-loop run."""

    def __init__(self) -> None:
        self.count = 0
        self.stopped = False

    async def time_run(
        self,
        workers: list[Coroutine[Any, Any, None]],
        seconds: float,
        server_pid: int,
        watch: Sequence[asyncio.Future[None]] = (),
    ) -> _Run:
        """Run ``workers`` until stopped; the rate over ``seconds`` after a short ramp-up.

        ``watch``: tasks that must not end meanwhile (readers); one that does fails the run.
        """
        tasks = [asyncio.ensure_future(worker) for worker in workers]
        everything = [*tasks, *watch]
        try:
            await asyncio.sleep(min(0.2, seconds / 4))  # every connection is busy
            _fail_fast(everything)
            start_count, start = self.count, time.perf_counter()
            start_server, start_client = _cpu_seconds(server_pid), time.process_time()
            start_main = _cpu_seconds(server_pid, server_pid)  # the main thread's id is the pid
            store = _store_thread(server_pid)
            start_store = 0.0 if store is None else _cpu_seconds(server_pid, store)
            await asyncio.sleep(seconds)
            end_count, end = self.count, time.perf_counter()
            end_server, end_client = _cpu_seconds(server_pid), time.process_time()
            end_main = _cpu_seconds(server_pid, server_pid)
            end_store = 0.0 if store is None else _cpu_seconds(server_pid, store)
            _fail_fast(everything)
            self.stopped = True
            drained: asyncio.Future[list[None]] = asyncio.gather(*tasks)
            waited: list[asyncio.Future[Any]] = [drained, *watch]
            await asyncio.wait(waited, timeout=_DRAIN_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            _fail_fast(list(watch))
            if not drained.done():
                raise RuntimeError("the messages in flight were not all acknowledged in time")
            drained.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        done = max(1, end_count - start_count)
        return _Run(
            done / (end - start),
            1e6 * (end_server - start_server) / done,
            1e6 * (end_client - start_client) / done,
            (end_main - start_main) / (end - start),
            (end_store - start_store) / (end - start),
        )


def _fail_fast(tasks: Sequence[asyncio.Future[None]]) -> None:
    for task in tasks:
        if task.done():
            task.result()  # raises what the worker raised
            raise RuntimeError("a bench worker stopped early")


# -- relay peers ---------------------------------------------------------------------------


class _Peer:
    """One lean relay connection and the session value its signatures cover."""

    __slots__ = ("session_id", "ws")

    def __init__(self, ws: LeanConnection, session_id: bytes) -> None:
        self.ws = ws
        self.session_id = session_id

    @classmethod
    async def open(cls, port: int) -> _Peer:
        ws = await _connect(port)
        hello = decode_server_frame(_frame(await ws.recv()))
        if not isinstance(hello.response, Hello):
            raise RuntimeError("relay did not start with HELLO")
        return cls(ws, hello.response.session_id)

    def frame(self, entity: bytes, command: ClientCommand, key: SigningKey | None = None) -> bytes:
        return encode_client_frame(
            _RNG.random_bytes(CORR_ID_SIZE), entity, command, session_id=self.session_id, signing_key=key
        )

    async def request(
        self, entity: bytes, command: ClientCommand, key: SigningKey | None = None
    ) -> ServerResponse:
        """One command and its answer; only for setup, when nothing is pushed."""
        frame = self.frame(entity, command, key)
        self.ws.send(frame)
        answer = decode_server_frame(_frame(await self.ws.recv()))
        corr_at = 4 + frame[2]  # u16 length, u8 signature length, signature, u8 version
        if answer.corr_id != frame[corr_at : corr_at + CORR_ID_SIZE]:
            raise RuntimeError("relay answered another command")
        return answer.response


def _frame(data: bytes) -> bytes:
    if len(data) != FRAME_SIZE:
        raise RuntimeError("relay sent a frame of the wrong size")
    return data


_Queue = QueueCredentials


async def _new_queue(peer: _Peer) -> _Queue:
    key = SigningKey.generate(_RNG)
    dh = X25519PrivateKey.generate(_RNG)
    answer = await peer.request(b"", New(key.verify_key.raw, dh.public_key.raw), key)
    if not isinstance(answer, Ids):
        raise RuntimeError(f"NEW failed: {answer}")
    queue_key = derive_queue_key(dh, answer.server_dh)
    ids = open_ids(queue_key, answer.sealed)
    return QueueCredentials(ids.recipient_id, ids.sender_id, key, queue_key)


async def _subscribe(peer: _Peer, queue: _Queue) -> None:
    answer = await peer.request(queue.recipient_id, Sub(), queue.recipient_key)
    if not isinstance(answer, Ok):
        raise RuntimeError(f"SUB failed: {answer}")


@dataclass
class _Lane:
    """One queue, the connection that sends to it and the one subscribed to it."""

    queue: _Queue
    sender: _Peer
    recipient: _Peer
    #: the MAC key of this queue's ACKs on the recipient's connection (as RelayClient derives it)
    ack_key: bytes = b""

    def __post_init__(self) -> None:
        self.ack_key = derive_ack_key(self.queue.queue_key, self.recipient.session_id)

    def send_frame(self, body: bytes) -> bytes:
        return self.sender.frame(self.queue.sender_id, Send(_RNG.random_bytes(SEND_ID_SIZE), body))

    def ack_frame(self, msg_id: bytes) -> bytes:
        """An ACK authenticated by its MAC, as :class:`~burnerkit.relay.client.RelayClient` sends it."""
        return encode_client_frame(
            _RNG.random_bytes(CORR_ID_SIZE),
            self.queue.recipient_id,
            Ack(msg_id),
            session_id=self.recipient.session_id,
            ack_key=self.ack_key,
        )


@dataclass
class _Fleet:
    """``connections`` sender and ``connections`` recipient connections sharing ``queues`` queues.

    Queue ``i`` is created on, and subscribed by, recipient connection ``i % connections``;
    sender connection ``j`` sends to the ``k`` queues ``j·k`` to ``j·k + k - 1`` (``k`` queues
    per connection), which belong to ``k`` different recipient connections.
    """

    senders: list[_Peer]
    recipients: list[_Peer]
    lanes: list[_Lane]

    @classmethod
    async def open(cls, port: int, queues: int, connections: int) -> _Fleet:
        senders = list(await asyncio.gather(*(_Peer.open(port) for _ in range(connections))))
        recipients = list(await asyncio.gather(*(_Peer.open(port) for _ in range(connections))))
        fleet = cls(senders, recipients, [])
        try:
            per_sender = -(-queues // connections)
            for index in range(queues):
                recipient = recipients[index % connections]
                queue = await _new_queue(recipient)
                await _subscribe(recipient, queue)
                fleet.lanes.append(_Lane(queue, senders[index // per_sender], recipient))
        except BaseException:
            await fleet.close()
            raise
        return fleet

    def by_recipient(self) -> dict[bytes, _Lane]:
        return {lane.queue.recipient_id: lane for lane in self.lanes}

    def read_sender_oks(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(_read_oks(peer)) for peer in self.senders]

    async def close(self) -> None:
        await asyncio.gather(*(peer.ws.close() for peer in self.senders + self.recipients))


#: Server frames start ``u16 length ‖ u8 version ‖ corr_id[24] ‖ u8 entity_len ‖ entity``;
#: the response tag follows, then (for MSG) the msg id.
_ENTITY_LEN_AT = 2 + 1 + CORR_ID_SIZE
_TAG_OK = encode_server_frame(_ZERO_CORR, b"", Ok())[_ENTITY_LEN_AT + 1]


def _entity(frame: bytes) -> bytes:
    return frame[_ENTITY_LEN_AT + 1 : _ENTITY_LEN_AT + 1 + frame[_ENTITY_LEN_AT]]


def _is_ok(frame: bytes) -> bool:
    """Whether a frame is OK, read from its tag: the hot loops skip parsing the padding."""
    return frame[_ENTITY_LEN_AT + 1 + frame[_ENTITY_LEN_AT]] == _TAG_OK


#: Where a MSG to a queue has its tag and msg id (entity: a 24-byte recipient id).
_MSG_TAG_AT = _ENTITY_LEN_AT + 1 + QUEUE_ID_SIZE
_TAG_MSG = encode_server_frame(_ZERO_CORR, bytes(QUEUE_ID_SIZE), Msg(bytes(MSG_ID_SIZE), b""))[_MSG_TAG_AT]


def _msg_head(frame: bytes) -> tuple[bool, bytes, bytes] | None:
    """(answers an ACK, recipient id, msg id) of a MSG, read at fixed offsets like _is_ok;
    None for any other frame (which the caller then parses in full)."""
    if frame[_ENTITY_LEN_AT] != QUEUE_ID_SIZE or frame[_MSG_TAG_AT] != _TAG_MSG:
        return None
    answering = frame[3:_ENTITY_LEN_AT] != _ZERO_CORR
    return (
        answering,
        frame[_ENTITY_LEN_AT + 1 : _MSG_TAG_AT],
        frame[_MSG_TAG_AT + 1 : _MSG_TAG_AT + 1 + MSG_ID_SIZE],
    )


async def _read_oks(peer: _Peer) -> None:
    """Read a sender connection's answers; each must be OK (the message is durable)."""

    def answered(data: bytes) -> None:
        frame = _frame(data)
        if not _is_ok(frame):
            raise RuntimeError(f"SEND refused: {decode_server_frame(frame).response}")

    await peer.ws.run(answered)


# -- relay throughput -----------------------------------------------------------------------


_BODY = bytes(range(256)) * (MAX_BODY_SIZE // 256)


async def _relay_run(fleet: _Fleet, seconds: float, server_pid: int) -> _Run:
    counter = _Counter()
    lanes = fleet.by_recipient()
    windows = {recipient_id: asyncio.Semaphore(RELAY_WINDOW) for recipient_id in lanes}

    async def receive(peer: _Peer) -> None:
        def received(data: bytes) -> None:
            frame = _frame(data)
            if _is_ok(frame):  # the ACK's delete is committed: the message is done
                counter.count += 1
                windows[_entity(frame)].release()
                return
            head = _msg_head(frame)
            if head is None:
                raise RuntimeError(f"recipient got {decode_server_frame(frame).response}")
            answering, recipient_id, msg_id = head
            if answering:  # the next message answers the last one's ACK: that one is done
                counter.count += 1
                windows[recipient_id].release()
            peer.ws.send(lanes[recipient_id].ack_frame(msg_id))

        await peer.ws.run(received)

    async def send(lane: _Lane) -> None:
        window = windows[lane.queue.recipient_id]
        while not counter.stopped:
            await window.acquire()
            lane.sender.ws.send(lane.send_frame(_BODY))
        for _ in range(RELAY_WINDOW):  # every message in flight is acknowledged
            await window.acquire()

    readers = [asyncio.create_task(receive(peer)) for peer in fleet.recipients] + fleet.read_sender_oks()
    try:
        return await counter.time_run([send(lane) for lane in fleet.lanes], seconds, server_pid, readers)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


# -- relay latency ----------------------------------------------------------------------------


async def _relay_latency_figure(plan: Plan) -> tuple[float, float]:
    """(p50, p99) in milliseconds, SEND scheduled to MSG received, open loop at LATENCY_RATE."""
    async with _relay() as server:
        fleet = await _Fleet.open(server.port, LATENCY_QUEUES, LATENCY_CONNECTIONS)
        try:
            return await _latency_run(fleet, plan)
        finally:
            await fleet.close()


async def _latency_run(fleet: _Fleet, plan: Plan) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    total = round((plan.latency_warmup_seconds + plan.latency_seconds) * LATENCY_RATE)
    warmup = round(plan.latency_warmup_seconds * LATENCY_RATE)
    scheduled: list[float] = [0.0] * total
    latency: list[float | None] = [None] * total
    lanes = fleet.by_recipient()
    done = asyncio.Event()
    received_count = 0

    async def receive(peer: _Peer) -> None:
        def received(data: bytes) -> None:
            nonlocal received_count
            now = loop.time()
            answer = decode_server_frame(_frame(data))
            match answer.response:
                case Msg(msg_id, sealed):
                    lane = lanes[answer.entity]
                    body = open_delivery(lane.queue.queue_key, msg_id, sealed).body
                    seq = int.from_bytes(body[:8], "big")
                    if latency[seq] is not None:
                        raise RuntimeError("a message was delivered twice")
                    latency[seq] = now - scheduled[seq]
                    received_count += 1
                    if received_count == total:
                        done.set()
                    peer.ws.send(lane.ack_frame(msg_id))
                case Ok():
                    pass
                case other:
                    raise RuntimeError(f"recipient got {other}")

        await peer.ws.run(received)

    readers = [asyncio.create_task(receive(peer)) for peer in fleet.recipients] + fleet.read_sender_oks()
    try:
        start = loop.time() + 0.05
        for seq in range(total):
            at = start + seq / LATENCY_RATE
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            scheduled[seq] = at
            lane = fleet.lanes[seq % len(fleet.lanes)]
            lane.sender.ws.send(lane.send_frame(seq.to_bytes(8, "big") + _BODY[8:]))
            if seq % 64 == 0:
                _fail_fast(readers)
        await _until(done, readers)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    samples = sorted(1000.0 * value for value in latency[warmup:] if value is not None)
    return _percentile(samples, 50), _percentile(samples, 99)


async def _until(event: asyncio.Event, watch: list[asyncio.Task[None]]) -> None:
    """Wait for ``event``, failing early if a watched task ends, and after _DRAIN_TIMEOUT."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([waiter, *watch], timeout=_DRAIN_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        _fail_fast(watch)
        if not waiter.done():
            raise RuntimeError("the relay did not deliver every message in time")
    finally:
        waiter.cancel()


def _percentile(sorted_samples: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, -(-len(sorted_samples) * pct // 100))
    return sorted_samples[int(rank) - 1]


# -- signatures ------------------------------------------------------------------------------


def _ed25519_us(plan: Plan) -> tuple[float, float]:
    """Microseconds to sign an ACK (the recipient) and to check its signature (the relay).

    Each relayed message costs one of each, so these two set a floor under the CPU per
    message of the relay and of its clients.
    """
    key = SigningKey.generate(_RNG)
    session_id = _RNG.random_bytes(SESSION_ID_SIZE)
    frame = encode_client_frame(
        _RNG.random_bytes(CORR_ID_SIZE),
        _RNG.random_bytes(QUEUE_ID_SIZE),
        Ack(_RNG.random_bytes(MSG_ID_SIZE)),
        session_id=session_id,
        signing_key=key,
    )
    ack = decode_client_frame(frame)
    signed = LABEL_RELAY_AUTH + session_id + ack.signed
    recipient_key = key.verify_key.raw
    if not verify_signature(recipient_key, ack, session_id):
        raise RuntimeError("an ACK signature did not verify")
    seconds = max(0.2, plan.sqlite_seconds / 2)
    sign = rate(lambda: key.sign(signed), seconds)
    verify = rate(lambda: verify_signature(recipient_key, ack, session_id), seconds)
    return 1e6 / sign, 1e6 / verify


# -- bare sqlite ------------------------------------------------------------------------------


def _sqlite_figure(group: int, plan: Plan) -> float:
    runs = [
        _sqlite_run(group, plan.warmup_seconds if i == 0 else plan.sqlite_seconds)
        for i in range(plan.runs + 1)
    ]
    return statistics.median(runs[1:])


def _sqlite_run(group: int, seconds: float) -> float:
    """Messages per second: each transaction inserts ``group`` new rows and deletes the previous ones."""
    with tempfile.TemporaryDirectory(prefix="burner-bench-") as tmp, _sqlite(Path(tmp) / "bare.sqlite") as db:
        queue = _RNG.random_bytes(24)
        previous: list[int] = []
        deleted = 0
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            db.execute("BEGIN IMMEDIATE")
            for seq in previous:
                db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
            deleted += len(previous)
            previous = [_insert(db, queue) for _ in range(group)]
            db.execute("COMMIT")
            count += group
            if deleted >= 64:  # the relay's policy: TRUNCATE after every 64 deleted messages
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                deleted = 0
            now = time.perf_counter()
            if now >= deadline:
                return count / (now - start)


def _insert(db: sqlite3.Connection, queue: bytes) -> int:
    cursor = db.execute(
        "INSERT INTO messages (recipient_id, msg_id, send_id, received_at, quota_marker, body)"
        " VALUES (?, ?, ?, ?, 0, ?)",
        (queue, _RNG.random_bytes(24), _RNG.random_bytes(16), int(time.time()), _BODY),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


@contextlib.contextmanager
def _sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA secure_delete = ON")
        db.execute(
            "CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, recipient_id BLOB NOT NULL,"
            " msg_id BLOB NOT NULL UNIQUE, send_id BLOB NOT NULL, received_at INTEGER NOT NULL,"
            " quota_marker INTEGER NOT NULL, body BLOB NOT NULL)"
        )
        db.execute("CREATE INDEX messages_by_queue ON messages (recipient_id, seq)")
        yield db
    finally:
        db.close()


# -- relay memory -----------------------------------------------------------------------------


async def _relay_idle_figure(plan: Plan) -> tuple[float, int]:
    """(KiB of relay RSS per idle subscribed connection, connections that still answer PING)."""
    count = plan.idle_connections
    async with _relay() as server:
        makers = [await _Peer.open(server.port) for _ in range(8)]
        queues: list[_Queue] = []
        while len(queues) < count:
            batch = min(len(makers), count - len(queues))
            queues += await asyncio.gather(*(_new_queue(makers[i]) for i in range(batch)))
        await asyncio.sleep(0.2)
        before = _rss_kib(server.pid)
        peers: list[_Peer] = []
        try:
            for first in range(0, count, CONNECT_BATCH):
                chunk = queues[first : first + CONNECT_BATCH]
                opened = await asyncio.gather(*(_Peer.open(server.port) for _ in chunk))
                peers += opened
                await asyncio.gather(*(_subscribe(p, q) for p, q in zip(opened, chunk, strict=True)))
            await asyncio.sleep(0.5)
            after = _rss_kib(server.pid)
            held = 0
            for first in range(0, count, CONNECT_BATCH):
                answers = await asyncio.gather(
                    *(p.request(b"", Ping()) for p in peers[first : first + CONNECT_BATCH])
                )
                held += sum(isinstance(answer, Pong) for answer in answers)
            return (after - before) / count, held
        finally:
            await asyncio.gather(*(p.ws.close() for p in peers + makers), return_exceptions=True)


# -- the report ---------------------------------------------------------------------------------


def method(quick: bool) -> str:
    """The relay's method paragraphs for docs/performance.md."""
    plan = QUICK if quick else FULL
    runs = "one timed run" if plan.runs == 1 else f"the median of {plan.runs} timed runs"
    rounds = "one timed round" if plan.runs == 1 else f"{plan.runs} timed rounds"
    per_connection = RELAY_QUEUES // RELAY_CONNECTIONS
    setup = " ".join(
        (
            "Every server runs in a process of its own, started by the bench and stopped after its",
            "figure (the throughput servers, the echo and three relays, after all their rounds):",
            "the relay as `python -m burnerkit relay serve --port 0 --store <tmp>/relay.sqlite`",
            "(a fresh file each time: WAL, `synchronous=FULL`, `secure_delete=ON`), the echo as",
            "`python -m bench._ws_echo_server` (websockets, compression off). The clients all run in the",
            "bench process on one asyncio loop, over loopback, and speak the relay protocol through the",
            "sans-IO encoders of `burnerkit.relay.protocol`, not through `RelayClient`, on the lean",
            "WebSocket client of `bench._lean_ws` (websockets' sans-I/O `ClientProtocol` under an asyncio",
            "protocol, no compression, no pings; the timed loops take each message in a callback as it",
            "arrives) rather than the websockets asyncio client: clients and servers share this machine's",
            "processors, and a lean client leaves them to the server. The echo, the relay, the latency",
            "and the memory figures are all driven by that same client, so `relay_vs_ws_echo` compares",
            "two servers driven alike. Every frame both ways is 16,384 bytes; every SEND carries a full",
            "15,872-byte body.",
        )
    )
    throughput = " ".join(
        (
            "Throughput is measured in closed loops, in rounds: each round times the echo, the",
            "durable relay, the relay on the memory store and the write-through relay one after the",
            "other, all four servers up and the others idle, so that the runs a ratio compares are",
            "seconds apart (this machine's speed drifts by tens of percent over a minute). A warm-up",
            f"round of {plan.warmup_seconds:g} s per run, then {rounds} of {plan.seconds:g} s per run; a",
            "rate is the median over the rounds, and a `_vs_ws_echo` ratio the median of the rounds'",
            f"ratios to their own echo. `ws_echo_msgs_per_s`: {ECHO_CONNECTIONS} connections, each keeping",
            f"{ECHO_WINDOW} frames in flight; a message is one frame there and back. `relay_msgs_per_s`:",
            f"{RELAY_QUEUES} queues on {RELAY_CONNECTIONS} recipient connections ({per_connection}",
            "subscribed queues each, as a burner holds one queue per contact on one connection) and",
            f"{RELAY_CONNECTIONS} sender connections ({per_connection} queues each, of different",
            "recipients);",
            "each of these connections carries the traffic of many burners, so the relays of these runs",
            "are started with a per-connection rate limit none of them reaches (`--rate-limit 1000000",
            "--rate-burst 1000000`; the token bucket is charged for every command all the same, where a",
            "deployed relay's 500 commands/s would answer ERR RATE on this machine). A message is a SEND,",
            "answered OK once the message is safe; the MSG to the subscribed recipient; and the",
            "recipient's ACK (authenticated by its MAC), answered by the queue's next MSG or, when none",
            "is waiting, by OK once the delete is committed (docs/protocol.md §14.8). Each queue",
            f"keeps at most {RELAY_WINDOW} messages between its SEND and the answer to its ACK, and a",
            "message counts when that answer arrives. Otherwise the relay runs as deployed, write-behind on",
            "(0.25 s): a message acknowledged before the store had to write it is never written; its OK",
            "rests on the recipient's ACK, and its send id is remembered as retired (in memory on a held",
            "queue, committed when the queue leaves that state).",
            "`relay_write_through_msgs_per_s` is the same run with `--write-behind 0`, every message",
            "inserted and then deleted. The throughput clients",
            "read each answer's tag and ids at fixed offsets without parsing the padding.",
            "The `cpu_us_per_msg` figures are the CPU time (user and system, all threads) of",
            "the server process and of the bench process over the timed runs, divided by the messages",
            "completed; `relay_event_loop_cpu_cores` and `relay_store_thread_cpu_cores` are the CPU time",
            "per second of the relay's event-loop thread and of its SQLite writer thread.",
            "`relay_memory_store_msgs_per_s` is the same run against `--store :memory:` (nothing durable):",
            "what the event loop, the frames and the crypto allow with storage taken out, so the gap",
            "between it and `relay_msgs_per_s` is what durability costs in this design.",
            "`ed25519_sign_us` and `ed25519_verify_us` time an Ed25519 signature of an ACK and its check",
            "(`verify_signature`), which the relay protocol used to require for every ACK; the bench's",
            "recipients now authenticate their ACKs by MAC, as `RelayClient` does (docs/protocol.md §14.4).",
        )
    )
    latency = " ".join(
        (
            f"Latency: {LATENCY_QUEUES} queues on {LATENCY_CONNECTIONS} + {LATENCY_CONNECTIONS} connections,",
            f"SENDs issued open loop at {LATENCY_RATE:g} msgs/s on a fixed schedule (round robin over the",
            "queues), whatever became of earlier ones. A message's latency runs from its scheduled instant",
            "to the arrival of its MSG, whose sequence number the recipient reads after parsing the frame",
            "and opening the queue layer; every message must arrive exactly once. The first",
            f"{plan.latency_warmup_seconds:g} s are dropped; percentiles are nearest-rank over the next",
            f"{plan.latency_seconds:g} s.",
        )
    )
    limits = " ".join(
        (
            "Bare SQLite, in the bench process, on a fresh file with the relay's pragmas and a `messages`",
            "table like the relay's (16 KiB body, unique message id, per-queue index) but none of its",
            "bookkeeping (send ids, foreign keys, expiry index): each transaction inserts a group of rows",
            "(1, or 64) and deletes the rows the previous transaction inserted, so a message is inserted",
            "and deleted in different commits as in the relay, and `wal_checkpoint(TRUNCATE)` runs after",
            f"every 64 deleted rows as in the relay; {runs} of {plan.sqlite_seconds:g} s.",
        )
    )
    memory = " ".join(
        (
            f"Memory: a fresh relay; {plan.idle_connections:,} queues created over a few connections; the",
            f"relay's resident set read from `/proc`; {plan.idle_connections:,} more connections opened and",
            "each subscribed to one queue; the resident set read again half a second later. The growth is",
            "divided by the connections, and `relay_connections_held` counts those that then answer a PING.",
            "The bench's connections are plain `ws://`; a `wss://` connection costs more, for OpenSSL's",
            "state: measured once the same way (500 idle TLS connections, not subscribed), 45.7 KiB each",
            "with the relay's own TLS over memory buffers, against 81.4 KiB with asyncio's TLS transport",
            "and its read buffer patched down to 32 KiB (the relay before) and 305.7 KiB unpatched.",
        )
    )
    return "\n\n".join((setup, throughput, latency, limits, memory)) + "\n"
