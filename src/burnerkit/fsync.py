"""Durable directory changes: the one helper the vault and the home share.

Importing nothing beyond ``os``, so that commands which only look at the home (``burner list``
without a passphrase) stay free of the crypto modules.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir"]


def fsync_dir(directory: Path) -> None:
    """Make a rename, creation or unlink in ``directory`` durable (POSIX: sync the directory itself)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
