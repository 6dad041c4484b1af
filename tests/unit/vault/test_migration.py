"""A version 1 vault (tests/migration_data/vault_v1.json) opens, reads, and upgrades on first write.

Version 1 kept one vault key for life, tagged rows with a clear kind tag and ran SQLite in WAL
mode; version 2 rotates keys, has no kind tags and uses a zeroed rollback journal
(docs/protocol.md §15.12). The files were written by the version 1 code and are never
regenerated: they stand for vaults already on users' devices.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from burnerkit.errors import VaultCorruptedError
from burnerkit.vault import Vault
from burnerkit.vault.format import RecordKeys, open_header, open_header_v1

# -- the vault: version 1 (one key for life, clear kind tags, WAL) opens, and upgrades on first write --

VAULT_V1 = json.loads(
    (Path(__file__).parents[2] / "migration_data" / "vault_v1.json").read_text(encoding="utf-8")
)


def vault_v1_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "old-burner"
    directory.mkdir(mode=0o700)
    for name, data in VAULT_V1["files"].items():
        (directory / name).write_bytes(bytes.fromhex(data))
    return directory


def vault_v1_records() -> dict[tuple[str, bytes], bytes]:
    return {(kind, bytes.fromhex(key)): bytes.fromhex(value) for kind, key, value in VAULT_V1["records"]}


def read_all(vault: Vault) -> dict[tuple[str, bytes], bytes]:
    return {
        (kind, key): value for kind in ("profile", "contact", "message") for key, value in vault.items(kind)
    }


def test_version_1_vault_opens_and_reads_without_writing(tmp_path: Path) -> None:
    directory = vault_v1_dir(tmp_path)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()}
    with Vault.open(directory, VAULT_V1["passphrase"]) as vault:
        assert read_all(vault) == vault_v1_records()
        assert vault.get("message", b"m2") is None  # deleted before the copy was frozen
    assert {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir() if p.name in before
    } == before


def test_version_1_vault_is_upgraded_by_its_first_write(tmp_path: Path) -> None:
    directory = vault_v1_dir(tmp_path)
    old_header = (directory / "vault.key").read_bytes()
    old_key = open_header_v1(old_header, VAULT_V1["passphrase"]).keys[0]
    assert old_key is not None
    with Vault.open(directory, VAULT_V1["passphrase"]) as vault, vault.transaction() as tx:
        tx.put("message", b"m3", b"the first write after the upgrade")
    expected = {**vault_v1_records(), ("message", b"m3"): b"the first write after the upgrade"}
    header = (directory / "vault.key").read_bytes()
    assert (len(header), header[7]) == (154, 2)
    assert header[18:34] == old_header[18:34]  # same salt and KDF parameters: same KEK
    conn = sqlite3.connect(directory / "vault.sqlite")
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        # Out of WAL: a rollback journal (PERSIST is set per connection, so a bare one says "delete").
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        columns = [row[1] for row in conn.execute("PRAGMA table_info(records)")]
        assert columns == ["row_id", "sealed"]  # no clear kind tag any more
        stored = conn.execute("SELECT row_id, sealed FROM records").fetchall()
    finally:
        conn.close()
    # The version 1 key opens nothing left: every record was re-sealed, and only one slot opens.
    old = RecordKeys(old_key)
    for row_id, sealed in stored:
        with pytest.raises(VaultCorruptedError):
            old.open_chunk(bytes(row_id), bytes(sealed))
    assert sum(k is not None for k in open_header(header, VAULT_V1["passphrase"]).keys) == 1
    assert not (directory / "vault.sqlite-wal").exists()
    with Vault.open(directory, VAULT_V1["passphrase"]) as vault:
        assert {**read_all(vault)} == expected


UPGRADER = """
    import os, sys
    from pathlib import Path
    from burnerkit.vault import Vault
    directory, crash_at = Path(sys.argv[1]), int(sys.argv[2])
    v = Vault.open(directory, sys.argv[3])
    steps = 0
    real_fsync = os.fsync
    def fsync(fd):
        global steps
        real_fsync(fd)
        steps += 1
        if steps == crash_at:
            os.kill(os.getpid(), 9)
    os.fsync = fsync
    with v.transaction() as tx:
        tx.put("message", b"m3", b"the first write after the upgrade")
    os.fsync = real_fsync
    print("done", flush=True)
"""
# vault.key.tmp written, the directory, the old header's inode overwritten; COMMIT (SQLite's
# own fsyncs); slot 0 overwritten; the journal zeroed and truncated.
UPGRADE_STEPS = 6


@pytest.mark.parametrize("crash_at", range(1, UPGRADE_STEPS + 2))
def test_upgrade_killed_at_each_step_keeps_the_vault(tmp_path: Path, crash_at: int) -> None:
    directory = vault_v1_dir(tmp_path)
    src = Path(__file__).resolve().parents[3] / "src"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(UPGRADER),
            str(directory),
            str(crash_at),
            VAULT_V1["passphrase"],
        ],
        env=dict(os.environ, PYTHONPATH=str(src)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if crash_at > UPGRADE_STEPS:
        assert (proc.returncode, proc.stdout) == (0, "done\n"), proc.stderr
    else:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    upgraded = crash_at > 3  # the COMMIT follows the header's three fsyncs
    expected = vault_v1_records()
    if upgraded:
        expected[("message", b"m3")] = b"the first write after the upgrade"
    with Vault.open(directory, VAULT_V1["passphrase"]) as vault:
        assert read_all(vault) == expected
        header = (directory / "vault.key").read_bytes()
        if len(header) == 154:  # from the rename on: one key left once the open has tidied
            assert sum(k is not None for k in open_header(header, VAULT_V1["passphrase"]).keys) == 1
        with vault.transaction() as tx:
            tx.put("message", b"m4", b"after the crash")
    with Vault.open(directory, VAULT_V1["passphrase"]) as vault:
        assert vault.get("message", b"m4") == b"after the crash"
    assert len((directory / "vault.key").read_bytes()) == 154
