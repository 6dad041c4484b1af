"""What the end-to-end tests share: people who run the real ``burner`` command, and relay peeks.

Every step of every test is ``python -m burnerkit ...`` in a process of its own, as a user
would type it, with the person's own home (``$BURNER_HOME``) and passphrase
(``$BURNER_PASSPHRASE``), the fast test KDF (``$BURNER_INSECURE_FAST_KDF=1``), against
relay processes on loopback started by :mod:`tests.integration.harness`.

The process is forked from this worker's zygote (:mod:`tests.e2e.zygote`), which has the
CLI's modules imported already, rather than exec'd: the real ``burnerkit.__main__`` runs
with the step's own argv, environment, cwd, umask and stdio, in a child with its own pid,
exit status and signals, and the interpreter's start-up (most of a step's 0.4 s) is paid
once per worker. What was checked to be the same as in a fresh ``exec`` (environment read
at import, module globals, the random generators, loggers, the asyncio policy, threads and
fds), and what is not (``/proc/PID/cmdline``, ``sys.modules``, the process group, the
string-hash seed), is listed in that module's docstring. ``Person(root, name, exec=True)``
execs every step of that person, for the tests that check what a fork cannot show;
``BURNERKIT_TESTS_EXEC=1`` execs every step of the run.

- :class:`Person` runs ``burner`` and returns an :class:`Outcome` (exit code, stdout,
  stderr), asserting the exit code it was told to expect and that no traceback was
  printed. :meth:`Person.start` runs one in the background, so independent steps of
  different people overlap.
- :func:`queue_ids` and :func:`relay_files_bytes` look into a relay's SQLite store.
- :func:`spellings_of` and :func:`files_containing` look for a canary on disk.
- :func:`start_child` runs a small script on the real :class:`Messenger` with one method
  patched to ``SIGKILL`` its own process: a real crash at a chosen instant.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e import zygote
from tests.integration.harness import Lines

#: Seconds one ``burner`` step may take before the test fails.
STEP_TIMEOUT = 60.0


@dataclass(frozen=True)
class Outcome:
    """How one ``burner`` run ended."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The JSON document on stdout (the last line: ``pair --json`` prints two)."""
        lines = self.stdout.strip().splitlines()
        assert lines, f"'burner {' '.join(self.args)}' printed nothing on stdout"
        return json.loads(lines[-1])

    @property
    def error(self) -> str:
        """The one line on stderr (after the fast-KDF warning of ``new``), asserting there is one."""
        lines = [line for line in self.stderr.splitlines() if "BURNER_INSECURE_FAST_KDF" not in line]
        assert len(lines) == 1, f"expected one line on stderr, got {self.stderr!r}"
        return lines[0]

    def describe(self) -> str:
        return (
            f"'burner {' '.join(self.args)}' exited {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


class Running:
    """A ``burner`` process started in the background; :meth:`finish` collects it."""

    def __init__(self, args: tuple[str, ...], process: subprocess.Popen[str]) -> None:
        self.args = args
        self.process = process

    def finish(self, expect: int | None = 0, timeout: float = STEP_TIMEOUT) -> Outcome:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            stdout, stderr = self.process.communicate()
            raise AssertionError(f"'burner {' '.join(self.args)}' hung:\n{stdout}\n{stderr}") from None
        outcome = Outcome(self.args, self.process.returncode, stdout, stderr)
        assert "Traceback" not in stdout + stderr, outcome.describe()
        if expect is not None:
            assert outcome.returncode == expect, outcome.describe()
        return outcome


class Person:
    """Someone with a home directory and a passphrase, typing ``burner`` commands."""

    def __init__(self, root: Path, name: str, *, exec: bool = False) -> None:
        self.name = name
        self.home = root / name
        self.passphrase = f"the passphrase of {name}"
        #: ``$BURNER_RELAY_TIMEOUT`` for this person's commands, when set
        self.relay_timeout: float | None = None
        #: Exec every step (a fresh interpreter) rather than fork it from the zygote.
        self.exec = exec

    def __repr__(self) -> str:
        return f"Person({self.name!r})"

    @property
    def directory(self) -> Path:
        """The directory of this person's one burner: a random id, never the name (§15.1).

        Once the burner is burned (none left), a path that does not exist.
        """
        found = burner_directories(self.home)
        assert len(found) <= 1, f"{self.name} has {len(found)} burners: {found}"
        return found[0] if found else self.home / "no-burner"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("BURNER_")}
        env["BURNER_HOME"] = str(self.home)
        env["BURNER_PASSPHRASE"] = self.passphrase
        env["BURNER_INSECURE_FAST_KDF"] = "1"
        env["BURNER_CONNECT_JITTER"] = "0"  # fast: see tests/conftest.py
        if self.relay_timeout is not None:
            env["BURNER_RELAY_TIMEOUT"] = str(self.relay_timeout)
        env.update(extra or {})
        return env

    def start(self, *args: str, env: dict[str, str] | None = None) -> Running:
        """Start ``burner ARGS`` in the background."""
        process = zygote.popen(
            [sys.executable, "-m", "burnerkit", *args],
            exec=self.exec,
            env=self.env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return Running(args, process)

    def run(self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> Outcome:
        """Run ``burner ARGS`` and wait; the exit code must be ``expect`` (None: anything)."""
        return self.start(*args, env=env).finish(expect)

    def json(self, *args: str) -> Any:
        """Run ``burner ARGS --json`` (exit 0) and return the JSON it printed."""
        return self.run(*args, "--json").json()

    def mint(self, relay_url: str, *options: str, expires: str = "1d") -> Running:
        """Start ``burner new NAME --relay URL [OPTIONS]`` (finish it, or use :func:`mint`)."""
        return self.start("new", self.name, "--relay", relay_url, "--expires", expires, *options)

    def inbox(self) -> list[dict[str, Any]]:
        """The messages a fresh ``burner inbox --json`` shows (its events left out)."""
        items: list[dict[str, Any]] = self.json("inbox")
        return [item for item in items if item["type"] == "message"]

    def texts(self) -> list[str]:
        """The texts a fresh ``burner inbox --json`` shows."""
        return [message["text"] for message in self.inbox()]


class Follower:
    """``burner inbox --follow --json`` of one person, running while the ``with`` block runs.

    :meth:`next` reads one JSON line with a deadline (a line that never comes fails the
    test rather than hanging it); :meth:`stop` interrupts it as Ctrl-C would and keeps
    its ``returncode``, the ``rest`` of its stdout and its ``errors`` (stderr).
    """

    def __init__(self, person: Person) -> None:
        self.process = zygote.popen(
            [sys.executable, "-m", "burnerkit", "inbox", "--follow", "--json"],
            exec=person.exec,
            env=person.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines = Lines(self.process)
        self.returncode: int | None = None
        self.rest = ""
        self.errors = ""

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._lines.close()
        if self.process.stderr is not None:
            self.process.stderr.close()

    def next(self) -> Any:
        """The next JSON document it printed."""
        return json.loads(self._lines.next())

    def stop(self) -> None:
        """Interrupt it (SIGINT) and collect how it ended."""
        self.process.send_signal(signal.SIGINT)
        self.returncode = self.process.wait(timeout=STEP_TIMEOUT)
        self.rest = self._lines.rest()
        assert self.process.stderr is not None
        self.errors = self.process.stderr.read()


def together(*running: Running, expect: int | None = 0) -> list[Outcome]:
    """Collect processes started in the background, in order."""
    return [one.finish(expect) for one in running]


def mint(relay_url: str, *people: Person, expires: str = "1d") -> None:
    """Mint a burner for each person, all at once."""
    together(*(person.mint(relay_url, expires=expires) for person in people))


def pair_by_link(inviter: Person, acceptor: Person, *, inviter_calls: str, acceptor_calls: str) -> None:
    """``inviter`` invites, ``acceptor`` accepts, the inviter's inbox takes in the acceptance."""
    link = inviter.json("invite", "--for", inviter_calls)["link"]
    acceptor.run("accept", link, "--name", acceptor_calls)
    out = inviter.run("inbox").stdout
    assert f"new contact {inviter_calls} accepted your invitation" in out, out


# -- the relay's store -----------------------------------------------------------------------


def _read_only(store: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{store}?mode=ro", uri=True)


def queue_ids(store: Path) -> set[bytes]:
    """The recipient ids of every queue the relay's store holds right now."""
    db = _read_only(store)
    try:
        return {bytes(row[0]) for row in db.execute("SELECT recipient_id FROM queues")}
    finally:
        db.close()


def waiting_messages(store: Path) -> int:
    db = _read_only(store)
    try:
        (count,) = db.execute("SELECT count(*) FROM messages").fetchone()
    finally:
        db.close()
    return int(count)


def relay_files_bytes(store: Path) -> dict[str, bytes]:
    """The bytes of the relay's SQLite file and of its -wal, -shm and -journal files."""
    out = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(str(store) + suffix)
        if path.exists():
            out[path.name] = path.read_bytes()
    return out


# -- canaries ----------------------------------------------------------------------------------


def spellings_of(secret: str) -> list[bytes]:
    """``secret`` as bytes might hold it: UTF-8, UTF-16-LE and hex (both cases)."""
    raw = secret.encode()
    return [raw, secret.encode("utf-16-le"), raw.hex().encode(), raw.hex().upper().encode()]


def burner_directories(home: Path) -> list[Path]:
    """The directories of the burners in ``home`` (each a random id)."""
    return sorted(path for path in home.iterdir() if path.is_dir()) if home.exists() else []


def burn_marker(directory: Path) -> Path:
    """Where a crashed burn's marker would be: a file in the burner's directory named by an id."""
    return directory / ("m" * 26)


def is_burning(directory: Path) -> bool:
    """Whether ``directory`` holds a burn marker (any file but the vault's own)."""
    return any(not path.name.startswith("vault.") for path in directory.iterdir() if path.is_file())


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def files_containing(root: Path, secrets: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(file, secret) for every file under ``root`` holding a spelling of a secret."""
    needles = [(secret, spelling) for secret in secrets for spelling in spellings_of(secret)]
    for path in files_under(root):
        data = path.read_bytes()
        for secret, spelling in needles:
            if spelling in data:
                yield str(path.relative_to(root)), secret


# -- a crash in the middle of an operation -----------------------------------------------------

#: The start of every child script: the real Messenger, and a way to die like ``kill -9``.
CHILD_PRELUDE = """
import asyncio
import os
import signal
from pathlib import Path

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def open_messenger():
    home = Home(Path(os.environ["BURNER_HOME"]))
    return Messenger.open(home, None, os.environ["BURNER_PASSPHRASE"], relay_timeout=5.0)
"""


def start_child(person: Person, script: str, path: Path) -> subprocess.Popen[str]:
    """Run ``CHILD_PRELUDE + script`` (written to ``path``) with ``person``'s environment."""
    path.write_text(CHILD_PRELUDE + script)
    return subprocess.Popen(
        [sys.executable, str(path)],
        env=person.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def killed(child: subprocess.Popen[str]) -> None:
    """Assert that ``child`` died of SIGKILL (where its patch put the crash)."""
    stdout, stderr = child.communicate(timeout=STEP_TIMEOUT)
    assert child.returncode == -signal.SIGKILL, f"exit {child.returncode}\n{stdout}\n{stderr}"
