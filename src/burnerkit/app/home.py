r"""Where burners live on disk: one directory per burner under a home directory.

The home is ``--home DIR``, else ``$BURNER_HOME``, else the platform's data directory
(``$XDG_DATA_HOME/burnerkit`` or ``~/.local/share/burnerkit``; ``~/Library/Application
Support/burnerkit`` on macOS; ``%APPDATA%\burnerkit`` on Windows).

Theory of operation
-------------------
Nothing on disk names a burner (docs/protocol.md §15.1): each burner's directory is a
random id (16 random bytes, base32, lower case, 26 characters), and its name lives in the
sealed profile record of its vault (§17.4). So without a passphrase a home says how many
burners it holds and nothing else; finding the burner called NAME means trying the vaults
with the passphrase (the Messenger does it, :meth:`Home.trial_order`). A burn in progress
is marked by an empty file in the burner's directory whose name is another fresh id, so
neither the directory nor the ext4 journal holds a word that says "burn".

A home made by the previous version has directories named after their burners (and
``BURNING`` markers); :meth:`Home.migrate` renames each to a random id the first time a
passphrase is tried, and remembers the old names for that run so the burner asked for by
name is tried first.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from burnerkit.errors import NotFoundError, UsageError
from burnerkit.fsync import fsync_dir, write_synced

if TYPE_CHECKING:  # at run time an argument only: `burner list` without a passphrase loads no crypto
    from burnerkit.crypto.rng import Random

__all__ = [
    "LEGACY_BURNING_MARKER",
    "Home",
    "burn_marker",
    "check_name",
    "clear_burning",
    "is_burning",
    "mark_burning",
    "new_id",
]

_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
#: A directory or marker id: base32 (RFC 4648, lower case, no padding) of 16 random bytes.
_ID: Final = re.compile(r"[a-z2-7]{26}")
_ID_BYTES: Final = 16
#: The previous version's burn marker; still honoured, never written.
LEGACY_BURNING_MARKER: Final = "BURNING"
#: ``vault.HEADER_FILE``: a directory holds a vault exactly when it holds this (``Vault.exists``).
_VAULT_HEADER: Final = "vault.key"


def check_name(name: str, what: str = "burner") -> str:
    """``name`` if it is a valid burner or contact name (1-32 of a-z 0-9 _ -).

    Raises:
        UsageError: otherwise.
    """
    if not _NAME.fullmatch(name):
        raise UsageError(f"{what} name must be 1-32 characters of a-z, 0-9, '_' and '-': {name!r}")
    return name


def new_id(rng: Random) -> str:
    """A fresh random id for a directory or a marker (26 characters of a-z 2-7)."""
    return base64.b32encode(rng.random_bytes(_ID_BYTES)).decode("ascii").rstrip("=").lower()


def is_burning(directory: Path) -> bool:
    """Whether a burn of the burner in ``directory`` was started and not finished."""
    return _marker(directory) is not None


def mark_burning(directory: Path, rng: Random, journal: bytes = b"") -> None:
    """Leave the marker that makes an interrupted burn finish on the next start.

    The marker is a file named by a fresh id holding ``journal`` (the sealed burn journal,
    docs/protocol.md §17.7; empty for a marker alone), written and fsynced with its
    directory before the burn's next step runs. A marker already there (an earlier try
    that did not get as far as destroying the key) is cleared first.
    """
    clear_burning(directory)
    write_synced(directory / new_id(rng), journal, exclusive=True)
    fsync_dir(directory)


def burn_marker(directory: Path) -> Path | None:
    """The burn marker (and journal) in ``directory``, if a burn is in progress there."""
    return _marker(directory)


def clear_burning(directory: Path) -> None:
    """Zero the burn marker in place, fsync, and remove it (the burn's last step).

    Zeroed first: the journal it holds must not stay in the blocks the unlink frees.
    """
    while (marker := _marker(directory)) is not None:
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(marker, os.O_WRONLY | os.O_NOFOLLOW)
            try:
                size = os.fstat(fd).st_size
                if size:
                    os.pwrite(fd, bytes(size), 0)
                    os.fsync(fd)
            finally:
                os.close(fd)
            marker.unlink()


def _marker(directory: Path) -> Path | None:
    """The burn marker in ``directory``: a regular file named by an id, or the legacy one."""
    try:
        entries = list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return None
    for entry in entries:
        if (_ID.fullmatch(entry.name) or entry.name == LEGACY_BURNING_MARKER) and entry.is_file():
            return entry
    return None


def _platform_home() -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "burnerkit"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "burnerkit"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "burnerkit"


@dataclass(frozen=True, slots=True)
class Home:
    """The directory that holds burners."""

    root: Path

    @classmethod
    def resolve(cls, home: str | Path | None = None) -> Home:
        """The home from the argument, else ``$BURNER_HOME``, else the platform default."""
        if home is not None:
            return cls(Path(home).expanduser())
        env = os.environ.get("BURNER_HOME")
        return cls(Path(env).expanduser() if env else _platform_home())

    def slots(self) -> list[Path]:
        """The directory of every burner in this home (burns in progress included), sorted.

        A burner's directory holds a vault header or a burn marker; its name is an id, or
        (made by the previous version, until :meth:`migrate`) the burner's name.
        """
        if not self.root.is_dir():
            return []
        return sorted(
            entry
            for entry in self.root.iterdir()
            if entry.is_dir()
            and not entry.is_symlink()
            and _NAME.fullmatch(entry.name)
            and ((entry / _VAULT_HEADER).is_file() or is_burning(entry))
        )

    def count(self) -> int:
        """How many burners this home holds; all that can be said without a passphrase."""
        return len(self.slots())

    def new_directory(self, rng: Random) -> Path:
        """A fresh directory path for a new burner (not created)."""
        while True:
            path = self.root / new_id(rng)
            if not path.exists():
                return path

    def migrate(self, rng: Random) -> dict[Path, str]:
        """Rename every directory named after its burner (the previous version's) to a random id.

        Needs no passphrase: the files move as they are, and the name they lose is in the
        sealed profile already. Another process that got there first is no error.

        Returns:
            The new directory of each renamed burner, with the name it had.
        """
        renamed: dict[Path, str] = {}
        for slot in self.slots():
            if _ID.fullmatch(slot.name):
                continue
            target = self.new_directory(rng)
            try:
                slot.rename(target)
            except FileNotFoundError:
                continue
            renamed[target] = slot.name
        if renamed:
            fsync_dir(self.root)
        return renamed

    def check_choice(self, name: str | None) -> None:
        """Whether a command can go on to ask the passphrase for ``name`` (None: the only burner).

        Raises:
            UsageError: a bad name, or no name and several burners.
            NotFoundError: no burner at all.
        """
        if name is not None:
            check_name(name)
        count = self.count()
        if not count:
            raise NotFoundError(f"no burner in {self.root}: make one with 'burner new NAME'")
        if name is None and count > 1:
            raise UsageError(f"{count} burners in {self.root}: say which with --burner NAME")

    @staticmethod
    def trial_order(slots: Iterable[Path], rng: Random, *, first: Iterable[Path] = ()) -> list[Path]:
        """``slots`` in the order to try a passphrase on them: ``first``, then the rest at random.

        A random order, rather than a fixed one, keeps which directory a name lives in from
        showing in how long an unlock of it takes.
        """
        slots = list(slots)
        ahead = [slot for slot in first if slot in slots]
        rest = [slot for slot in slots if slot not in ahead]
        return ahead + sorted(rest, key=lambda _: rng.random_bytes(16))

    def remove_if_empty(self) -> None:
        """Remove the home itself once it holds nothing: no empty directory keeps mint and burn times."""
        with contextlib.suppress(OSError):
            self.root.rmdir()
