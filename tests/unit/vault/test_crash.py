"""kill -9 at any instant: a transaction is all or nothing, and a burn resumes (BRIEF §5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import VaultLockedError
from burnerkit.vault import FAST_TEST_KDF, Vault

from .conftest import PASSPHRASE

SRC = Path(__file__).resolve().parents[3] / "src"


def child(script: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def wait_for(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == line


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    assert proc.stdout is not None
    proc.stdout.close()


@pytest.fixture
def committed(vault_dir: Path) -> Path:
    rng = DeterministicRandom(b"crash")
    with Vault.create(vault_dir, PASSPHRASE, rng=rng, kdf=FAST_TEST_KDF) as v, v.transaction() as tx:
        for k in range(10):
            tx.put("counter", str(k).encode(), b"0")
    return vault_dir


WRITER = """
    import sys, time
    from pathlib import Path
    from burnerkit.vault import Vault
    v = Vault.open(Path(sys.argv[1]), sys.argv[2])
    if sys.argv[3] == "hang":
        with v.transaction() as tx:
            for k in range(10):
                tx.put("counter", str(k).encode(), b"never committed" * 100)
            print("inside", flush=True)
            time.sleep(60)
    i = 0
    while True:
        i += 1
        with v.transaction() as tx:
            for k in range(10):
                tx.put("counter", str(k).encode(), str(i).encode() * (1 + i % 50))
        if i == 5:
            print("running", flush=True)
"""


def counters(directory: Path) -> set[bytes]:
    with Vault.open(directory, PASSPHRASE) as v:
        items = v.items("counter")
    assert len(items) == 10
    return {value for _, value in items}


def test_kill_inside_a_transaction_keeps_nothing_of_it(committed: Path) -> None:
    proc = child(WRITER, str(committed), PASSPHRASE, "hang")
    wait_for(proc, "inside")
    kill(proc)
    assert counters(committed) == {b"0"}


@pytest.mark.parametrize("delay", [0.0, 0.013, 0.041])
def test_kill_at_a_random_instant_is_all_or_nothing(committed: Path, delay: float) -> None:
    proc = child(WRITER, str(committed), PASSPHRASE, "loop")
    wait_for(proc, "running")
    time.sleep(delay)
    kill(proc)
    values = counters(committed)
    assert len(values) == 1  # all ten records from one and the same transaction
    assert values != {b"0"}


SHREDDER = """
    import os, sys
    from pathlib import Path
    from burnerkit.vault import Vault
    directory, crash_at = Path(sys.argv[1]), int(sys.argv[2])
    v = Vault.open(directory, sys.argv[3])
    with v.transaction() as tx:
        tx.put("note", b"k", b"x" * 5000)   # leaves vault.sqlite-journal on disk (empty)
    calls = 0
    real_fsync = os.fsync
    def fsync(fd):
        global calls
        real_fsync(fd)
        calls += 1
        if calls == crash_at:
            os.kill(os.getpid(), 9)
    os.fsync = fsync
    Vault.shred(directory)
    print("done", flush=True)
"""

# Vault.shred fsyncs five times on a vault left open: vault.key, the directory, -journal,
# vault.sqlite, the directory.
SHRED_FSYNCS = 5


@pytest.mark.parametrize("crash_at", range(1, SHRED_FSYNCS + 2))
def test_burn_killed_at_each_step_completes_on_the_next_run(committed: Path, crash_at: int) -> None:
    proc = child(SHREDDER, str(committed), str(crash_at), PASSPHRASE)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    code = proc.wait(10)
    if crash_at > SHRED_FSYNCS:
        assert (code, out) == (0, "done\n")
        assert not committed.exists()
        return
    assert code == -signal.SIGKILL
    # Step one already overwrote the header in place: nothing left can be unlocked.
    with pytest.raises(VaultLockedError):
        Vault.open(committed, PASSPHRASE)
    Vault.shred(committed)
    assert not committed.exists()
