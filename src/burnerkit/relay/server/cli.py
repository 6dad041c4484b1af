"""``burner relay serve``: open the store, run the relay until SIGTERM or SIGINT, stop gracefully.

The arguments are parsed in ``burnerkit.cli.relay``; this module is the glue between a
:class:`RelayConfig` and a running :class:`RelayServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from typing import TextIO

from burnerkit.crypto.certs import fingerprint, leaf_der, self_signed
from burnerkit.errors import BurnerError, UsageError
from burnerkit.relay.url import check_relay_url, pinned_url

from .config import MEMORY_STORE, RelayConfig
from .logs import LOGGER_NAME, JsonFormatter
from .server import RelayServer
from .store.base import MessageStore

__all__ = ["listening_url", "make_certificate", "open_store", "serve"]


#: Seconds between two WAL checkpoints of the relay's SQLite store at least (docs/protocol.md §14.8).
#: Holds up relay_write_through_vs_ws_echo: a checkpoint per 64 deletions was 9% of the writer's time.
_CHECKPOINT_INTERVAL = 0.25


def serve(config: RelayConfig, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the relay until SIGTERM or SIGINT; return the process exit code.

    Prints ``relay listening on URL`` (:func:`listening_url`: the bound port, also for
    ``--port 0``, and with TLS the certificate's pin) to ``out`` once the relay accepts
    connections. A failure to start (address in use,
    TLS files that do not load, a store that does not open) is one line on ``err`` and
    exit code 1, without a traceback.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    handler = _configure_logging(err)
    try:
        return asyncio.run(_serve(config, out))
    except BurnerError as exc:
        print(f"burner: {exc}", file=err, flush=True)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are in place
        return 130
    finally:
        logging.getLogger().removeHandler(handler)


async def open_store(path: str, *, write_behind: float = 0.0) -> MessageStore:
    """The store named by ``--store``: :data:`MEMORY_STORE` or a SQLite file.

    ``write_behind``: seconds the store may hold back a message whose recipient is online
    (``RelayConfig.write_behind``, :class:`~.store.writebehind.WriteBehind`); 0 writes each
    at once. Not for the memory store: its puts are as durable as they get at once, so
    holding them back would save no write and only delay each ``OK``.

    Raises:
        StoreError: if the SQLite file cannot be opened.
    """
    # Imported late: the memory store needs no sqlite3, and --version stays fast.
    if path == MEMORY_STORE:
        from .store.memory import MemoryStore

        return MemoryStore()
    from .store.sqlite import SqliteStore

    store = await SqliteStore.open(path, checkpoint_interval=_CHECKPOINT_INTERVAL)
    if write_behind <= 0:
        return store
    from .store.writebehind import WriteBehind

    return WriteBehind(store, defer_seconds=write_behind)  # holds up relay_vs_ws_echo


async def _serve(config: RelayConfig, out: TextIO) -> int:
    store = await open_store(config.store, write_behind=config.write_behind)
    server = RelayServer(store, config)
    try:
        await server.start()
    except BaseException:
        with contextlib.suppress(BurnerError):
            await store.close()
        raise
    _tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on every platform
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        print(f"relay listening on {listening_url(config, server.bound_port)}", file=out, flush=True)
        await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await server.stop()
    return 0


def listening_url(config: RelayConfig, port: int) -> str:
    """The URL to hand out: ``ws://HOST:PORT``, or with TLS ``wss://HOST:PORT#sha256=PIN``.

    HOST is ``public_host`` (the name clients use), else the interface listened on. The
    pin is the SHA-256 of the leaf certificate of ``tls_cert`` (docs/protocol.md §14.13):
    clients given this URL trust that certificate and nothing else, so a self-signed one
    works, and a CA cannot stand in for it.
    """
    name = config.public_host or config.host
    host = f"[{name}]" if ":" in name else name
    url = f"{'wss' if config.tls else 'ws'}://{host}:{port}"
    if config.tls_cert is None:
        return url
    with open(config.tls_cert, "rb") as pem:
        return pinned_url(url, fingerprint(leaf_der(pem.read())))


def make_certificate(host: str, port: int, cert_path: str, key_path: str, *, days: int) -> str:
    """Write a self-signed certificate for ``host`` and its key; return the pinned URL to hand out.

    The key file is created with mode 0600, and neither file may exist already (a
    certificate in use is not overwritten by mistake: its pin is in every contact's
    address book).

    Raises:
        UsageError: a bad host, port or days, or a file that exists already.
    """
    url = f"wss://{f'[{host}]' if ':' in host else host}:{port}"
    check_relay_url(url)
    for path in (cert_path, key_path):
        if os.path.lexists(path):
            raise UsageError(f"{path} exists already: choose another path, or move it away")
    try:
        cert_pem, key_pem = self_signed(host, days=days)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    try:
        with open(key_path, "xb", opener=_private_opener) as key_file:
            key_file.write(key_pem)
        with open(cert_path, "xb") as cert_file:
            cert_file.write(cert_pem)
    except FileExistsError as exc:
        raise UsageError(f"{exc.filename} exists already: choose another path, or move it away") from exc
    return pinned_url(url, fingerprint(leaf_der(cert_pem)))


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


#: Thresholds of the cyclic garbage collector while the relay serves (Python's default: 700, 10, 10).
GC_THRESHOLDS = (10_000, 50, 10)


def _tune_gc() -> None:
    """Freeze what start-up allocated, and run the cyclic collector less often.

    A relay under load allocates many short-lived containers and frees almost nothing
    by cycle: at Python's default thresholds the collector scans every object in flight,
    and the imported modules, again and again. Frozen, start-up's objects are never
    scanned again. It still runs: a cycle (an exception's traceback) is freed, only
    later. Set here, in the process that owns the loop, and not in the reusable
    :class:`RelayServer`.
    """
    # Holds up relay_server_cpu_us_per_msg (removed: 8% more CPU per relayed message).
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _configure_logging(stream: TextIO) -> logging.Handler:
    """JSON lines on ``stream``: our events from INFO up, other libraries' from WARNING up."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger(LOGGER_NAME).setLevel(logging.INFO)
    return handler
