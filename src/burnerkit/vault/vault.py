"""``Vault``: one burner's encrypted records on disk (docs/protocol.md §15).

Theory of operation
-------------------
A vault is a directory with files of its own: ``vault.key`` (the header: two key slots under a
passphrase, :mod:`.format`), ``vault.sqlite`` (one row per record, each sealed) and SQLite's
``vault.sqlite-journal``. At creation the database is written first and the header last
(temp file, fsync, rename, fsync of the directory), so at every instant the directory holds
either no vault or one complete header. :meth:`Vault.exists` looks at the header alone.

Forward secrecy at rest (§15.11). The vault key changes: at the first write after each unlock
and at the end of every transaction that deleted a record, :meth:`Vault._rotate` draws a new
key and, inside the same SQLite transaction, in this order:

1. writes it wrapped into the slot the current key does not use, in place (``pwrite`` on the
   header's own inode, fsync): both keys are now in the header;
2. re-seals every live record under it and records its key id in the database; ``COMMIT``;
3. under the write lock again, overwrites every slot whose key is not the committed one with
   random bytes, in place, fsync; then zeroes the rollback journal in place, fsync, truncates.

A crash before the commit leaves the old key current (the new one is wiped by the next writer),
after it the new one (the old one is wiped at the next open). The header is never replaced by a
rename during a rotation: a rename frees the old file's blocks with the old key in them.

SQLite gives us crash safety: every change happens inside ``BEGIN IMMEDIATE`` … ``COMMIT`` with
``journal_mode=PERSIST`` and ``synchronous=FULL``. We chose a rollback journal over WAL because
WAL frames are written to a file that SQLite later truncates or deletes, freeing blocks we never
saw, and because a WAL reader writes the ``-shm`` file: with a rollback journal a read-only run
writes nothing at all, and the journal, which holds the pages' old contents after a commit, is
zeroed by us in place before it is truncated. ``secure_delete=ON`` zeroes a deleted or
overwritten record in the database file; the database never shrinks (no vacuum) and grows in
coarse steps (:func:`~.format.database_bucket`) by a filler row inserted and deleted.
``temp_store=MEMORY`` keeps sort and temp tables off the disk.

The database holds no kind tag (records of one kind look like any other), so the vault keeps an
in-memory index ``row_id → kind``, built by opening every row once per key and kept while
``PRAGMA data_version`` says no other process committed.

A version 1 vault (one key for life, clear kind tags, WAL) opens and reads as before and is
upgraded in its first write transaction (§15.12).

Burning is :meth:`Vault.shred`: the header goes first (overwritten with random bytes, fsynced,
unlinked), which alone makes every other byte unreadable; then each database file is
overwritten with zeros, fsynced and unlinked; then the directory, if empty, is removed. Each
step tolerates the files an earlier, interrupted run already removed, so a burn killed halfway
completes when it is run again.

Every ``sqlite3.Error`` and ``OSError`` is translated to a :class:`VaultError` at one boundary,
:func:`_storage_errors`; its message names the SQLite error code or errno only.

One :class:`Vault` may be shared between threads: a lock serialises calls, and a transaction
holds it from ``BEGIN`` to ``COMMIT``, so other threads wait for the transaction to end.
Several processes may open one vault: each checks the database's key id before it reads and
re-reads the header (with the KEK it keeps) when another process rotated the key.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hmac
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from burnerkit.crypto.passphrase import DEFAULT_KDF, KdfParams
from burnerkit.crypto.rng import Random, SystemRandom
from burnerkit.errors import AlreadyExistsError, VaultCorruptedError, VaultError, VaultLockedError
from burnerkit.fsync import fsync_dir, write_synced

from .format import (
    HEADER_PREFIX_SIZE,
    HEADER_SIZE,
    SLOT_SIZE,
    SLOTS,
    VAULT_KEY_SIZE,
    VERSION,
    VERSION_1,
    BorderKeys,
    HeaderKeys,
    RecordKeys,
    SealedRecord,
    check_kind,
    check_record,
    database_bucket,
    header_version,
    open_header,
    open_header_v1,
    parse_prefix,
    seal_header,
    slot_offset,
)

__all__ = [
    "DB_FILE",
    "HEADER_FILE",
    "JOURNAL_FILE",
    "LOCK_FILE",
    "SCHEMA_VERSION",
    "ExclusiveLock",
    "Vault",
    "VaultTransaction",
]

HEADER_FILE: Final = "vault.key"
DB_FILE: Final = "vault.sqlite"
JOURNAL_FILE: Final = f"{DB_FILE}-journal"
#: ``PRAGMA user_version`` of the records database.
SCHEMA_VERSION: Final = 2
_SCHEMA_V1: Final = 1

_HEADER_TMP: Final = "vault.key.tmp"
#: An empty file that processes sharing the vault lock to take turns (``Vault.exclusive``).
LOCK_FILE: Final = "vault.lock"
# -wal and -shm belong to version 1 vaults (WAL) and to one not yet switched to the journal.
_DB_FILES: Final = (f"{DB_FILE}-wal", f"{DB_FILE}-shm", JOURNAL_FILE, DB_FILE)
_BUSY_TIMEOUT: Final = 5.0
_CHUNK: Final = 1 << 20
# SQLite's primary result codes that mean "these bytes are not a sound database".
_SQLITE_CORRUPT: Final = 11
_SQLITE_NOTADB: Final = 26

_TABLES_V2: Final = """
CREATE TABLE records (
    row_id BLOB PRIMARY KEY NOT NULL,
    sealed BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE vault_state (key_id BLOB NOT NULL);
CREATE TABLE filler (pad BLOB NOT NULL);
"""


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    """The one boundary where ``sqlite3`` and ``OSError`` become :class:`VaultError`."""
    try:
        yield
    except sqlite3.Error as exc:
        name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            raise VaultCorruptedError(f"the vault database is damaged ({name})") from exc
        raise VaultError(f"vault database error ({name})") from exc
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        raise VaultError(f"vault file error ({name})") from exc


def _write_new(path: Path, data: bytes) -> None:
    """Create (or truncate) ``path`` with mode 0o600, write ``data`` and fsync it."""
    write_synced(path, data, exclusive=False)


def _overwrite_fd(fd: int, *, random: bool) -> None:
    size = os.fstat(fd).st_size
    os.lseek(fd, 0, os.SEEK_SET)
    zeros = bytes(min(size, _CHUNK))
    left = size
    while left > 0:
        n = min(left, _CHUNK)
        os.write(fd, os.urandom(n) if random else zeros[:n])
        left -= n
    os.fsync(fd)


def _shred_file(path: Path, *, random: bool) -> None:
    """Overwrite a regular file in place, fsync, unlink; a missing file is already shredded."""
    try:
        # O_NOFOLLOW: a symlink planted in the directory must not make us overwrite its target.
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EISDIR):
            raise
        fd = -1
    if fd >= 0:
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                _overwrite_fd(fd, random=random)
        finally:
            os.close(fd)
    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
        path.unlink()


class ExclusiveLock:
    """An advisory lock on a file (``flock``): held by one open file at a time, across processes."""

    __slots__ = ("_fd", "_path")

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False if somebody does.

        Raises:
            VaultError: the lock file could not be opened.
        """
        if self._fd is not None:
            raise RuntimeError("the lock is already held by this object")
        with _storage_errors():
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lock back (closing the file releases it); nothing if not held."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _read_header(directory: Path) -> bytes:
    try:
        with (directory / HEADER_FILE).open("rb") as f:
            return f.read(HEADER_SIZE + 1)  # a huge planted file is not read whole
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise VaultLockedError from None


def _write_slot(directory: Path, index: int, data: bytes) -> None:
    """Overwrite key slot ``index`` of ``vault.key`` in place: same inode, same blocks, fsync."""
    if len(data) != SLOT_SIZE:
        raise ValueError("a key slot is 60 bytes")
    fd = os.open(directory / HEADER_FILE, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        if os.fstat(fd).st_size != HEADER_SIZE:
            raise VaultCorruptedError("the vault header changed size under us")
        if os.pwrite(fd, data, slot_offset(index)) != SLOT_SIZE:
            raise VaultError("vault file error (short write)")
        os.fsync(fd)
    finally:
        os.close(fd)


def _scrub_journal(directory: Path) -> None:
    """Zero the rollback journal in place, fsync, then truncate it (only under the write lock).

    After a commit the journal still holds the old contents of every page the transaction
    changed: deleted records and records sealed under a retired key. Zeroing before truncating
    means the blocks the truncation frees hold zeros.
    """
    try:
        fd = os.open(directory / JOURNAL_FILE, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_size > 0:
            _overwrite_fd(fd, random=False)
            os.ftruncate(fd, 0)
            os.fsync(fd)
    finally:
        os.close(fd)


def _journal_size(directory: Path) -> int:
    try:
        return (directory / JOURNAL_FILE).lstat().st_size
    except FileNotFoundError:
        return 0


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    # mode=rw never creates a file: an open vault whose database vanished must not come back empty.
    uri = path.resolve().as_uri() + ("?mode=rwc" if create else "?mode=rw")
    conn = sqlite3.connect(
        uri, uri=True, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA temp_store = MEMORY")
    except BaseException:
        conn.close()
        raise
    return conn


def _use_journal(conn: sqlite3.Connection) -> None:
    """Switch to the persistent rollback journal (§15.6); a version 1 database leaves WAL here."""
    (mode,) = conn.execute("PRAGMA journal_mode = PERSIST").fetchone()
    if mode != "persist":
        # Another process still holds the database open in WAL mode: it switches when alone.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class VaultTransaction:
    """Reads and writes inside one :meth:`Vault.transaction`; valid only inside its ``with``."""

    __slots__ = ("_deleted", "_rotated", "_vault", "_wrote")

    def __init__(self, vault: Vault) -> None:
        self._vault: Vault | None = vault
        self._wrote = False
        # A deleted record's key must not outlive the transaction (§15.11): rotate before COMMIT.
        self._deleted = False
        self._rotated = False

    def _live(self) -> Vault:
        if self._vault is None:
            raise ValueError("the vault transaction has ended")
        return self._vault

    def get(self, kind: str, key: bytes) -> bytes | None:
        """The value stored under ``(kind, key)``, this transaction's writes included.

        Raises:
            ValueError, TypeError: for a bad kind or key (see :meth:`put`).
            VaultCorruptedError: if the stored record does not authenticate.
        """
        return self._live()._get(kind, key)

    def items(self, kind: str) -> list[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of one kind, in no particular order.

        Raises:
            VaultCorruptedError: if any record of that kind does not authenticate.
        """
        return self._live()._items(kind)

    def put(self, kind: str, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``(kind, key)``, replacing any previous value.

        Raises:
            TypeError: if ``kind`` is not a ``str`` or ``key``/``value`` are not bytes.
            ValueError: for a kind outside ``[a-z0-9_-]{1,32}``, a key over 255 bytes or a
                value over 8 MiB; nothing is written.
            VaultError: if the database write failed.
        """
        vault = self._live()
        # Checked before a first write may rotate the key: bad input changes nothing.
        check_record(kind, key, value)
        vault._before_write(self)
        rows = vault._record_keys().seal(kind, key, value, vault._rng)
        with vault._lock:
            vault._remove(rows[0].row_id)
            with _storage_errors():
                vault._connection().executemany(
                    "INSERT INTO records (row_id, sealed) VALUES (?, ?)", [(r.row_id, r.sealed) for r in rows]
                )
            vault._remember(rows, kind)

    def delete(self, kind: str, key: bytes) -> bool:
        """Delete the record under ``(kind, key)``; ``True`` if there was one.

        Raises:
            ValueError, TypeError: for a bad kind or key (see :meth:`put`).
            VaultError: if the database write failed.
        """
        vault = self._live()
        row_id = vault._record_keys().row_id(kind, key)
        with vault._lock, _storage_errors():
            found = (
                vault._connection().execute("SELECT 1 FROM records WHERE row_id = ?", (row_id,)).fetchone()
            )
        if found is None:
            return False  # deleting nothing writes nothing, and rotates nothing
        vault._before_write(self)
        with vault._lock:
            vault._remove(vault._record_keys().row_id(kind, key))  # the key may have rotated
        self._deleted = True
        return True

    def __repr__(self) -> str:
        return f"VaultTransaction({'open' if self._vault is not None else 'ended'})"


def _replace_header(directory: Path, header: bytes) -> None:
    """Put a new ``vault.key`` in place atomically, then overwrite the old one's inode.

    Used where the header changes as a whole (a new passphrase, the version 1 upgrade): temp
    file, fsync, rename, fsync of the directory; the old inode, still open, is then overwritten
    with random bytes so the blocks it frees do not keep its wrapped keys.
    """
    tmp = directory / _HEADER_TMP
    _write_new(tmp, header)
    try:
        old = os.open(directory / HEADER_FILE, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        old = -1
    try:
        os.replace(tmp, directory / HEADER_FILE)
        fsync_dir(directory)
        if old >= 0:
            _overwrite_fd(old, random=True)
    finally:
        if old >= 0:
            os.close(old)


def _grow(conn: sqlite3.Connection) -> None:
    """Grow the database file to its size bucket with a filler row, inserted and deleted.

    Without vacuum SQLite never shrinks the file; the filler's pages go to the free list
    (zeroed by ``secure_delete``) and are used by later records before the file grows again.
    """
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    for _ in range(4):
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        missing = database_bucket(pages * page_size) // page_size - pages
        if missing <= 0:
            break
        # The filler table is empty, so the row's local part fits its root page: it takes
        # exactly the free pages and the missing ones as overflow pages.
        conn.execute(
            "INSERT INTO filler (pad) VALUES (zeroblob(?))", (_filler_size(missing + free, page_size),)
        )
    conn.execute("DELETE FROM filler")


def _filler_size(pages: int, page_size: int) -> int:
    """A blob whose row keeps SQLite's minimum in the leaf and fills exactly ``pages`` overflow pages."""
    min_local = (page_size - 12) * 32 // 255 - 23
    payload = min_local + pages * (page_size - 4)
    # The record's header: its own length (1 byte) and the blob's serial type, a varint.
    for header in range(2, 11):
        blob = payload - header
        if 1 + _varint_size(2 * blob + 12) == header:
            return blob
    return payload - 4


def _varint_size(n: int) -> int:
    return max(1, -(-n.bit_length() // 7))


_Saved = tuple[HeaderKeys | None, int, RecordKeys | None, int, bool]


class Vault:
    """An unlocked vault: records of ``(kind, key) → value``, each sealed (docs/protocol.md §15).

    Built with :meth:`create` or :meth:`open`; usable as a context manager that closes it.
    """

    __slots__ = (
        "_conn",
        "_directory",
        "_header",
        "_hook",
        "_index",
        "_keys",
        "_layout",
        "_lock",
        "_rng",
        "_rotated",
        "_seen",
        "_slot",
        "_tx",
    )

    def __init__(
        self,
        directory: Path,
        conn: sqlite3.Connection,
        header: HeaderKeys,
        slot: int,
        layout: int,
        rng: Random,
        *,
        rotated: bool,
    ) -> None:
        """Private: use :meth:`create` or :meth:`open`."""
        key = header.keys[slot]
        if key is None:
            raise VaultCorruptedError("the vault's header holds no key for its records")
        self._directory = directory
        self._conn: sqlite3.Connection | None = conn
        self._header: HeaderKeys | None = header
        self._slot = slot
        self._keys: RecordKeys | None = RecordKeys(key)
        self._layout = layout
        self._rng = rng
        self._lock = threading.RLock()
        self._tx: VaultTransaction | None = None
        # row_id → kind (None: the row does not authenticate), for the key in self._keys.
        self._index: dict[bytes, str | None] | None = None
        self._seen = -1
        # Whether this vault drew a key of its own since it was unlocked (§15.11).
        self._rotated = rotated
        self._hook: Callable[[VaultTransaction], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, passphrase: str, *, rng: Random, kdf: KdfParams = DEFAULT_KDF) -> Vault:
        """Create a new, empty vault in ``directory`` (made with mode 0o700 if missing).

        Leftovers without a header (a crashed creation or burn) are shredded first: without
        their header nobody can read them. ``rng`` also supplies the keys and nonces of later
        writes.

        Raises:
            AlreadyExistsError: if ``directory`` already holds a vault header.
            TypeError: if ``passphrase`` is not a ``str``.
            VaultError: if the files cannot be written.
        """
        directory = Path(directory)
        if not isinstance(passphrase, str):
            raise TypeError("passphrase must be a str")
        if cls.exists(directory):
            raise AlreadyExistsError("a vault already exists in this directory")
        with _storage_errors():
            if not directory.is_dir():
                directory.mkdir(mode=0o700, parents=True)
                os.chmod(directory, 0o700)  # mkdir's mode passes through the umask
            for name in (_HEADER_TMP, *_DB_FILES):
                _shred_file(directory / name, random=False)
        vault_key = rng.random_bytes(VAULT_KEY_SIZE)
        header, header_keys = seal_header(vault_key, passphrase, kdf, rng)
        conn: sqlite3.Connection | None = None
        try:
            with _storage_errors():
                # Created here so it is 0o600 from its first byte; SQLite gives the journal the same mode.
                os.close(os.open(directory / DB_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                conn = _connect(directory / DB_FILE, create=True)
                _use_journal(conn)
                conn.execute("BEGIN IMMEDIATE")
                for statement in _TABLES_V2.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO vault_state (key_id) VALUES (?)", (RecordKeys(vault_key).key_id,))
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                _grow(conn)
                conn.execute("COMMIT")
                _scrub_journal(directory)
                _write_new(directory / _HEADER_TMP, header)
                os.replace(directory / _HEADER_TMP, directory / HEADER_FILE)
                fsync_dir(directory)
        except BaseException:
            if conn is not None:
                conn.close()
            with contextlib.suppress(OSError):
                for name in (HEADER_FILE, _HEADER_TMP, *_DB_FILES):
                    _shred_file(directory / name, random=False)
            raise
        # A new key nobody can have copied yet: the first write need not rotate.
        return cls(directory, conn, header_keys, 0, SCHEMA_VERSION, rng, rotated=True)

    @classmethod
    def open(cls, directory: Path, passphrase: str, *, rng: Random | None = None) -> Vault:
        """Unlock the vault in ``directory``; writes nothing unless a crash left work to finish.

        Args:
            directory: the burner's vault directory.
            passphrase: the passphrase given at creation or the last :meth:`change_passphrase`.
            rng: keys and nonces for later writes; :class:`SystemRandom` unless a test injects one.

        Raises:
            VaultLockedError: for a wrong passphrase, a damaged or truncated header, and a missing
                header (use :meth:`exists` to tell "no vault here" apart); one message for all.
            VaultCorruptedError: if the header opens but the records database is missing or
                damaged, or holds records under a key the header does not have.
            VaultError: if the files cannot be read.
        """
        directory = Path(directory)
        if not isinstance(passphrase, str):
            raise TypeError("passphrase must be a str")
        with _storage_errors():
            raw = _read_header(directory)
        if header_version(raw) == VERSION_1:
            header_keys = open_header_v1(raw, passphrase)
        else:
            header_keys = open_header(raw, passphrase)
        with _storage_errors():
            # A change of passphrase that crashed before its rename left the new header behind.
            if (directory / _HEADER_TMP).exists():
                _shred_file(directory / _HEADER_TMP, random=True)
            if not (directory / DB_FILE).is_file():
                raise VaultCorruptedError("the vault's records database is missing")
            conn = _connect(directory / DB_FILE, create=False)
            try:
                # The first read rolls back a journal a crashed writer left hot.
                (layout,) = conn.execute("PRAGMA user_version").fetchone()
                if layout == SCHEMA_VERSION:
                    _use_journal(conn)
                    slot = _current_slot(conn, header_keys)
                elif layout == _SCHEMA_V1:
                    # A version 1 database's key is in slot 0 of either header version (§15.12).
                    slot = 0
                else:
                    raise VaultCorruptedError("the vault's records database has an unknown layout")
                vault = cls(directory, conn, header_keys, slot, layout, rng or SystemRandom(), rotated=False)
            except BaseException:
                conn.close()
                raise
        try:
            stale = any(k is not None for i, k in enumerate(header_keys.keys) if i != slot)
            if stale or (layout == SCHEMA_VERSION and _journal_size(directory) > 0):
                vault._tidy()
        except BaseException:
            vault.close()
            raise
        return vault

    @staticmethod
    def exists(directory: Path) -> bool:
        """Whether ``directory`` holds a vault header (it may still be damaged)."""
        return (Path(directory) / HEADER_FILE).is_file()

    def on_write(self, hook: Callable[[VaultTransaction], None] | None) -> None:
        """Call ``hook(tx)`` in every transaction that wrote, just before it commits.

        For bookkeeping that should ride along with real writes instead of writing on its own
        (so that a read-only run leaves every file untouched); ``None`` removes it.
        """
        self._hook = hook

    def close(self) -> None:
        """Close; closing twice is harmless.

        Raises:
            ValueError: inside a transaction.
            VaultError: if a version 1 vault's final WAL checkpoint failed (closed all the same).
        """
        with self._lock:
            if self._conn is None:
                return
            if self._tx is not None:
                raise ValueError("close() inside a vault transaction")
            conn = self._conn
            self._conn = self._keys = self._header = self._index = None
            try:
                if self._layout == _SCHEMA_V1:
                    with _storage_errors():
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()

    def destroy(self) -> None:
        """Close and burn: :meth:`shred` this vault's directory.

        Raises:
            ValueError: inside a transaction.
            VaultError: if a file could not be overwritten or removed (run :meth:`shred` again).
        """
        with self._lock:
            if self._tx is not None:
                raise ValueError("destroy() inside a vault transaction")
            conn = self._conn
            self._conn = self._keys = self._header = self._index = None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self.shred(self._directory)

    def seal_burn_journal(self, body: bytes) -> bytes:
        """Seal a burn's journal under this vault's KEK (docs/protocol.md §17.7).

        Raises:
            ValueError: the vault is closed.
        """
        with self._lock:
            return self._live_header().seal_burn_journal(body, self._rng)

    @staticmethod
    def erase_key(directory: Path) -> None:
        """Destroy the vault key in place: both key slots of ``vault.key`` overwritten, fsync.

        The first durable step of a burn (docs/protocol.md §17.7): the same inode and blocks
        (§15.11), so no freed block keeps a wrapped key. Needs no passphrase and may be
        repeated; a version 1 header (one slot) is overwritten whole. The other files stay
        for :meth:`shred`; from here on nothing in them opens.

        Raises:
            VaultError: the header could not be overwritten.
        """
        path = Path(directory) / HEADER_FILE
        with _storage_errors():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
            except FileNotFoundError:
                return
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    if os.fstat(fd).st_size == HEADER_SIZE:
                        for index in range(2):
                            os.pwrite(fd, os.urandom(SLOT_SIZE), slot_offset(index))
                        os.fsync(fd)
                    else:
                        _overwrite_fd(fd, random=True)
            finally:
                os.close(fd)

    @property
    def key_slot(self) -> int:
        """The header slot (0 or 1) the current vault key is in; the other holds random bytes.

        Raises:
            ValueError: the vault is closed.
        """
        with self._lock:
            self._connection()
            return self._slot

    @property
    def kdf(self) -> KdfParams:
        """The Argon2id parameters this vault's passphrase is stretched with.

        Raises:
            ValueError: the vault is closed.
        """
        with self._lock:
            return parse_prefix(self._live_header().prefix)[0]

    @staticmethod
    def scrub_spare_slot(directory: Path, index: int) -> None:
        """Overwrite key slot ``index`` of ``directory``'s header with random bytes, in place.

        What a rotation's last step writes (§15.11), and harmless to a slot that holds no
        key: the duress cover write (docs/protocol.md §17.11). A missing header is no error.

        Raises:
            VaultError: the header could not be overwritten.
        """
        with _storage_errors():
            try:
                _write_slot(Path(directory), index, os.urandom(SLOT_SIZE))
            except FileNotFoundError:
                return

    def border_key(self) -> bytes:
        """The vault key the records are sealed under now, for a border escrow (docs/protocol.md §17.12).

        The caller seals it to a holder and then calls :meth:`destroy_key`; nothing may
        write in between, or a rotation would leave the escrow holding a retired key.

        Raises:
            ValueError: the vault is closed, or inside a transaction.
        """
        with self._lock:
            if self._tx is not None:
                raise ValueError("border_key() inside a vault transaction")
            with self._reading():
                key = self._live_header().keys[self._slot]
            assert key is not None
            return bytes(key)

    def seal_border_state(self, body: bytes) -> bytes:
        """Seal a border state under this vault's KEK (docs/protocol.md §17.12).

        Raises:
            ValueError: the vault is closed.
        """
        with self._lock:
            return self._live_header().seal_border_state(body, self._rng)

    @staticmethod
    def restore_key(directory: Path, border: BorderKeys, vault_key: bytes, rng: Random) -> None:
        """Wrap a released ``vault_key`` back into slot 0 of the header it was taken from (§17.12).

        Only the key the records database names is put back, and only under the header's
        own KEK: a key for another vault, or a state from another header, changes nothing.

        Raises:
            VaultLockedError: ``border`` is not this header's, or ``vault_key`` is not the key
                the records are sealed under.
            VaultError: the files could not be read or written.
        """
        directory = Path(directory)
        with _storage_errors():
            header = _read_header(directory)
            if header_version(header) != VERSION or not hmac.compare_digest(
                header[:HEADER_PREFIX_SIZE], border.prefix
            ):
                raise VaultLockedError("this border state is not this vault's")
            conn = _connect(directory / DB_FILE, create=False)
            try:
                row = conn.execute("SELECT key_id FROM vault_state").fetchone()
            finally:
                conn.close()
        if row is None or not hmac.compare_digest(bytes(row[0]), RecordKeys(vault_key).key_id):
            raise VaultLockedError("the released key is not the key of this vault's records")
        with _storage_errors():
            _write_slot(directory, 0, border.seal_slot(0, vault_key, rng))

    def destroy_key(self) -> None:
        """Close, then :meth:`erase_key`: the records stay on disk, unreadable.

        Raises:
            ValueError: inside a transaction.
            VaultError: the header could not be overwritten.
        """
        with self._lock:
            if self._tx is not None:
                raise ValueError("destroy_key() inside a vault transaction")
            conn = self._conn
            self._conn = self._keys = self._header = self._index = None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self.erase_key(self._directory)

    @staticmethod
    def shred(directory: Path) -> None:
        """Burn a vault without unlocking it; safe to repeat, and to resume after a crash.

        1. ``vault.key`` (and a leftover ``vault.key.tmp``): overwrite with random bytes, fsync,
           unlink, fsync the directory. From here on nothing left is readable.
        2. ``vault.sqlite-wal``, ``-shm``, ``-journal``, ``vault.sqlite``: overwrite with zeros,
           fsync, unlink.
        3. fsync the directory and remove it if nothing else is in it.

        Raises:
            VaultError: if a file could not be overwritten or removed.
        """
        directory = Path(directory)
        with _storage_errors():
            if not directory.is_dir():
                return
            for name in (HEADER_FILE, _HEADER_TMP):
                _shred_file(directory / name, random=True)
            fsync_dir(directory)
            for name in (*_DB_FILES, LOCK_FILE):
                _shred_file(directory / name, random=False)
            fsync_dir(directory)
            try:
                directory.rmdir()
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    raise

    def exclusive(self) -> ExclusiveLock:
        """A lock over this vault shared by every process that opens it (not yet taken).

        For work that must not run twice at once across processes, such as sending the
        outbox; a process that dies releases it.
        """
        return ExclusiveLock(self._directory / LOCK_FILE)

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- records -----------------------------------------------------------------------------------

    def get(self, kind: str, key: bytes) -> bytes | None:
        """The value stored under ``(kind, key)``, or ``None``.

        Raises:
            TypeError, ValueError: for a bad kind or key.
            VaultCorruptedError: if the stored record does not authenticate.
            ValueError: if the vault is closed.
        """
        return self._get(kind, key)

    def items(self, kind: str) -> list[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of one kind, in no particular order.

        Raises:
            VaultCorruptedError: if any record of that kind does not authenticate.
            ValueError: if the vault is closed.
        """
        return self._items(kind)

    def transaction(self) -> contextlib.AbstractContextManager[VaultTransaction]:
        """``with vault.transaction() as tx:``: ``BEGIN IMMEDIATE``; commit on a clean exit.

        An exception leaving the block rolls every write of the block back and propagates.

        Raises:
            ValueError: if a transaction is already open (on entering), or the vault is closed.
            VaultError: if the database cannot begin or commit (after a failed commit nothing
                of the block is kept).
        """
        return self._transaction()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[VaultTransaction]:
        with self._lock:
            conn = self._connection()
            if self._tx is not None:
                raise ValueError("a vault transaction is already open")
            with _storage_errors():
                conn.execute("BEGIN IMMEDIATE")
            saved: _Saved = (self._header, self._slot, self._keys, self._layout, self._rotated)
            tx = self._tx = VaultTransaction(self)
            try:
                with _storage_errors():
                    self._sync()
                yield tx
                if tx._wrote and self._hook is not None:
                    self._hook(tx)
                if tx._deleted and not tx._rotated:
                    self._rotate(tx)
                if tx._wrote:
                    with _storage_errors():
                        _grow(conn)
            except BaseException:
                self._end(tx)
                self._abandon(conn, saved, tx)
                raise
            self._end(tx)
            with _storage_errors():
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error:
                    self._abandon(conn, saved, tx)
                    raise
            if tx._wrote:
                self._after_commit(migrated=saved[3] != self._layout)

    def _abandon(self, conn: sqlite3.Connection, saved: _Saved, tx: VaultTransaction) -> None:
        """Roll back and forget what the transaction changed in memory."""
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        self._header, self._slot, self._keys, self._layout, self._rotated = saved
        self._index = None
        if tx._wrote:
            # The journal holds the pages the rollback restored; a key written to the spare
            # slot sealed nothing that was kept. Both are tidied at the next open otherwise.
            with contextlib.suppress(VaultError):
                self._tidy()

    def _after_commit(self, *, migrated: bool) -> None:
        conn = self._connection()
        if migrated:
            with _storage_errors():
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                _use_journal(conn)
        self._tidy()

    def change_passphrase(self, new: str, *, rng: Random, kdf: KdfParams = DEFAULT_KDF) -> None:
        """Wrap the current vault key under a new passphrase; the records are not touched.

        Atomic: the new header goes to a temp file, is fsynced and renamed over the old one;
        the old header's inode is then overwritten with random bytes. Another process that has
        this vault open can no longer rotate its key (it holds the old KEK) and says so.

        Raises:
            TypeError: if ``new`` is not a ``str``.
            ValueError: inside a transaction, or if the vault is closed.
            VaultError: if the header cannot be written (the old passphrase still works).
        """
        if not isinstance(new, str):
            raise TypeError("passphrase must be a str")
        with self._lock:
            conn = self._connection()
            if self._tx is not None:
                raise ValueError("change_passphrase() inside a vault transaction")
            with _storage_errors():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._sync()
                    header = self._live_header()
                    key = header.keys[self._slot]
                    assert key is not None
                    raw, fresh = seal_header(key, new, kdf, rng, slot=self._slot)
                    _replace_header(self._directory, raw)
                finally:
                    conn.execute("COMMIT")
                self._header = fresh

    # -- internals ---------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("the vault is closed")
        return self._conn

    def _record_keys(self) -> RecordKeys:
        if self._keys is None:
            raise ValueError("the vault is closed")
        return self._keys

    def _live_header(self) -> HeaderKeys:
        if self._header is None:
            raise ValueError("the vault is closed")
        return self._header

    def _end(self, tx: VaultTransaction) -> None:
        tx._vault = None
        self._tx = None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A consistent snapshot for a read: the transaction's own, or a read transaction."""
        conn = self._connection()
        if self._tx is not None:
            yield
            return
        with _storage_errors():
            conn.execute("BEGIN")
        try:
            with _storage_errors():
                self._sync()
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("COMMIT")

    def _sync(self) -> None:
        """Catch up with commits of other processes: their key (if they rotated) and the index."""
        conn = self._connection()
        (version,) = conn.execute("PRAGMA data_version").fetchone()
        if self._index is not None and version == self._seen:
            return
        (layout,) = conn.execute("PRAGMA user_version").fetchone()
        if layout != self._layout:
            if (self._layout, layout) != (_SCHEMA_V1, SCHEMA_VERSION):
                raise VaultCorruptedError("the vault's records database has an unknown layout")
            self._layout = layout  # another process upgraded it (§15.12)
        keys = self._record_keys()
        if layout == SCHEMA_VERSION:
            row = conn.execute("SELECT key_id FROM vault_state").fetchone()
            if row is None:
                raise VaultCorruptedError("the vault's records database names no key")
            if not hmac.compare_digest(bytes(row[0]), keys.key_id):
                header = self._live_header().reopen(_read_header(self._directory))
                self._slot = _current_slot(conn, header)
                self._header = header
                key = header.keys[self._slot]
                assert key is not None
                self._keys = keys = RecordKeys(key)
        index: dict[bytes, str | None] = {}
        if layout == SCHEMA_VERSION:
            # Heads map to their kind, the further chunks of a record to "".
            for row_id, sealed in conn.execute("SELECT row_id, sealed FROM records"):
                index[bytes(row_id)] = _kind_or_none(keys, bytes(row_id), bytes(sealed), None)
        else:
            for row_id, tag, sealed in conn.execute("SELECT row_id, kind_tag, sealed FROM records"):
                index[bytes(row_id)] = _kind_or_none(keys, bytes(row_id), bytes(sealed), bytes(tag))
        self._index = index
        self._seen = version

    def _remember(self, rows: list[SealedRecord], kind: str) -> None:
        if self._index is not None:
            self._index.update((r.row_id, kind if n == 0 else "") for n, r in enumerate(rows))

    def _remove(self, row_id: bytes) -> bool:
        """Delete the rows of the record whose head is ``row_id`` (version 2); whether it was there."""
        conn = self._connection()
        keys = self._record_keys()
        with _storage_errors():
            row = conn.execute("SELECT sealed FROM records WHERE row_id = ?", (row_id,)).fetchone()
            if row is None:
                return False
            try:
                chunks = keys.chunks_of(row_id, bytes(row[0]))
            except VaultCorruptedError:
                chunks = 1  # a damaged head: its further chunks cannot be named, and stay
            ids = [keys.chunk_id(row_id, n) for n in range(chunks)]
            conn.executemany("DELETE FROM records WHERE row_id = ?", [(i,) for i in ids])
        if self._index is not None:
            for i in ids:
                self._index.pop(i, None)
        return True

    def _records(self) -> list[tuple[str, bytes, bytes]]:
        """Every record, opened (version 2), in the order of their head row ids."""
        index = self._index
        assert index is not None
        if None in index.values():
            raise VaultCorruptedError("a vault record failed authentication")
        heads = sorted(r for r, kind in index.items() if kind)
        out = []
        for row_id in heads:
            opened = self._fetch(row_id)
            assert opened is not None
            out.append(opened)
        return out

    def _before_write(self, tx: VaultTransaction) -> None:
        """The first write of a transaction: upgrade a version 1 vault, or rotate once per unlock."""
        if tx._wrote:
            return
        tx._wrote = True
        if self._layout == _SCHEMA_V1:
            self._migrate(tx)
        elif not self._rotated:
            self._rotate(tx)

    def _rotate(self, tx: VaultTransaction) -> None:
        """Steps 1 and 2 of a key rotation (§15.11), inside the caller's write transaction."""
        conn = self._connection()
        with _storage_errors():
            header = self._live_header().reopen(_read_header(self._directory))
            spare = 1 - self._slot
            new_key = self._rng.random_bytes(VAULT_KEY_SIZE)
            _write_slot(self._directory, spare, header.seal_slot(spare, new_key, self._rng))
            new = RecordKeys(new_key)
            opened = self._records()
            sealed = [new.seal(kind, key, value, self._rng) for kind, key, value in opened]
            conn.execute("DELETE FROM records")
            conn.executemany(
                "INSERT INTO records (row_id, sealed) VALUES (?, ?)",
                [(r.row_id, r.sealed) for rows in sealed for r in rows],
            )
            conn.execute("UPDATE vault_state SET key_id = ?", (new.key_id,))
        self._header = header.with_key(spare, new_key)
        self._slot = spare
        self._keys = new
        self._index = _index_of(sealed, opened)
        self._rotated = tx._rotated = True

    def _migrate(self, tx: VaultTransaction) -> None:
        """Upgrade a version 1 vault inside its first write transaction (§15.12)."""
        conn = self._connection()
        old = self._record_keys()
        header = self._live_header()
        old_key = header.keys[0]
        assert old_key is not None
        with _storage_errors():
            new_key = self._rng.random_bytes(VAULT_KEY_SIZE)
            # Same prefix (KDF parameters and salt) as before: the KEK every opener holds still works.
            raw = (
                header.prefix
                + header.seal_slot(0, old_key, self._rng)
                + header.seal_slot(1, new_key, self._rng)
            )
            _replace_header(self._directory, raw)
            new = RecordKeys(new_key)
            rows = conn.execute("SELECT row_id, kind_tag, sealed FROM records ORDER BY row_id").fetchall()
            opened = [old.open_row_v1(bytes(r), bytes(t), bytes(s)) for r, t, s in rows]
            sealed = [new.seal(kind, key, value, self._rng) for kind, key, value in opened]
            conn.execute("DROP INDEX IF EXISTS records_by_kind")
            conn.execute("DROP TABLE records")
            for statement in _TABLES_V2.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO records (row_id, sealed) VALUES (?, ?)",
                [(r.row_id, r.sealed) for rows in sealed for r in rows],
            )
            conn.execute("INSERT INTO vault_state (key_id) VALUES (?)", (new.key_id,))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._header = header.with_key(0, old_key).with_key(1, new_key)
        self._slot = 1
        self._keys = new
        self._layout = SCHEMA_VERSION
        self._index = _index_of(sealed, opened)
        self._rotated = tx._rotated = True

    def _tidy(self) -> None:
        """Step 3 of a rotation, and what a crash left behind (§15.11).

        Under the write lock, overwrite every key slot that opens to a key other than the
        records' key, and zero the journal.

        Only under the write lock: a writer puts its next key into the spare slot only while it
        holds that lock, so no slot we overwrite here can hold a key about to be committed.
        """
        conn = self._connection()
        with _storage_errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._sync()
                raw = _read_header(self._directory)
                if header_version(raw) == VERSION:
                    header = self._live_header().reopen(raw)
                    for index in range(SLOTS):
                        if index != self._slot and header.keys[index] is not None:
                            _write_slot(self._directory, index, self._rng.random_bytes(SLOT_SIZE))
                    self._header = header.only(self._slot)
                if self._layout == SCHEMA_VERSION:
                    _scrub_journal(self._directory)
            finally:
                conn.execute("COMMIT")

    def _get(self, kind: str, key: bytes) -> bytes | None:
        with self._lock:
            self._record_keys().row_id(kind, key)  # bad input is refused before any I/O
            with self._reading():
                row_id = self._record_keys().row_id(kind, key)  # under the snapshot's key
                opened = self._fetch(row_id)
            if opened is None:
                return None
            if opened[0] != kind:
                raise VaultCorruptedError("a vault record failed authentication")
            return opened[2]

    def _items(self, kind: str) -> list[tuple[bytes, bytes]]:
        with self._lock:
            check_kind(kind)
            with self._reading():
                index = self._index
                assert index is not None
                if None in index.values():
                    # A row that does not open could be of any kind: no listing is complete.
                    raise VaultCorruptedError("a vault record failed authentication")
                found = []
                for row_id in [r for r, k in index.items() if k == kind]:
                    opened = self._fetch(row_id)
                    if opened is None or opened[0] != kind:
                        raise VaultCorruptedError("a vault record failed authentication")
                    found.append((opened[1], opened[2]))
                return found

    def _fetch(self, row_id: bytes) -> tuple[str, bytes, bytes] | None:
        """Read and open the row ``row_id`` of either layout, or ``None`` if there is none."""
        with _storage_errors():
            row = self._connection().execute(_SELECT[self._layout], (row_id,)).fetchone()
        if row is None:
            return None
        keys = self._record_keys()
        if self._layout == _SCHEMA_V1:
            return keys.open_row_v1(row_id, bytes(row[1]), bytes(row[0]))
        return keys.open_record(row_id, bytes(row[0]), self._sealed_chunk)

    def _sealed_chunk(self, chunk_id: bytes) -> bytes | None:
        with _storage_errors():
            row = (
                self._connection()
                .execute("SELECT sealed FROM records WHERE row_id = ?", (chunk_id,))
                .fetchone()
            )
        return None if row is None else bytes(row[0])

    def __repr__(self) -> str:
        return f"Vault({'open' if self._conn is not None else 'closed'})"


_SELECT: Final = {
    SCHEMA_VERSION: "SELECT sealed FROM records WHERE row_id = ?",
    _SCHEMA_V1: "SELECT sealed, kind_tag FROM records WHERE row_id = ?",
}


def _kind_or_none(keys: RecordKeys, row_id: bytes, sealed: bytes, kind_tag: bytes | None) -> str | None:
    """A row's entry in the kind index: its kind, "" for a further chunk, None if it does not open."""
    try:
        if kind_tag is None:
            return keys.head_kind(row_id, sealed)
        return keys.open_row_v1(row_id, kind_tag, sealed)[0]
    except VaultCorruptedError:
        return None


def _index_of(
    sealed: list[list[SealedRecord]], opened: list[tuple[str, bytes, bytes]]
) -> dict[bytes, str | None]:
    """The kind index of freshly sealed records."""
    index: dict[bytes, str | None] = {}
    for rows, (kind, _, _) in zip(sealed, opened, strict=True):
        index.update((r.row_id, kind if n == 0 else "") for n, r in enumerate(rows))
    return index


def _current_slot(conn: sqlite3.Connection, header: HeaderKeys) -> int:
    """The slot whose key the database names (version 2 layout)."""
    row = conn.execute("SELECT key_id FROM vault_state").fetchone()
    if row is not None:
        for index, key in enumerate(header.keys):
            if key is not None and hmac.compare_digest(RecordKeys(key).key_id, bytes(row[0])):
                return index
    raise VaultCorruptedError("the vault's header holds no key for its records")
