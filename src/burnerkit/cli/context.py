"""Options every command shares, and opening the burner they name."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.cli.passphrase import ask_passphrase
from burnerkit.errors import UsageError

__all__ = ["BurnerOpt", "HomeOpt", "JsonOpt", "open_messenger", "relay_timeout"]

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


def open_messenger(home: str | None, burner: str | None, *, allow_expired: bool = False) -> Messenger:
    """Unlock the burner the options name, asking for its passphrase."""
    resolved = Home.resolve(home)
    name = resolved.pick(burner)
    return Messenger.open(
        resolved, name, ask_passphrase(name), relay_timeout=relay_timeout(), allow_expired=allow_expired
    )
