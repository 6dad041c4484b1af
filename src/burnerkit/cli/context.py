"""Options every command shares, and opening the burner they name.

One definition of ``--home``, ``--burner`` and ``--json``, and one way to unlock, so every
command finds and opens a burner alike (docs/cli.md).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from burnerkit.cli.output import spinner
from burnerkit.cli.passphrase import ask_passphrase
from burnerkit.errors import UsageError

if TYPE_CHECKING:
    from burnerkit.app.messenger import Messenger

__all__ = ["EXIT_DECLINED", "BurnerOpt", "HomeOpt", "JsonOpt", "confirm", "open_messenger", "relay_timeout"]

#: A question was answered no: nothing was changed (docs: src/burnerkit/cli/errors.py).
EXIT_DECLINED = 1

HomeOpt = Annotated[
    str | None,
    typer.Option("--home", metavar="DIR", help="Where burners live [default: $BURNER_HOME or the data dir]."),
]
BurnerOpt = Annotated[
    str | None,
    typer.Option("--burner", "-b", metavar="NAME", help="Which burner (optional when the home holds one)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def relay_timeout() -> float:
    """Seconds a relay call may take, ``$BURNER_RELAY_TIMEOUT`` or 10."""
    text = os.environ.get("BURNER_RELAY_TIMEOUT", "10")
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise UsageError(f"BURNER_RELAY_TIMEOUT must be a positive number of seconds: {text!r}")
    return value


def open_messenger(
    home: str | None, burner: str | None, *, allow_expired: bool = False, quiet: bool = False
) -> Messenger:
    """Unlock the burner the options name, asking for its passphrase.

    Nothing on disk names a burner, so the passphrase is asked before the name can be
    found: the Messenger tries it on the home's vaults (docs/protocol.md §15.1). A spinner
    shows while the passphrase is stretched, unless ``quiet`` (``--json``).
    """
    # Imported here, as in every command: the Messenger pulls in cryptography, the vault
    # and websockets, which --help and --version never need (see cli/main.py).
    from burnerkit.app.home import Home
    from burnerkit.app.messenger import Messenger

    resolved = Home.resolve(home)
    resolved.check_choice(burner)
    passphrase = ask_passphrase(burner)
    timeout = relay_timeout()
    with spinner(f"unlocking {burner or 'the burner'}…", quiet=quiet):
        return Messenger.open(
            resolved,
            burner,
            passphrase,
            relay_timeout=timeout,
            allow_expired=allow_expired,
            detach_alerts=True,  # the command ends when a normal one would (§17.11)
        )


def confirm(question: str, *, refusal: str) -> None:
    """Ask ``question`` on the terminal and go on only on yes.

    Raises:
        UsageError: ``refusal`` (which names the option that answers yes beforehand):
            there is no terminal to ask on.
        typer.Exit: the answer was no (exit 1, nothing changed).
    """
    if not sys.stdin.isatty():
        raise UsageError(refusal)
    if not typer.confirm(question, default=False, err=True):
        print("burner: nothing changed", file=sys.stderr)
        raise typer.Exit(EXIT_DECLINED)
