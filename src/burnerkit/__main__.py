"""``python -m burnerkit``: the ``burner`` command (see :mod:`burnerkit.cli.main`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``burner`` command; returns the exit code."""
    from burnerkit.cli.main import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
