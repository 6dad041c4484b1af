"""Key epochs (docs/protocol.md §15.11): when the key rotates, what a rotation leaves, kill -9 mid-way."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import VaultCorruptedError, VaultLockedError
from burnerkit.vault import FAST_TEST_KDF, Vault
from burnerkit.vault.format import RecordKeys, open_header

from .conftest import PASSPHRASE

SRC = Path(__file__).resolve().parents[3] / "src"


def header_keys(directory: Path) -> list[bytes]:
    return [k for k in open_header((directory / "vault.key").read_bytes(), PASSPHRASE).keys if k is not None]


def stored(directory: Path) -> list[tuple[bytes, bytes]]:
    conn = sqlite3.connect(f"file:{directory / 'vault.sqlite'}?mode=ro", uri=True)
    try:
        return [(bytes(r), bytes(s)) for r, s in conn.execute("SELECT row_id, sealed FROM records")]
    finally:
        conn.close()


def opens_any(key: bytes, directory: Path) -> bool:
    keys = RecordKeys(key)
    for row_id, sealed in stored(directory):
        try:
            keys.open_chunk(row_id, sealed)
        except VaultCorruptedError:
            continue
        return True
    return False


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()}
    files["."] = (b"", directory.stat().st_mtime_ns)
    return files


@pytest.fixture
def filled(vault_dir: Path) -> Path:
    rng = DeterministicRandom(b"epochs")
    with Vault.create(vault_dir, PASSPHRASE, rng=rng, kdf=FAST_TEST_KDF) as v, v.transaction() as tx:
        for i in range(5):
            tx.put("message", f"m{i}".encode(), f"message {i}".encode())
        tx.put("contact", b"alice", b"alice's keys")
    return vault_dir


def test_first_write_after_unlock_rotates_the_key(filled: Path) -> None:
    (before,) = header_keys(filled)
    assert opens_any(before, filled)
    with Vault.open(filled, PASSPHRASE) as v:
        with v.transaction() as tx:
            tx.put("message", b"new", b"written after the unlock")
        (after,) = header_keys(filled)
        assert after != before
        # Every record was re-sealed: the key of the earlier epoch opens none of them.
        assert not opens_any(before, filled)
        assert opens_any(after, filled)
        # Later writes of the same unlock stay in its epoch (one rotation per unlock).
        with v.transaction() as tx:
            tx.put("message", b"newer", b"same epoch")
        assert header_keys(filled) == [after]
        assert v.get("message", b"m3") == b"message 3"
    assert (filled / "vault.sqlite-journal").stat().st_size == 0


def test_deletion_batch_rotates_the_key_before_commit_returns(filled: Path) -> None:
    with Vault.open(filled, PASSPHRASE) as v:
        with v.transaction() as tx:
            tx.put("message", b"burn-on-read", b"read once")
        (epoch_1,) = header_keys(filled)
        with v.transaction() as tx:
            assert tx.delete("message", b"burn-on-read")
        (epoch_2,) = header_keys(filled)
        assert epoch_2 != epoch_1
        assert not opens_any(epoch_1, filled)
        with v.transaction() as tx:  # deleting nothing is not a deletion batch
            assert not tx.delete("message", b"burn-on-read")
        assert header_keys(filled) == [epoch_2]
        assert v.get("message", b"burn-on-read") is None
        assert len(v.items("message")) == 5


def test_read_only_unlock_writes_nothing(filled: Path) -> None:
    before = snapshot(filled)
    with Vault.open(filled, PASSPHRASE) as v:
        assert len(v.items("message")) == 5
        assert v.get("contact", b"alice") == b"alice's keys"
        with v.transaction() as tx:  # a transaction that only reads commits nothing
            assert tx.get("contact", b"alice") == b"alice's keys"
    assert snapshot(filled) == before


def test_database_grows_in_coarse_steps(vault: Vault, vault_dir: Path) -> None:
    sizes = set()
    for i in range(40):
        with vault.transaction() as tx:
            tx.put("message", str(i).encode(), os.urandom(9000))
        sizes.add((vault_dir / "vault.sqlite").stat().st_size)
    # About 370 KB of records: the file took three sizes, each a multiple of 256 KiB.
    assert sizes == {256 << 10, 512 << 10, 768 << 10}


def test_two_openers_follow_each_others_rotations(filled: Path) -> None:
    a = Vault.open(filled, PASSPHRASE)
    b = Vault.open(filled, PASSPHRASE)
    try:
        with a.transaction() as tx:  # a's first write: a new epoch
            tx.put("message", b"from a", b"a")
        assert b.get("message", b"from a") == b"a"  # b re-reads the header with its KEK
        with b.transaction() as tx:  # b's first write: another epoch, and a deletion
            tx.put("message", b"from b", b"b")
            assert tx.delete("message", b"m0")
        assert a.get("message", b"from b") == b"b"
        assert a.get("message", b"m0") is None
        with a.transaction() as tx:
            assert tx.delete("message", b"from a")
        assert sorted(k for k, _ in b.items("message")) == [b"from b", b"m1", b"m2", b"m3", b"m4"]
        assert len(header_keys(filled)) == 1
    finally:
        a.close()
        b.close()


def test_rotation_after_a_change_of_passphrase_elsewhere_is_refused(filled: Path) -> None:
    a = Vault.open(filled, PASSPHRASE)
    b = Vault.open(filled, PASSPHRASE)
    try:
        b.change_passphrase("new words", rng=DeterministicRandom(b"p"), kdf=FAST_TEST_KDF)
        header = (filled / "vault.key").read_bytes()
        # a holds the old KEK: it must not wrap a key the new passphrase cannot open.
        with pytest.raises(VaultLockedError), a.transaction() as tx:
            tx.put("message", b"x", b"y")
        assert (filled / "vault.key").read_bytes() == header
    finally:
        a.close()
        b.close()
    with Vault.open(filled, "new words") as v:
        assert v.get("message", b"x") is None
        assert len(v.items("message")) == 5


def test_exception_after_a_rotation_rolls_back_to_the_old_key(filled: Path) -> None:
    (before,) = header_keys(filled)
    with Vault.open(filled, PASSPHRASE) as v:

        def doomed() -> None:
            with v.transaction() as tx:
                tx.put("message", b"doomed", b"never committed")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            doomed()
        assert header_keys(filled) == [before]  # the spare slot's unused key was overwritten
        assert v.get("message", b"doomed") is None
        with v.transaction() as tx:
            tx.put("message", b"kept", b"committed")
    with Vault.open(filled, PASSPHRASE) as v:
        assert v.get("message", b"kept") == b"committed"
        assert v.get("message", b"doomed") is None


# -- kill -9 at each step of a rotation -------------------------------------------------------------

ROTATOR = """
    import os, sys
    from pathlib import Path
    from burnerkit.vault import Vault
    directory, crash_at = Path(sys.argv[1]), int(sys.argv[2])
    v = Vault.open(directory, sys.argv[3])
    steps = 0
    def step():
        global steps
        steps += 1
        if steps == crash_at:
            os.kill(os.getpid(), 9)
    real_pwrite, real_fsync = os.pwrite, os.fsync
    def pwrite(fd, data, offset):
        step()  # killed before the slot is written
        return real_pwrite(fd, data, offset)
    def fsync(fd):
        real_fsync(fd)
        step()  # killed after the data is on disk
    os.pwrite, os.fsync = pwrite, fsync
    with v.transaction() as tx:
        tx.put("message", b"new", b"the rotating transaction")
        tx.delete("message", b"m0")
    os.pwrite, os.fsync = real_pwrite, real_fsync
    print("done", flush=True)
