"""``burner duress``: arm or disarm a burner's duress passphrase (docs/protocol.md §17.11)."""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer

from burnerkit.cli.context import HomeOpt, JsonOpt, open_messenger
from burnerkit.cli.output import console, err_console, print_json
from burnerkit.errors import UsageError

__all__ = ["ENV_DURESS_PASSPHRASE", "ask_duress_passphrase", "duress", "register"]

ENV_DURESS_PASSPHRASE = "BURNER_DURESS_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
_MIN_LENGTH = 8


def ask_duress_passphrase(burner: str | None) -> str:
    """The new duress passphrase, from ``$BURNER_DURESS_PASSPHRASE`` or typed twice, hidden.

    Raises:
        UsageError: no terminal and no variable; too short; typed differently twice.
    """
    given = os.environ.get(ENV_DURESS_PASSPHRASE)
    if given is None:
        try:
            given = getpass.getpass(f"duress passphrase for {burner or 'the burner'}: ")
            if getpass.getpass("again: ") != given:
                raise UsageError("the two duress passphrases differ")
        except EOFError as exc:
            raise UsageError(
                f"no terminal to ask for the duress passphrase: set {ENV_DURESS_PASSPHRASE}"
            ) from exc
    if len(given) < _MIN_LENGTH:
        raise UsageError(f"a duress passphrase needs at least {_MIN_LENGTH} characters")
    return given


def duress(
    name: Annotated[
        str | None, typer.Argument(help="The burner to guard (optional when there is one).")
    ] = None,
    alert: Annotated[
        list[str] | None,
        typer.Option(
            "--alert", metavar="ALIAS", help="Alert this contact when the duress passphrase is used (repeat)."
        ),
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="Disarm: shred the decoy.")] = False,
    status: Annotated[
        bool, typer.Option("--status", help="Only say whether it is armed, and whom it alerts.")
    ] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Arm a duress passphrase: unlocking with it destroys this burner's key and opens a decoy.

    The decoy is a burner of the same name with no contacts. Each --alert contact gets a
    one-time key now, and a silent alert when the duress passphrase is used. Run again to
    change the duress passphrase or the contacts (and after a contact moves relay: --status
    says so); --off shreds the decoy. Read docs/field-guide.md first: what it does not do.
    """
    import asyncio

    if sum((off, status, bool(alert))) > 1:
        raise UsageError("--off, --status and --alert: choose one")
    unsent: list[str] = []
    with open_messenger(home, name, quiet=json_out) as messenger:
        if off:
            messenger.disarm_duress()
        elif not status:
            messenger.arm_duress(ask_duress_passphrase(messenger.name), alert=alert)
            if alert:
                unsent = asyncio.run(messenger.flush_outbox())
        shown, armed = messenger.name, messenger.duress_armed
        alerted, stale = messenger.duress_alerts()
    if json_out:
        print_json({"burner": shown, "duress": armed, "alerts": alerted, "stale": stale})
    elif not armed:
        console.print(f"duress is not armed for [bold]{shown}[/]")
    else:
        console.print(
            f"duress armed for [bold]{shown}[/]: the duress passphrase opens a decoy, and destroys it; "
            + (f"it alerts {', '.join(alerted)}" if alerted else "it alerts no one")
        )
    if stale:
        err_console.print(
            f"warning: the alert of {', '.join(stale)} would not arrive (a relay move, a burn or a removal "
            "since duress was armed): arm it again with 'burner duress'",
            markup=False,
        )
    if unsent:
        err_console.print(
            f"the alert keys wait in the outbox (relay unreachable: {', '.join(unsent)}); "
            "the next 'burner inbox' or 'send' sends them",
            markup=False,
        )


def register(app: typer.Typer) -> None:
    """Add ``duress`` to ``app``."""
    app.command("duress")(duress)
