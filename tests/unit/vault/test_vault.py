"""``burnerkit.vault.Vault``: files, transactions, tampering and burning (docs/protocol.md §15)."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import AlreadyExistsError, VaultCorruptedError, VaultError, VaultLockedError
from burnerkit.vault import FAST_TEST_KDF, Vault
from burnerkit.vault.format import HEADER_SIZE

from .conftest import PASSPHRASE

LOCKED = "wrong passphrase, or the vault header is damaged"
CANARY = "CANARY-7f3e-burn-me"


def fill(vault: Vault) -> None:
    with vault.transaction() as tx:
        tx.put("contact", b"alice", b"alice's keys")
        tx.put("contact", b"bob", b"bob's keys")
        tx.put("setting", b"theme", b"dark")


def raw_rows(directory: Path) -> list[tuple[bytes, bytes]]:
    conn = sqlite3.connect(directory / "vault.sqlite")
    try:
        return sorted(conn.execute("SELECT row_id, sealed FROM records").fetchall())
    finally:
        conn.close()


def raw_execute(directory: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    conn = sqlite3.connect(directory / "vault.sqlite")
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


def all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


# -- lifecycle -------------------------------------------------------------------------------------


def test_roundtrip(vault: Vault) -> None:
    fill(vault)
    assert vault.get("contact", b"alice") == b"alice's keys"
    assert vault.get("contact", b"carol") is None
    assert sorted(vault.items("contact")) == [(b"alice", b"alice's keys"), (b"bob", b"bob's keys")]
    assert vault.items("setting") == [(b"theme", b"dark")]
    assert vault.items("nothing") == []


def test_reopen_sees_committed_records(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    vault.close()
    with Vault.open(vault_dir, PASSPHRASE) as again:
        assert again.get("setting", b"theme") == b"dark"
        assert len(again.items("contact")) == 2


def test_files_are_private(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    assert stat.S_IMODE(vault_dir.stat().st_mode) == 0o700
    for path in vault_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert {p.name for p in vault_dir.iterdir()} <= {
        "vault.key",
        "vault.sqlite",
        "vault.sqlite-journal",
    }


def test_create_refuses_an_existing_vault(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    before = all_bytes(vault_dir)
    with pytest.raises(AlreadyExistsError):
        Vault.create(vault_dir, "other", rng=DeterministicRandom(b"x"), kdf=FAST_TEST_KDF)
    assert all_bytes(vault_dir) == before


def test_exists(vault_dir: Path) -> None:
    assert not Vault.exists(vault_dir)
    Vault.create(vault_dir, "pw", rng=DeterministicRandom(b"x"), kdf=FAST_TEST_KDF).close()
    assert Vault.exists(vault_dir)


def test_create_shreds_unreadable_leftovers_of_a_crashed_burn(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    vault.close()
    (vault_dir / "vault.key").unlink()  # a burn killed right after its first step
    with Vault.create(vault_dir, "new", rng=DeterministicRandom(b"y"), kdf=FAST_TEST_KDF) as fresh:
        assert fresh.items("contact") == []


def test_repr_holds_no_key(vault: Vault) -> None:
    assert vault._header is not None
    vault_key = vault._header.keys[vault._slot]
    assert vault_key is not None
    text = repr(vault) + repr(vault._keys)
    assert vault_key.hex() not in text
    assert repr(vault) == "Vault(open)"
    vault.close()
    assert repr(vault) == "Vault(closed)"


def test_closed_vault_is_misuse(vault: Vault) -> None:
    vault.close()
    vault.close()
    with pytest.raises(ValueError, match="closed"):
        vault.get("contact", b"alice")
    with pytest.raises(ValueError, match="closed"), vault.transaction():
        pass


# -- unlocking -------------------------------------------------------------------------------------


def open_error(directory: Path, passphrase: str = PASSPHRASE) -> VaultLockedError:
    with pytest.raises(VaultLockedError) as info:
        Vault.open(directory, passphrase)
    assert type(info.value) is VaultLockedError
    return info.value


def test_wrong_passphrase_is_locked(vault: Vault, vault_dir: Path) -> None:
    vault.close()
    assert str(open_error(vault_dir, "wrong")) == LOCKED


# one position from each field of the header (docs/protocol.md §15.2)
HEADER_FIELDS = {"magic": 3, "version": 7, "kdf": 8, "memory": 12, "iterations": 16, "parallelism": 17,
                 "salt": 20, "nonce": 40, "wrapped-key": 60, "tag": 93}  # fmt: skip


@pytest.mark.parametrize("position", HEADER_FIELDS.values(), ids=HEADER_FIELDS.keys())
def test_tampered_header_looks_like_a_wrong_passphrase(vault: Vault, vault_dir: Path, position: int) -> None:
    vault.close()
    wrong = open_error(vault_dir, "wrong")
    header = bytearray((vault_dir / "vault.key").read_bytes())
    header[position] ^= 0x10
    (vault_dir / "vault.key").write_bytes(bytes(header))
    tampered = open_error(vault_dir)
    assert (type(tampered), str(tampered), tampered.args) == (type(wrong), str(wrong), wrong.args)


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", bytes(HEADER_SIZE), os.urandom(1 << 20)],
    # Named: a random value as its own id differs between xdist workers, which then refuse to run.
    ids=["empty", "garbage", "zeros", "random-1MiB"],
)
def test_truncated_or_garbage_header_is_locked(vault: Vault, vault_dir: Path, content: bytes) -> None:
    vault.close()
    (vault_dir / "vault.key").write_bytes(content)
    assert str(open_error(vault_dir)) == LOCKED


def test_missing_header_or_directory_is_locked(vault: Vault, vault_dir: Path, tmp_path: Path) -> None:
    vault.close()
    assert str(open_error(tmp_path / "no-such-burner")) == LOCKED
    (vault_dir / "vault.key").unlink()
    assert str(open_error(vault_dir)) == LOCKED


def test_missing_records_database_is_corrupted_not_recreated(vault: Vault, vault_dir: Path) -> None:
    vault.close()
    (vault_dir / "vault.sqlite").unlink()
    with pytest.raises(VaultCorruptedError):
        Vault.open(vault_dir, PASSPHRASE)
    assert not (vault_dir / "vault.sqlite").exists()


def test_garbage_records_database_is_corrupted(vault: Vault, vault_dir: Path) -> None:
    vault.close()
    (vault_dir / "vault.sqlite").write_bytes(b"this is not a database" * 400)
    with pytest.raises(VaultCorruptedError):
        Vault.open(vault_dir, PASSPHRASE)


def test_foreign_database_is_corrupted(vault: Vault, vault_dir: Path) -> None:
    vault.close()
    (vault_dir / "vault.sqlite").unlink()
    sqlite3.connect(vault_dir / "vault.sqlite").close()  # an empty database: user_version 0
    with pytest.raises(VaultCorruptedError):
        Vault.open(vault_dir, PASSPHRASE)


def test_change_passphrase(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    old_header = (vault_dir / "vault.key").read_bytes()
    vault.change_passphrase("new words", rng=DeterministicRandom(b"new"), kdf=FAST_TEST_KDF)
    assert vault.get("setting", b"theme") == b"dark"  # the records did not move
    vault.close()
    assert str(open_error(vault_dir, PASSPHRASE)) == LOCKED
    with Vault.open(vault_dir, "new words") as again:
        assert again.get("setting", b"theme") == b"dark"
    assert (vault_dir / "vault.key").read_bytes() != old_header
    assert sorted(p.name for p in vault_dir.iterdir()) == [
        "vault.key",
        "vault.sqlite",
        "vault.sqlite-journal",
    ]


def test_leftover_temp_header_of_a_crashed_change_is_shredded_on_open(vault: Vault, vault_dir: Path) -> None:
    vault.close()
    (vault_dir / "vault.key.tmp").write_bytes(b"a new header that never got renamed")
    Vault.open(vault_dir, PASSPHRASE).close()
    assert not (vault_dir / "vault.key.tmp").exists()


# -- transactions ----------------------------------------------------------------------------------


def test_exception_rolls_back_the_whole_transaction(vault: Vault) -> None:
    fill(vault)

    def doomed() -> None:
        with vault.transaction() as tx:
            tx.put("contact", b"carol", b"c")
            tx.delete("contact", b"alice")
            tx.put("setting", b"theme", b"light")
            assert tx.get("contact", b"carol") == b"c"  # a transaction sees its own writes
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        doomed()
    assert vault.get("contact", b"carol") is None
    assert vault.get("contact", b"alice") == b"alice's keys"
    assert vault.get("setting", b"theme") == b"dark"


def test_bad_input_raises_and_rolls_back(vault: Vault) -> None:
    fill(vault)

    def doomed() -> None:
        with vault.transaction() as tx:
            tx.put("contact", b"carol", b"c")
            tx.put("Bad Kind", b"x", b"y")

    with pytest.raises(ValueError, match="kind"):
        doomed()
    assert vault.get("contact", b"carol") is None


def test_nested_transaction_is_misuse(vault: Vault) -> None:
    with vault.transaction() as tx:
        tx.put("a", b"1", b"x")
        with pytest.raises(ValueError, match="already open"), vault.transaction():
            pass
        tx.put("a", b"2", b"y")
    assert sorted(vault.items("a")) == [(b"1", b"x"), (b"2", b"y")]


def test_transaction_object_is_dead_after_its_block(vault: Vault) -> None:
    with vault.transaction() as tx:
        pass
    with pytest.raises(ValueError, match="ended"):
        tx.put("a", b"1", b"x")
    assert repr(tx) == "VaultTransaction(ended)"


def test_close_or_destroy_inside_a_transaction_is_misuse(vault: Vault, vault_dir: Path) -> None:
    with vault.transaction():
        with pytest.raises(ValueError, match="transaction"):
            vault.close()
        with pytest.raises(ValueError, match="transaction"):
            vault.destroy()
    assert vault_dir.exists()


def test_delete_reports_whether_there_was_a_record(vault: Vault) -> None:
    fill(vault)
    with vault.transaction() as tx:
        assert tx.delete("contact", b"alice") is True
        assert tx.delete("contact", b"alice") is False
    assert vault.get("contact", b"alice") is None


def test_other_threads_wait_for_a_transaction(vault: Vault) -> None:
    seen: list[bytes | None] = []
    with vault.transaction() as tx:
        tx.put("a", b"k", b"v")
        reader = threading.Thread(target=lambda: seen.append(vault.get("a", b"k")))
        reader.start()
        reader.join(0.2)
        assert reader.is_alive()  # blocked on the transaction, not reading half of it
    reader.join(5)
    assert seen == [b"v"]


def test_sqlite_errors_are_translated(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    blocker = sqlite3.connect(vault_dir / "vault.sqlite", timeout=0)
    blocker.execute("BEGIN IMMEDIATE")
    vault._connection().execute("PRAGMA busy_timeout = 0")
    try:
        with pytest.raises(VaultError, match=r"^vault database error \(SQLITE_BUSY\)$"), vault.transaction():
            pass
    finally:
        blocker.rollback()
        blocker.close()
    with vault.transaction() as tx:  # the vault is fine afterwards
        tx.put("a", b"k", b"v")


# -- tampering with records ------------------------------------------------------------------------


def test_tampered_record_is_detected_and_nothing_else_changes(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    theme = vault._record_keys().row_id("setting", b"theme")
    vault.close()
    sealed = dict(raw_rows(vault_dir))[theme]
    flipped = bytearray(sealed)
    flipped[len(flipped) // 2] ^= 1
    raw_execute(vault_dir, "UPDATE records SET sealed = ? WHERE row_id = ?", (bytes(flipped), theme))
    before = raw_rows(vault_dir)
    with Vault.open(vault_dir, PASSPHRASE) as again:
        with pytest.raises(VaultCorruptedError, match=r"^a vault record failed authentication$"):
            again.get("setting", b"theme")
        # No clear kind: a record that does not open could be of any kind, so every listing refuses.
        for kind in ("setting", "contact"):
            with pytest.raises(VaultCorruptedError, match=r"^a vault record failed authentication$"):
                again.items(kind)
        assert again.get("contact", b"alice") == b"alice's keys"
    assert raw_rows(vault_dir) == before


def test_records_swapped_between_rows_are_detected(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    alice = vault._record_keys().row_id("contact", b"alice")
    bob = vault._record_keys().row_id("contact", b"bob")
    vault.close()
    rows = dict(raw_rows(vault_dir))
    raw_execute(vault_dir, "UPDATE records SET sealed = ? WHERE row_id = ?", (rows[bob], alice))
    raw_execute(vault_dir, "UPDATE records SET sealed = ? WHERE row_id = ?", (rows[alice], bob))
    with Vault.open(vault_dir, PASSPHRASE) as again:
        with pytest.raises(VaultCorruptedError):
            again.get("contact", b"alice")
        with pytest.raises(VaultCorruptedError):
            again.get("contact", b"bob")
        assert again.get("setting", b"theme") == b"dark"


def test_record_moved_to_another_kinds_row_is_detected(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    keys = vault._record_keys()
    theme = keys.row_id("setting", b"theme")
    vault.close()
    sealed = dict(raw_rows(vault_dir))[theme]
    raw_execute(vault_dir, "DELETE FROM records WHERE row_id = ?", (theme,))
    raw_execute(vault_dir, "INSERT INTO records VALUES (?, ?)", (keys.row_id("contact", b"theme"), sealed))
    with Vault.open(vault_dir, PASSPHRASE) as again:
        with pytest.raises(VaultCorruptedError):
            again.get("contact", b"theme")
        with pytest.raises(VaultCorruptedError):
            again.items("contact")


def test_record_copied_to_a_new_row_is_detected(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    keys = vault._record_keys()
    theme = keys.row_id("setting", b"theme")
    vault.close()
    sealed = dict(raw_rows(vault_dir))[theme]
    raw_execute(vault_dir, "INSERT INTO records VALUES (?, ?)", (keys.row_id("setting", b"font"), sealed))
    with Vault.open(vault_dir, PASSPHRASE) as again:
        with pytest.raises(VaultCorruptedError):
            again.items("setting")
        with pytest.raises(VaultCorruptedError):
            again.get("setting", b"font")
        assert again.get("setting", b"theme") == b"dark"


def test_database_names_no_kind_and_no_key(vault: Vault, vault_dir: Path) -> None:
    with vault.transaction() as tx:
        tx.put("contact", CANARY.encode(), b"v")
    vault.close()
    data = all_bytes(vault_dir)
    assert CANARY.encode() not in data
    assert b"contact" not in data


# -- deletion leaves nothing behind ----------------------------------------------------------------


def canary_forms() -> list[bytes]:
    return [
        CANARY.encode(),
        CANARY.encode("utf-16-le"),
        CANARY.encode("utf-16-be"),
        CANARY.encode().hex().encode(),
        CANARY.encode().hex().upper().encode(),
    ]


def chunks(sealed: bytes) -> list[bytes]:
    return [sealed[i : i + 32] for i in range(0, len(sealed) - 32, 32)]


def assert_gone(directory: Path, sealed: list[bytes]) -> None:
    data = all_bytes(directory)
    for form in canary_forms():
        assert form not in data
    for s in sealed:
        assert not any(chunk in data for chunk in chunks(s))


@pytest.mark.parametrize("how", ["delete", "overwrite"])
def test_canary_and_old_ciphertext_are_gone_after_delete(vault: Vault, vault_dir: Path, how: str) -> None:
    fill(vault)
    with vault.transaction() as tx:
        for i in range(20):
            tx.put("message", f"m{i}".encode(), f"{CANARY} number {i} ".encode() * 30)
    keys = vault._record_keys()
    wanted = {keys.row_id("message", f"m{i}".encode()) for i in range(20)}
    sealed = [s for row_id, s in raw_rows(vault_dir) if row_id in wanted]
    assert len(sealed) == 20
    assert any(chunks(sealed[0])[1] in p.read_bytes() for p in vault_dir.iterdir())  # the check can see

    with vault.transaction() as tx:
        for i in range(20):
            if how == "delete":
                tx.delete("message", f"m{i}".encode())
            else:
                tx.put("message", f"m{i}".encode(), b"nothing to see")
    assert_gone(vault_dir, sealed)  # while still open: secure_delete + checkpoint
    vault.close()
    assert_gone(vault_dir, sealed)


# -- burning ---------------------------------------------------------------------------------------


def test_destroy_removes_the_directory(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    vault.destroy()
    assert not vault_dir.exists()
    assert not Vault.exists(vault_dir)
    vault.destroy()  # harmless twice
    with pytest.raises(ValueError, match="closed"):
        vault.get("contact", b"alice")


def test_destroy_keeps_a_directory_with_foreign_files(vault: Vault, vault_dir: Path) -> None:
    (vault_dir / "notes.txt").write_text("not ours")
    vault.destroy()
    assert sorted(p.name for p in vault_dir.iterdir()) == ["notes.txt"]


def test_shred_is_idempotent(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    Vault.shred(vault_dir)  # while the vault is still open elsewhere, as a burn from another process
    assert not vault_dir.exists()
    Vault.shred(vault_dir)
    vault.close()


PARTIAL = {
    "key-only": ["vault.key"],
    "db-only": ["vault.sqlite"],
    "wal-only": ["vault.sqlite-wal"],
    "no-key": ["vault.sqlite", "vault.sqlite-wal", "vault.sqlite-shm"],
    "tmp-header": ["vault.key.tmp", "vault.sqlite"],
    "empty": [],
}


@pytest.mark.parametrize("names", PARTIAL.values(), ids=PARTIAL.keys())
def test_shred_finishes_a_partially_burned_vault(vault_dir: Path, names: list[str]) -> None:
    vault_dir.mkdir()
    for name in names:
        (vault_dir / name).write_bytes(CANARY.encode() * 100)
    Vault.shred(vault_dir)
    assert not vault_dir.exists()


def test_shred_overwrites_before_unlinking(vault: Vault, vault_dir: Path) -> None:
    fill(vault)
    vault.close()
    linked = vault_dir.parent / "hardlink-to-db"
    os.link(vault_dir / "vault.sqlite", linked)  # lets us read the inode after the unlink
    key_link = vault_dir.parent / "hardlink-to-key"
    os.link(vault_dir / "vault.key", key_link)
    header = key_link.read_bytes()
    Vault.shred(vault_dir)
    assert linked.read_bytes() == bytes(linked.stat().st_size)
    assert len(key_link.read_bytes()) == len(header)
    assert key_link.read_bytes() != header


def test_shred_does_not_follow_a_planted_symlink(vault_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    vault_dir.mkdir()
    (vault_dir / "vault.sqlite").symlink_to(victim)
    Vault.shred(vault_dir)
    assert victim.read_bytes() == b"precious"
    assert not vault_dir.exists()


def test_an_examiner_cannot_count_contacts_and_messages_by_row_size(vault: Vault, vault_dir: Path) -> None:
    with vault.transaction() as tx:
        tx.put("contact", b"alice", os.urandom(4900))  # a session's state
        tx.put("contact", b"bob", os.urandom(6100))
        for n in range(12):
            tx.put("message", str(n).encode(), os.urandom(200 + 40 * n))
    rows = raw_rows(vault_dir)
    assert {len(sealed) for _, sealed in rows} == {540}  # every row one size, whatever its kind
    # Two contacts in 10 and 12 chunks, twelve messages in one or two each: 38 rows, in no order.
    assert len(rows) == 10 + 12 + 8 + 2 * 4
    assert sorted(k for k, _ in vault.items("contact")) == [b"alice", b"bob"]
    assert len(vault.items("message")) == 12
