"""A fork server for the tests' ``burner`` steps and relay processes: start-up paid once.

A ``burner`` step run as ``python -m burnerkit ...`` spends most of its 0.4 s starting the
interpreter and importing the CLI, the Messenger, cryptography and websockets; a relay
process (``python -m burnerkit relay serve``) spends most of its start-up importing too.
The tests start hundreds of each, on every worker. A zygote is one
``python -m tests.e2e.zygote`` process per test worker and kind (``burner`` steps, relays)
that imports that kind's modules once (:data:`PRELOAD`), then forks a child per process.
The child becomes the process asked for, the way ``exec`` would have made it:

- it takes the step's stdin, stdout and stderr (passed over a unix socket, ``SCM_RIGHTS``)
  as fds 0, 1 and 2 and closes every other fd, as ``Popen(close_fds=True)`` does;
- it takes the step's environment (``os.environ`` and the C ``environ``), working directory
  and umask, and calls ``time.tzset()``;
- it builds new ``sys.stdin``/``stdout``/``stderr`` objects over fds 0-2 the way the
  interpreter's start-up does (encoding, errors, ``newline="\\n"``, line buffering on a
  terminal and always for stderr), sets ``sys.argv``, ``sys.orig_argv`` and ``sys.path[0]``
  as ``-m`` does, and puts back any signal handler that differs from a fresh start's;
- it then runs the real ``burnerkit.__main__`` with :func:`runpy.run_module`, as ``-m``
  does, and exits through the interpreter's normal shutdown (atexit, flushing).

So each step is still a process of its own, with its own pid, exit status (a signal shows
as ``-N``), and can be sent SIGINT or SIGKILL; :class:`ForkedPopen` is a
:class:`subprocess.Popen` whose child comes from the zygote, so ``communicate``, ``wait``,
``poll``, ``kill`` and ``send_signal`` behave as for an exec'd child.

What a fork shares with the zygote, checked against a fresh ``python -m burnerkit``:

- Environment read at import: burnerkit reads ``BURNER_*`` only when a command runs
  (``app/home.py``, ``cli/*.py``), never at import. The zygote runs with the worker's
  environment minus ``BURNER_*`` and ``PYTEST_CURRENT_TEST``; a step whose environment
  differs from it in anything else (``PYTHON*``, locale, ``TERM``, ...: what the
  interpreter, Rich or Typer might read at start-up or import) is exec'd instead.
- Module globals: the CLI's consoles (``cli/output.py``) are created lazily, on first
  use, by the child; the Typer app is built at import from constants only; no module
  caches a pid, a time, a terminal size or ``isatty`` at import.
- Randomness: burnerkit draws from ``os.urandom``/``secrets`` (no state to share);
  OpenSSL reseeds its generator in a forked child; the stdlib ``random`` module reseeds
  itself at fork. The one thing not renewed is the interpreter's string-hash seed: every
  child iterates a set of strings in the same order (a fresh process would not). Nothing in
  burnerkit relies on that order either way.
- Loggers: none configured at import (the relay configures its own when it serves, in the
  child); asyncio: no event loop or policy set at import: each command, and the relay,
  calls ``asyncio.run``, which makes a new loop in the child. The relay's threads (the
  SQLite writer) and sockets are made by the child, after the fork.
- Output at import: a warning printed while importing would be on every exec'd step's
  stderr; the zygote's stderr must be empty once it has imported, or no test runs.
- Threads and fds: the zygote checks that after its imports it has one thread and no fd
  beyond 0-2 (a fork copies only the calling thread, and an fd held by a module object
  would outlive the child's ``closerange``).

What a fork cannot be, and where a test keeps the real ``exec`` (``Person(exec=True)``,
``popen(..., exec=True)``, or its own :class:`subprocess.Popen`): ``/proc/PID/cmdline``
shows the zygote's command line, the modules the zygote imported are already in
``sys.modules`` (so the start-up checks of ``test_cli.py`` exec), and the process group is
the zygote's. Tests of start-up and imports, of the ``burner`` script and its argv
(``test_guides.py``), of a terminal (pty: ``test_terminal.py``), of argv and /proc
(``test_chat.py``'s stdin tests), of a relay's start-up (``tests/relay``) exec, as they
start their processes themselves.

Without ``os.fork``, ``os.pidfd_open`` or ``socket.send_fds`` (not Linux), or with
``$BURNERKIT_TESTS_EXEC=1`` (to compare), every step is exec'd.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

#: What each kind of process imports, loaded once by its zygote (the commands import most
#: lazily). A relay's zygote loads the relay's modules only, as a fresh relay process would.
PRELOAD = {
    "burner": (
        "burnerkit.cli.main",
        "burnerkit.cli.output",
        "burnerkit.app.messenger",
        "burnerkit.app.home",
        "burnerkit.app.durations",
        "burnerkit.app.views",
        "burnerkit.crypto.passphrase",
        "asyncio",
        "rich.console",
        "segno",
    ),
    "relay": (
        "burnerkit.cli.main",
        "burnerkit.relay.server.cli",
        "burnerkit.relay.server.store.sqlite",
        "burnerkit.relay.server.store.memory",
        "burnerkit.relay.server.store.writebehind",
    ),
}
#: Set to 1 to exec every step (the comparison the speed-up is measured against).
EXEC_ONLY = "BURNERKIT_TESTS_EXEC"
#: Keys that may differ between a step's environment and the zygote's.
_PER_STEP = ("BURNER_",)
_PER_TEST = ("PYTEST_CURRENT_TEST",)
_ROOT = Path(__file__).resolve().parents[2]
_LENGTH = struct.Struct("!I")
_NUMBER = struct.Struct("!q")
_READY = b"ready\n"
#: Seconds the zygote may take to import what it preloads.
_START_TIMEOUT = 60.0


def _kind(args: Sequence[str]) -> str | None:
    """Which zygote stands for exec'ing ``args``: a relay's, a ``burner`` step's, or none."""
    if list(args[:3]) != [sys.executable, "-m", "burnerkit"]:
        return None
    return "relay" if list(args[3:5]) == ["relay", "serve"] else "burner"


