"""``Vault``: one burner's encrypted records on disk (docs/protocol.md §15).

Theory of operation
-------------------
A vault is a directory with two files of its own: ``vault.key`` (the header: the vault key
wrapped under the passphrase, :mod:`.format`) and ``vault.sqlite`` (one row per record, each
sealed). The header is written last at creation and replaced atomically (temp file, fsync,
rename, fsync of the directory) when the passphrase changes, so at every instant the directory
holds either no vault or one complete header. :meth:`Vault.exists` looks at the header alone.

SQLite gives us crash safety: every change happens inside ``BEGIN IMMEDIATE`` … ``COMMIT`` with
``journal_mode=WAL`` and ``synchronous=FULL``, so a process killed at any instant leaves each
transaction either entirely on disk or not at all. ``secure_delete=ON`` zeroes a deleted or
overwritten record in the database file, and after any commit that deleted or overwrote a row
(and on close) ``wal_checkpoint(TRUNCATE)`` empties the WAL, which still held the old page.
``temp_store=MEMORY`` keeps sort and temp tables off the disk.

Burning is :meth:`Vault.shred`: the header goes first (overwritten with random bytes, fsynced,
unlinked), which alone makes every other byte unreadable; then each database file is
overwritten with zeros, fsynced and unlinked; then the directory, if empty, is removed. Each
step tolerates the files an earlier, interrupted run already removed, so a burn killed halfway
completes when it is run again.

Every ``sqlite3.Error`` and ``OSError`` is translated to a :class:`VaultError` at one boundary,
:func:`_storage_errors`; its message names the SQLite error code or errno only.

One :class:`Vault` may be shared between threads: a lock serialises calls, and a transaction
holds it from ``BEGIN`` to ``COMMIT``, so other threads wait for the transaction to end.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from burnerkit.crypto.passphrase import DEFAULT_KDF, KdfParams
from burnerkit.crypto.rng import Random, SystemRandom
from burnerkit.errors import AlreadyExistsError, VaultCorruptedError, VaultError, VaultLockedError

from .format import HEADER_SIZE, VAULT_KEY_SIZE, RecordKeys, open_header, seal_header

__all__ = [
    "DB_FILE",
    "HEADER_FILE",
    "LOCK_FILE",
    "SCHEMA_VERSION",
    "ExclusiveLock",
    "Vault",
    "VaultTransaction",
]

HEADER_FILE: Final = "vault.key"
DB_FILE: Final = "vault.sqlite"
#: ``PRAGMA user_version`` of the records database.
SCHEMA_VERSION: Final = 1

_HEADER_TMP: Final = "vault.key.tmp"
#: An empty file that processes sharing the vault lock to take turns (``Vault.exclusive``).
LOCK_FILE: Final = "vault.lock"
# -journal cannot appear in WAL mode, but a crash before WAL was switched on could leave one.
_DB_FILES: Final = (f"{DB_FILE}-wal", f"{DB_FILE}-shm", f"{DB_FILE}-journal", DB_FILE)
_BUSY_TIMEOUT: Final = 5.0
_CHUNK: Final = 1 << 20
# SQLite's primary result codes that mean "these bytes are not a sound database".
_SQLITE_CORRUPT: Final = 11
_SQLITE_NOTADB: Final = 26

_SCHEMA: Final = f"""
BEGIN;
CREATE TABLE records (
    row_id   BLOB PRIMARY KEY NOT NULL,
    kind_tag BLOB NOT NULL,
    sealed   BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX records_by_kind ON records (kind_tag);
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
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


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    """Create (or truncate) ``path`` with mode 0o600, write ``data`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    # mode=rw never creates a file: an open vault whose database vanished must not come back empty.
    uri = path.resolve().as_uri() + ("?mode=rwc" if create else "?mode=rw")
    conn = sqlite3.connect(
        uri, uri=True, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA secure_delete = ON")
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal":
            raise VaultError("the vault database cannot use WAL mode")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA temp_store = MEMORY")
    except BaseException:
        conn.close()
        raise
    return conn


class VaultTransaction:
    """Reads and writes inside one :meth:`Vault.transaction`; valid only inside its ``with``."""

    __slots__ = ("_shrank", "_vault")

    def __init__(self, vault: Vault) -> None:
        self._vault: Vault | None = vault
        # True once a row was deleted or overwritten: its old bytes sit in the WAL until a checkpoint.
        self._shrank = False

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
        record = vault._record_keys().seal(kind, key, value, vault._rng)
        with vault._lock, _storage_errors():
            conn = vault._connection()
            existed = (
                conn.execute("SELECT 1 FROM records WHERE row_id = ?", (record.row_id,)).fetchone()
                is not None
            )
            conn.execute(
                "INSERT INTO records (row_id, kind_tag, sealed) VALUES (?, ?, ?) "
                "ON CONFLICT (row_id) DO UPDATE SET kind_tag = excluded.kind_tag, sealed = excluded.sealed",
                (record.row_id, record.kind_tag, record.sealed),
            )
        self._shrank |= existed

    def delete(self, kind: str, key: bytes) -> bool:
        """Delete the record under ``(kind, key)``; ``True`` if there was one.

        Raises:
            ValueError, TypeError: for a bad kind or key (see :meth:`put`).
            VaultError: if the database write failed.
        """
        vault = self._live()
        row_id = vault._record_keys().row_id(kind, key)
        with vault._lock, _storage_errors():
            deleted = (
                vault._connection().execute("DELETE FROM records WHERE row_id = ?", (row_id,)).rowcount > 0
            )
        self._shrank |= deleted
        return deleted

    def __repr__(self) -> str:
        return f"VaultTransaction({'open' if self._vault is not None else 'ended'})"


class Vault:
    """An unlocked vault: records of ``(kind, key) → value``, each sealed (docs/protocol.md §15).

    Built with :meth:`create` or :meth:`open`; usable as a context manager that closes it.
    """

    __slots__ = ("_conn", "_directory", "_keys", "_lock", "_rng", "_tx", "_vault_key")

    def __init__(self, directory: Path, conn: sqlite3.Connection, vault_key: bytes, rng: Random) -> None:
        """Private: use :meth:`create` or :meth:`open`."""
        self._directory = directory
        self._conn: sqlite3.Connection | None = conn
        self._vault_key: bytes | None = vault_key
        self._keys: RecordKeys | None = RecordKeys(vault_key)
        self._rng = rng
        self._lock = threading.RLock()
        self._tx: VaultTransaction | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, passphrase: str, *, rng: Random, kdf: KdfParams = DEFAULT_KDF) -> Vault:
        """Create a new, empty vault in ``directory`` (made with mode 0o700 if missing).

        Leftovers without a header (a crashed creation or burn) are shredded first: without
        their header nobody can read them. ``rng`` also supplies the nonces of later writes.

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
        header = seal_header(vault_key, passphrase, kdf, rng)
        conn: sqlite3.Connection | None = None
        try:
            with _storage_errors():
                # Created here so it is 0o600 from its first byte; SQLite gives -wal and -shm the same mode.
                os.close(os.open(directory / DB_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                conn = _connect(directory / DB_FILE, create=True)
                conn.executescript(_SCHEMA)
                _write_new(directory / _HEADER_TMP, header)
                os.replace(directory / _HEADER_TMP, directory / HEADER_FILE)
                _fsync_dir(directory)
        except BaseException:
            if conn is not None:
                conn.close()
            with contextlib.suppress(OSError):
                for name in (HEADER_FILE, _HEADER_TMP, *_DB_FILES):
                    _shred_file(directory / name, random=False)
            raise
        return cls(directory, conn, vault_key, rng)

    @classmethod
    def open(cls, directory: Path, passphrase: str, *, rng: Random | None = None) -> Vault:
        """Unlock the vault in ``directory``.

        Args:
            directory: the burner's vault directory.
            passphrase: the passphrase given at creation or the last :meth:`change_passphrase`.
            rng: nonces for later writes; :class:`SystemRandom` unless a test injects one.

        Raises:
            VaultLockedError: for a wrong passphrase, a damaged or truncated header, and a missing
                header (use :meth:`exists` to tell "no vault here" apart); one message for all.
            VaultCorruptedError: if the header opens but the records database is missing or damaged.
            VaultError: if the files cannot be read.
        """
        directory = Path(directory)
        if not isinstance(passphrase, str):
            raise TypeError("passphrase must be a str")
        with _storage_errors():
            try:
                with (directory / HEADER_FILE).open("rb") as f:
                    header = f.read(HEADER_SIZE + 1)  # a huge planted file is not read whole
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise VaultLockedError from None
        vault_key = open_header(header, passphrase)
        with _storage_errors():
            # A change of passphrase that crashed before its rename left the new header behind.
            _shred_file(directory / _HEADER_TMP, random=True)
            if not (directory / DB_FILE).is_file():
                raise VaultCorruptedError("the vault's records database is missing")
            conn = _connect(directory / DB_FILE, create=False)
            try:
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                if version != SCHEMA_VERSION:
                    raise VaultCorruptedError("the vault's records database has an unknown layout")
            except BaseException:
                conn.close()
                raise
        return cls(directory, conn, vault_key, rng if rng is not None else SystemRandom())

    @staticmethod
    def exists(directory: Path) -> bool:
        """Whether ``directory`` holds a vault header (it may still be damaged)."""
        return (Path(directory) / HEADER_FILE).is_file()

    def close(self) -> None:
        """Checkpoint the WAL away and close; closing twice is harmless.

        Raises:
            ValueError: inside a transaction.
            VaultError: if the final checkpoint failed (the vault is closed all the same).
        """
        with self._lock:
            if self._conn is None:
                return
            if self._tx is not None:
                raise ValueError("close() inside a vault transaction")
            conn = self._conn
            self._conn = self._keys = self._vault_key = None
            try:
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
            self._conn = self._keys = self._vault_key = None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self.shred(self._directory)

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
            _fsync_dir(directory)
            for name in (*_DB_FILES, LOCK_FILE):
                _shred_file(directory / name, random=False)
            _fsync_dir(directory)
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
            tx = self._tx = VaultTransaction(self)
            try:
                yield tx
            except BaseException:
                self._end(tx)
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            self._end(tx)
            with _storage_errors():
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                if tx._shrank:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def change_passphrase(self, new: str, *, rng: Random, kdf: KdfParams = DEFAULT_KDF) -> None:
        """Wrap the same vault key under a new passphrase; the records are not touched.

        Atomic: the new header goes to a temp file, is fsynced and renamed over the old one;
        the old header's inode is then overwritten with random bytes, best effort.

        Raises:
            TypeError: if ``new`` is not a ``str``.
            ValueError: inside a transaction, or if the vault is closed.
            VaultError: if the header cannot be written (the old passphrase still works).
        """
        if not isinstance(new, str):
            raise TypeError("passphrase must be a str")
        with self._lock:
            self._connection()
            if self._tx is not None:
                raise ValueError("change_passphrase() inside a vault transaction")
            assert self._vault_key is not None
            header = seal_header(self._vault_key, new, kdf, rng)
            with _storage_errors():
                tmp = self._directory / _HEADER_TMP
                _write_new(tmp, header)
                try:
                    old = os.open(self._directory / HEADER_FILE, os.O_WRONLY | os.O_NOFOLLOW)
                except FileNotFoundError:
                    old = -1
                try:
                    os.replace(tmp, self._directory / HEADER_FILE)
                    _fsync_dir(self._directory)
                    if old >= 0:
                        # Unlinked but still open: overwrite the old wrap so its blocks do not keep it.
                        _overwrite_fd(old, random=True)
                finally:
                    if old >= 0:
                        os.close(old)

    # -- internals ---------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("the vault is closed")
        return self._conn

    def _record_keys(self) -> RecordKeys:
        if self._keys is None:
            raise ValueError("the vault is closed")
        return self._keys

    def _end(self, tx: VaultTransaction) -> None:
        tx._vault = None
        self._tx = None

    def _get(self, kind: str, key: bytes) -> bytes | None:
        with self._lock:
            keys = self._record_keys()
            row_id = keys.row_id(kind, key)
            with _storage_errors():
                row = (
                    self._connection()
                    .execute("SELECT kind_tag, sealed FROM records WHERE row_id = ?", (row_id,))
                    .fetchone()
                )
            if row is None:
                return None
            # The AEAD binds the expected tag anyway; a relabelled row would vanish from items().
            if not hmac.compare_digest(bytes(row[0]), keys.kind_tag(kind)):
                raise VaultCorruptedError("a vault record failed authentication")
            return keys.open(kind, row_id, bytes(row[1]))[1]

    def _items(self, kind: str) -> list[tuple[bytes, bytes]]:
        with self._lock:
            keys = self._record_keys()
            kind_tag = keys.kind_tag(kind)
            with _storage_errors():
                rows = (
                    self._connection()
                    .execute("SELECT row_id, sealed FROM records WHERE kind_tag = ?", (kind_tag,))
                    .fetchall()
                )
            return [keys.open(kind, bytes(row_id), bytes(sealed)) for row_id, sealed in rows]

    def __repr__(self) -> str:
        return f"Vault({'open' if self._conn is not None else 'closed'})"