"""

# pwrite of the new key into the spare slot, its fsync; COMMIT; pwrite over the old slot, its
# fsync; the journal zeroed (fsync) and truncated (fsync).
ROTATION_STEPS = 6
BEFORE = {f"m{i}".encode() for i in range(5)}
AFTER = (BEFORE - {b"m0"}) | {b"new"}


@pytest.mark.parametrize("crash_at", range(1, ROTATION_STEPS + 2))
def test_rotation_killed_at_each_step_keeps_the_vault(filled: Path, crash_at: int) -> None:
    (epoch_0,) = header_keys(filled)
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ROTATOR), str(filled), str(crash_at), PASSPHRASE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if crash_at > ROTATION_STEPS:
        assert (proc.returncode, proc.stdout) == (0, "done\n"), proc.stderr
    else:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    committed = crash_at > 2  # the COMMIT comes after the spare slot's fsync
    with Vault.open(filled, PASSPHRASE) as v:  # the open finishes what the crash left
        assert {k for k, _ in v.items("message")} == (AFTER if committed else BEFORE)
        (current,) = header_keys(filled)  # exactly one key left in the header
        assert (current == epoch_0) is not committed
        assert not opens_any(epoch_0, filled) or not committed
        assert (filled / "vault.sqlite-journal").stat().st_size == 0
        with v.transaction() as tx:  # and the vault goes on
            tx.put("message", b"later", b"after the crash")
    with Vault.open(filled, PASSPHRASE) as v:
        assert v.get("message", b"later") == b"after the crash"
