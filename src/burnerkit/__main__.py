"""The ``burner`` command.

For now it knows ``demo`` and ``--version``; the full command line (Typer, one
group per module) arrives with the vault and relay.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from burnerkit import __version__
from burnerkit.errors import BurnerError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``burner`` command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="burner", description="A burner phone in software.")
    parser.add_argument("--version", action="version", version=f"burner {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the end-to-end scenario in-process")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from burnerkit.demo import run  # imported late: keeps --version fast

            run(print)
            return 0
    except BurnerError as exc:
        print(f"burner: {exc}", file=sys.stderr)
        return 1
    return 2  # pragma: no cover - argparse rejects unknown commands first


if __name__ == "__main__":
    raise SystemExit(main())
