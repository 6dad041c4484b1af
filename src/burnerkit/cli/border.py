"""``burner border``: hand the vault key to the issuer before a checkpoint, get it back after (§17.12).

``cross`` seals the key to the issuer and destroys it on the device; ``return`` shows the
return request and the code to read to the office, and with ``--release`` puts the key the
office released back under the passphrase. The office's side is ``burner issuer release``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from burnerkit.cli.context import HomeOpt, JsonOpt, open_messenger
from burnerkit.cli.output import console, err_console, print_json, spinner
from burnerkit.cli.passphrase import ask_passphrase
from burnerkit.errors import UsageError

__all__ = ["border_app", "cross", "register", "return_"]

border_app = typer.Typer(
    help="Border mode: the vault key held by the issuer while the device crosses a checkpoint.",
    no_args_is_help=True,
    add_completion=False,
)

NameArg = Annotated[str | None, typer.Argument(help="The burner (optional when there is one).")]


@border_app.command("cross")
def cross(
    name: NameArg = None,
    issuer: Annotated[
        bool,
        typer.Option("--issuer", help="The issuer holds the key (the one given at 'burner new --issuer')."),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Really hand the key over.")] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Before a checkpoint: seal the vault key to the issuer and destroy it on this device.

    Until 'burner border return' nothing on the device opens, with the passphrase or without:
    the burner neither sends nor receives (its contacts' messages wait on the relay). Getting
    the key back needs the office: the traveller reads it a code over a voice line.
    """
    if not issuer:
        raise UsageError("say who holds the key while you cross: --issuer (the burner's issuer key)")
    if not yes:
        raise UsageError("the burner stays locked until the issuer releases its key: add --yes")
    with open_messenger(home, name, quiet=json_out) as messenger:
        burner = messenger.name
        with spinner(f"sealing {burner}'s key to its issuer…", quiet=json_out):
            messenger.cross_border()
    if json_out:
        print_json({"burner": burner, "at_border": True, "holder": "issuer"})
    else:
        console.print(
            f"[bold]{burner}[/] is at the border: its key is sealed to the issuer and gone from this "
            f"device. Once across, run 'burner border return {burner}'."
        )


def _release_text(text: str) -> str:
    """A release given as its text, or as a file that holds it."""
    from burnerkit.app.border import RELEASE_PREFIX

    if not "".join(text.split()).startswith(RELEASE_PREFIX) and Path(text).is_file():
        return Path(text).read_text()
    return text


@border_app.command("return")
def return_(
    name: NameArg = None,
    release: Annotated[
        str | None,
        typer.Option(
            "--release", metavar="RELEASE", help="The office's release (burner:br1.…), or a file of it."
        ),
    ] = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """After the crossing: show the return request and its code; with --release, take the key back.

    The first run makes a one-time key on this device: send the request (burner:bq1.…) to
    the office by any channel and read it the code over a voice line. The office answers
    with a release that opens only with that one-time key.
    """
    from burnerkit.app import border
    from burnerkit.app.home import Home
    from burnerkit.crypto.rng import SystemRandom

    resolved = Home.resolve(home)
    resolved.check_choice(name)
    passphrase = ask_passphrase(name)
    rng = SystemRandom()
    if release is None:
        with spinner("unlocking…", quiet=json_out):
            burner, request = border.begin_return(resolved, name, passphrase, rng)
        if json_out:
            print_json({"burner": burner, "request": request.to_text(), "code": request.code})
            return
        err_console.print(f"send this return request for {burner} to the office (any channel):")
        console.print(request.to_text(), markup=False)
        err_console.print(
            f"then read it this code over a voice line: {request.code}\n"
            f"and run 'burner border return {burner} --release RELEASE' with its answer"
        )
        return
    text = _release_text(release)
    with spinner("unlocking…", quiet=json_out):
        burner = border.finish_return(resolved, name, passphrase, text, rng)
    if json_out:
        print_json({"burner": burner, "at_border": False})
    else:
        console.print(f"[bold]{burner}[/] is back: its key is under its passphrase again")


def register(app: typer.Typer) -> None:
    """Add the ``border`` group to ``app``."""
    app.add_typer(border_app, name="border")
