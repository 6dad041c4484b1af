"""Durable file writes and directory changes: the helpers the vault, the home and border mode share.

Importing nothing beyond ``os``, so that commands which only look at the home (``burner list``
without a passphrase) stay free of the crypto modules.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "write_synced"]


def fsync_dir(directory: Path) -> None:
    """Make a rename, creation or unlink in ``directory`` durable (POSIX: sync the directory itself)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: Path, data: bytes, *, exclusive: bool) -> None:
    """Write ``data`` whole to ``path`` (mode 0o600, never through a symlink) and fsync it.

    ``exclusive``: the file must not exist yet (``O_EXCL``); otherwise an existing one is
    truncated and its mode set back to 0o600 (``O_CREAT`` keeps an old file's mode). The
    directory is not synced here: the caller knows whether the name must be durable yet.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        if not exclusive:
            os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