def _base_env(env: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value for key, value in env.items() if not key.startswith(_PER_STEP) and key not in _PER_TEST
    }


# -- the zygote's side -------------------------------------------------------------------------


class _Request:
    """One step, as the zygote's child receives it."""

    def __init__(self, data: dict[str, Any], fds: list[int]) -> None:
        self.argv: list[str] = data["argv"]
        self.env: dict[str, str] = data["env"]
        self.cwd: str = data["cwd"]
        self.umask: int = data["umask"]
        self.fds = fds


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("the other end closed the connection")
        data += chunk
    return data


def _receive_request(conn: socket.socket) -> _Request:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    if len(fds) != 3 or len(data) < _LENGTH.size:
        for fd in fds:
            os.close(fd)
        raise EOFError("a request without its three fds")
    (length,) = _LENGTH.unpack_from(data)
    body = data[_LENGTH.size :]
    body += _recv_exactly(conn, length - len(body))
    return _Request(json.loads(body), fds)


def _open_fds() -> set[int]:
    """The fds beyond 0-2 this process holds (not the one the listing itself used)."""
    listed = {int(name) for name in os.listdir("/proc/self/fd")} - {0, 1, 2}
    held = set()
    for fd in listed:
        with contextlib.suppress(OSError):
            os.fstat(fd)
            held.add(fd)
    return held


def _serve(path: str, preload: Sequence[str]) -> tuple[_Request, dict[int, Any]] | None:
    """Fork a child per request; returns only in a child (with its request), or at the end."""
    handlers: dict[int, Any] = {number: signal.getsignal(number) for number in signal.valid_signals()}
    for name in preload:
        importlib.import_module(name)
    # A fork copies the calling thread only; an fd some module holds would be closed under it.
    assert threading.active_count() == 1, f"the preloaded modules started threads: {threading.enumerate()}"
    leftover = _open_fds()
    assert not leftover, f"the preloaded modules hold fds {leftover}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    # The lifeline: the worker holds our stdin open; its end (the worker died or is done) is ours.
    selector.register(0, selectors.EVENT_READ, None)
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)
    os.write(1, _READY)
    while True:
        for key, _ in selector.select():
            if key.fileobj == 0:
                if not os.read(0, 4096):
                    # The worker may have been killed: what it would have removed goes here.
                    shutil.rmtree(os.path.dirname(path), ignore_errors=True)
                    return None
            elif key.fileobj is listener:
                conn, _ = listener.accept()
                try:
                    request = _receive_request(conn)
                except (OSError, EOFError, ValueError):
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    listener.close()
                    for pidfd, (_, other) in children.items():
                        os.close(pidfd)
                        other.close()
                    conn.close()
                    return request, handlers
                for fd in request.fds:
                    os.close(fd)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (pid, conn)
                selector.register(pidfd, selectors.EVENT_READ, None)
                with contextlib.suppress(OSError):
                    conn.sendall(_NUMBER.pack(pid))
            else:
                pidfd = int(key.fd)
                pid, conn = children.pop(pidfd)
                selector.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                with contextlib.suppress(OSError):
                    conn.sendall(_NUMBER.pack(status))
                conn.close()


