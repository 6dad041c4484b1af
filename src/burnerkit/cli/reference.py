"""docs/cli.md, written from the commands themselves: ``python -m burnerkit.cli.reference``.

One statement of each fact: a command's summary is its docstring's first line, and the
exit codes are the table in :mod:`burnerkit.cli.errors`' docstring. tests/e2e/test_cli.py
checks that docs/cli.md is what this prints.
"""

from __future__ import annotations

import sys
from typing import Any

import typer.main

from burnerkit.cli import errors
from burnerkit.cli.main import app

__all__ = ["commands", "exit_table", "render"]

_INTRO = """\
# The `burner` command

Written by `python -m burnerkit.cli.reference > docs/cli.md` from the commands' own help;
do not edit by hand. `burner COMMAND -h` (or `--help`) shows a command's arguments and
options.

Every command that opens a burner asks for its passphrase on the terminal, or takes it from
`$BURNER_PASSPHRASE` (never from the command line). `--json` prints JSON for scripts (times
as seconds since the epoch, UTC); otherwise times are shown in local time with the zone
(`2026-12-07 14:03 CET`). Questions (`contacts remove`, re-pairing a name that is taken)
are asked only on a terminal; without one the command refuses (exit 2) and names the option
that answers yes beforehand (`--yes`, `--replace`).

Durations (`--expires`, `--disappear`, `--check-in`) are `30s`, `15m`, `1h`, `7d`, `4w` or
sums like `1h30m`. A burner minted with `burner new --check-in DURATION` (a dead-man switch,
docs/protocol.md §17.8; at least `1m`, shorter than `--expires`) burns when any command
opens it more than that long after its last unlock (exit 3, "was not unlocked within its
check-in window"); every unlock of it, even by a command that only reads, records a
check-in, and `inbox --follow` and `chat` check in while they run. Its contacts get
heartbeats (never shown); a contact silent past its window is shown `SILENT since ...` by
`contacts` (`"silent_since"` in `--json`) and warned about once by `inbox` (a `silent` event).
"""


def commands() -> list[tuple[str, str]]:
    """(``burner ...`` path, one-line summary) of every command, groups' commands included."""
    root = typer.main.get_command(app)
    out: list[tuple[str, str]] = []

    def walk(prefix: str, command: Any) -> None:
        out.append((prefix, command.get_short_help_str(limit=200)))
        for name, sub in getattr(command, "commands", {}).items():
            walk(f"{prefix} {name}", sub)

    for name, command in getattr(root, "commands", {}).items():
        walk(f"burner {name}", command)
    return out


def exit_table() -> list[str]:
    """The rows of the exit-code table in :mod:`burnerkit.cli.errors`' docstring."""
    doc = errors.__doc__ or ""
    return [line for line in doc.splitlines() if line.startswith("|")]


def render() -> str:
    """The contents of docs/cli.md."""
    lines = [_INTRO, "## Commands", "", "| Command | What it does |", "| --- | --- |"]
    lines += [f"| `{path}` | {summary} |" for path, summary in commands()]
    lines += ["", "## Exit codes", "", *exit_table(), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
