r"""Where burners live on disk: one directory per burner under a home directory.

The home is ``--home DIR``, else ``$BURNER_HOME``, else the platform's data directory
(``$XDG_DATA_HOME/burnerkit`` or ``~/.local/share/burnerkit``; ``~/Library/Application
Support/burnerkit`` on macOS; ``%APPDATA%\burnerkit`` on Windows). A burner's directory
is named after the burner, so a name should say nothing the owner would not write on
the outside of a phone. What each directory holds: docs/protocol.md §15.1.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from burnerkit.errors import NotFoundError, UsageError

__all__ = ["BURNING_MARKER", "Home", "check_name"]

_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
#: Written into a burner's directory before a burn starts; its presence means "finish
#: the burn", so a burn interrupted by a crash completes on the next start.
BURNING_MARKER: Final = "BURNING"
_VAULT_HEADER: Final = "vault.key"


def check_name(name: str, what: str = "burner") -> str:
    """``name`` if it is a valid burner or contact name (1-32 of a-z 0-9 _ -).

    Raises:
        UsageError: otherwise.
    """
    if not _NAME.fullmatch(name):
        raise UsageError(f"{what} name must be 1-32 characters of a-z, 0-9, '_' and '-': {name!r}")
    return name


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

    def directory(self, name: str) -> Path:
        """The directory of the burner ``name`` (which may not exist yet)."""
        return self.root / check_name(name)

    def names(self) -> list[str]:
        """Every burner in this home, sorted (burns in progress included)."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir()
            and _NAME.fullmatch(entry.name)
            and ((entry / _VAULT_HEADER).exists() or (entry / BURNING_MARKER).exists())
        )

    def pick(self, name: str | None) -> str:
        """``name``, or the only burner of the home when ``name`` is None.

        Raises:
            NotFoundError: no such burner, or none at all.
            UsageError: no name given and the home holds several burners.
        """
        names = self.names()
        if name is not None:
            check_name(name)
            if name not in names:
                raise NotFoundError(f"no burner named {name!r} in {self.root}")
            return name
        if not names:
            raise NotFoundError(f"no burner in {self.root}: make one with 'burner new NAME'")
        if len(names) > 1:
            raise UsageError(f"{len(names)} burners in {self.root}: say which with --burner NAME")
        return names[0]