def _stdio(fd: int, mode: str, like: TextIO) -> io.TextIOWrapper:
    """A standard stream over ``fd``, as the interpreter's start-up makes it (create_stdio)."""
    buffer: Any = open(fd, mode + "b", closefd=False)  # noqa: SIM115 (the stream owns it)
    line_buffering = mode == "w" and (fd == 2 or os.isatty(fd))
    stream = io.TextIOWrapper(
        buffer, encoding=like.encoding, errors=like.errors, newline="\n", line_buffering=line_buffering
    )
    stream.mode = mode  # type: ignore[misc]
    return stream


def _become(request: _Request, handlers: dict[int, Any]) -> None:
    """Turn this fresh fork of the zygote into the requested step (see the module docstring)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    for target, fd in enumerate(request.fds):
        os.dup2(fd, target)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    for number, handler in handlers.items():
        if handler is not None and signal.getsignal(number) != handler:
            signal.signal(number, handler)
    os.chdir(request.cwd)
    os.umask(request.umask)
    os.environ.clear()
    os.environ.update(request.env)
    time.tzset()
    sys.stdin = sys.__stdin__ = _stdio(0, "r", sys.stdin)  # type: ignore[misc]
    sys.stdout = sys.__stdout__ = _stdio(1, "w", sys.stdout)  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = _stdio(2, "w", sys.stderr)  # type: ignore[misc]
    sys.orig_argv = [sys.executable, *request.argv]
    sys.argv = ["-m", *request.argv[2:]]
    sys.path[0] = os.getcwd()


# -- the worker's side -------------------------------------------------------------------------


class Zygote:
    """The zygote process of this test worker, and a unix socket to ask it for children."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.directory = tempfile.mkdtemp(prefix=f"{kind}-zygote-")
        self.path = os.path.join(self.directory, "socket")
        self.env = _base_env(os.environ)
        self.errors = Path(self.directory) / "stderr"
        with self.errors.open("wb") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.e2e.zygote", self.path, *PRELOAD[kind]],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                cwd=_ROOT,
                env=self.env,
            )
        assert self.process.stdout is not None
        ready = selectors.DefaultSelector()
        ready.register(self.process.stdout, selectors.EVENT_READ)
        started = ready.select(_START_TIMEOUT) and self.process.stdout.read(len(_READY)) == _READY
        ready.close()
        self.process.stdout.close()
        # What the imports print (a warning) would go to each exec'd step's stderr, where the
        # tests look for exactly one line: here it would go to the zygote's file instead.
        said = self.errors.read_text()
        if not started or said:
            self.close()
            raise RuntimeError(f"the {kind} zygote did not start cleanly: {said}")

    def serves(self, args: Sequence[str], env: Mapping[str, str] | None) -> bool:
        """Whether a fork of the zygote is what exec'ing ``args`` with ``env`` would start."""
        return (
            self.process.poll() is None
            and _kind(args) == self.kind
            and _base_env(os.environ if env is None else env) == self.env
        )

    def spawn(
        self, args: Sequence[str], env: Mapping[str, str], cwd: str | os.PathLike[str], fds: Sequence[int]
    ) -> tuple[int, socket.socket]:
        """Have the zygote fork a child running ``args``; its pid and the socket its status comes on."""
        umask = os.umask(0o077)
        os.umask(umask)
        payload = json.dumps(
            {"argv": list(args[1:]), "env": dict(env), "cwd": os.path.abspath(cwd), "umask": umask}
        ).encode()
        message = _LENGTH.pack(len(payload)) + payload
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
            sent = socket.send_fds(conn, [message], list(fds))
            conn.sendall(message[sent:])
            (pid,) = _NUMBER.unpack(_recv_exactly(conn, _NUMBER.size))
        except BaseException:
            conn.close()
            raise
        return pid, conn

    def close(self) -> None:
        """End the zygote (its children, the running steps, are not touched)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


_EXPECTED_SIGNATURE = [
    *("self", "args", "executable", "preexec_fn", "close_fds", "pass_fds", "cwd", "env"),
    *("startupinfo", "creationflags", "shell", "p2cread", "p2cwrite", "c2pread", "c2pwrite"),
    *("errread", "errwrite", "restore_signals", "gid", "gids", "uid", "umask"),
    *("start_new_session", "process_group"),
]


def _usable() -> bool:
    return (
        os.environ.get(EXEC_ONLY) != "1"
        and hasattr(os, "fork")
        and hasattr(os, "pidfd_open")
        and hasattr(socket, "send_fds")
        and os.path.isdir("/proc/self/fd")
        # ForkedPopen replaces the fork+exec of this Popen; another version's may differ.
        and list(inspect.signature(subprocess.Popen._execute_child).parameters)  # type: ignore[attr-defined]
        == _EXPECTED_SIGNATURE
    )


class ForkedPopen(subprocess.Popen[Any]):
    """A :class:`subprocess.Popen` whose child is forked by the zygote instead of exec'd.

    Popen makes the pipes and the text streams and runs ``communicate``/``wait``/``kill``;
    only the start (``_execute_child``) and the reaping (``_try_wait``, ``_internal_poll``)
    differ: the zygote is the child's parent, and sends its wait status on the socket.
    """

    def __init__(self, zygote: Zygote, args: Sequence[str], **options: Any) -> None:
        self._zygote = zygote
        self._status: socket.socket | None = None
        super().__init__(args, **options)

    def _execute_child(
        self, args: Sequence[str], executable: Any, preexec_fn: Any, close_fds: bool, pass_fds: Any,
        cwd: Any, env: Mapping[str, str], startupinfo: Any, creationflags: Any, shell: bool,
        p2cread: int, p2cwrite: int, c2pread: int, c2pwrite: int, errread: int, errwrite: int,
        restore_signals: bool, gid: Any, gids: Any, uid: Any, umask: int,
        start_new_session: bool, process_group: Any,
    ) -> None:  # fmt: skip
        # popen() passes no more than pipes and text: the rest of Popen's options keep their defaults.
        assert (executable, shell, pass_fds, close_fds) == (None, False, (), True)
        fds = [
            p2cread if p2cread != -1 else 0,
            c2pwrite if c2pwrite != -1 else 1,
            errwrite if errwrite != -1 else 2,
        ]
        self.pid, self._status = self._zygote.spawn(args, env, os.getcwd() if cwd is None else cwd, fds)
        self._child_created = True
        self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)  # type: ignore[attr-defined]

    def _try_wait(self, wait_flags: int) -> tuple[int, int]:
        assert self._status is not None
        if wait_flags & os.WNOHANG and not _readable(self._status):
            return 0, 0
        (status,) = _NUMBER.unpack(_recv_exactly(self._status, _NUMBER.size))
        self._status.close()
        return self.pid, status

    def _internal_poll(self, _deadstate: int | None = None, *_: Any) -> int | None:
        if self.returncode is None and self._waitpid_lock.acquire(False):  # type: ignore[attr-defined]
            try:
                if self.returncode is None:
                    pid, status = self._try_wait(os.WNOHANG)
                    if pid == self.pid:
                        self._handle_exitstatus(status)  # type: ignore[attr-defined]
            except (OSError, EOFError):
                if _deadstate is not None:
                    self.returncode = _deadstate
            finally:
                self._waitpid_lock.release()  # type: ignore[attr-defined]
        return self.returncode


def _readable(conn: socket.socket) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(conn, selectors.EVENT_READ)
        return bool(selector.select(0))


_zygotes: dict[str, Zygote] = {}
_zygotes_lock = threading.Lock()


def popen(
    args: Sequence[str], *, exec: bool = False, env: Mapping[str, str] | None = None, **options: Any
) -> subprocess.Popen[Any]:
    """``subprocess.Popen(args, env=env, **options)``, forked by this worker's zygote when it can be.

    ``exec=True``, a command other than ``python -m burnerkit``, an environment the zygote
    cannot stand for, options beyond pipes and text, or a machine without the zygote: exec.
    """
    kind = _kind(args)
    if (
        not exec
        and kind is not None
        and set(options) <= {"stdin", "stdout", "stderr", "text", "cwd"}
        and _usable()
    ):
        with _zygotes_lock:
            if kind not in _zygotes:
                _zygotes[kind] = Zygote(kind)
            zygote = _zygotes[kind]
        if zygote.serves(args, env):
            return ForkedPopen(zygote, args, env=os.environ if env is None else env, **options)
    return subprocess.Popen(args, env=env, **options)


def shutdown() -> None:
    """Stop this worker's zygotes, if any was started."""
    with _zygotes_lock:
        while _zygotes:
            _zygotes.popitem()[1].close()


if __name__ == "__main__":
    _child = _serve(sys.argv[1], sys.argv[2:])
    if _child is None:
        sys.exit(0)
    _become(*_child)
    del _child
    import runpy

    runpy.run_module("burnerkit", run_name="__main__", alter_sys=True)
