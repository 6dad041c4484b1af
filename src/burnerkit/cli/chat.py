"""``burner chat``: the terminal chat UI (Textual, in :mod:`burnerkit.tui`).

Textual is imported only when the command runs, so every other command starts without it.
"""

from __future__ import annotations

import os

import typer

from burnerkit.cli.context import BurnerOpt, HomeOpt, relay_timeout
from burnerkit.cli.passphrase import ENV_PASSPHRASE

__all__ = ["chat", "register"]


def chat(burner: BurnerOpt = None, home: HomeOpt = None) -> None:
    """Open the chat window: contacts, live conversations, pairing, alerts, burn (F1: keys)."""
    # Imported here: Textual costs a third of a second that no other command should pay.
    from burnerkit.app.home import Home
    from burnerkit.tui.app import ChatApp

    resolved = Home.resolve(home)
    if burner is not None or resolved.count() <= 1:
        resolved.check_choice(burner)  # no burner at all: say so before drawing anything
    app = ChatApp(resolved, burner, passphrase=os.environ.get(ENV_PASSPHRASE), relay_timeout=relay_timeout())
    farewell = app.run()
    if app.error is not None:
        raise app.error  # cli/main.py turns it into its one line and exit code
    if farewell:
        print(farewell)
    if app.return_code:
        raise typer.Exit(app.return_code)


def register(app: typer.Typer) -> None:
    """Add ``chat`` to ``app``."""
    app.command("chat")(chat)
