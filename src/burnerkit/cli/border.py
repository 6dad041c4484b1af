"""``burner border``: hand the vault key to a holder before a checkpoint, get it back after (§17.12).

``cross`` seals the key to the issuer (``--issuer``) or sends it to a contact (``--holder``) and
destroys it on the device; ``return`` shows the return request and the code to read to the
holder, and with ``--release`` puts the key the holder released back under the passphrase.
The holder's side is ``burner issuer release`` for the office and ``burner border release``
for a contact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from burnerkit.cli.context import BurnerOpt, HomeOpt, JsonOpt, open_messenger
from burnerkit.cli.output import console, err_console, print_json, spinner
from burnerkit.cli.passphrase import ask_passphrase
from burnerkit.errors import UsageError

__all__ = ["border_app", "cross", "register", "release", "return_"]

border_app = typer.Typer(
    help="Border mode: the vault key held by the issuer or a contact while the device crosses a checkpoint.",
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
    holder: Annotated[
        str | None,
        typer.Option("--holder", metavar="ALIAS", help="A contact holds the key (sent to them, end to end)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really hand the key over.")] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Before a checkpoint: hand the vault key to the issuer or a contact and destroy it on this device.

    Until 'burner border return' nothing on the device opens, with the passphrase or without:
    the burner neither sends nor receives (its contacts' messages wait on the relay). Getting
    the key back needs the holder: the traveller reads it a code over a voice line. A contact
    holder must be reachable: the key leaves the device (the relay takes it) before it is
    destroyed, or nothing changes.
    """
    if issuer == (holder is not None):
        raise UsageError(
            "say who holds the key while you cross: --issuer (the burner's issuer key) or "
            "--holder ALIAS (a contact)"
        )
    who = "its issuer" if issuer else f"contact {holder}"
    if not yes:
        raise UsageError(f"the burner stays locked until {who} releases its key: add --yes")
    with open_messenger(home, name, quiet=json_out) as messenger:
        burner = messenger.name
        with spinner(f"handing {burner}'s key to {who}…", quiet=json_out):
            if holder is None:
                messenger.cross_border()
            else:
                import asyncio  # here: `burner --version` and `--help` stay light

                asyncio.run(messenger.cross_border_to(holder))
    if json_out:
        print_json({"burner": burner, "at_border": True, "holder": "issuer" if issuer else holder})
    else:
        console.print(
            f"[bold]{burner}[/] is at the border: its key is with {who} and gone from this "
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
            "--release", metavar="RELEASE", help="The holder's release (burner:br1.…), or a file of it."
        ),
    ] = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """After the crossing: show the return request and its code; with --release, take the key back.

    The first run makes a one-time key on this device: send the request (burner:bq1.…) to
    the holder (the office, or the contact) by any channel and read it the code over a voice
    line. The holder answers with a release that opens only with that one-time key.
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
        holder = "the contact who holds its key" if not request.escrow else "the office"
        err_console.print(f"send this return request for {burner} to {holder} (any channel):")
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


@border_app.command("release")
def release(
    alias: Annotated[str, typer.Argument(help="The contact who left their key with you.")],
    request: Annotated[
        str,
        typer.Option(
            "--request", metavar="REQUEST", help="The traveller's return request (burner:bq1.…), or a file."
        ),
    ],
    code: Annotated[str, typer.Option("--code", metavar="CODE", help="The code the traveller read to you.")],
    burner: BurnerOpt = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Release the vault key a contact left with you for a border crossing (docs/protocol.md §17.12).

    Only if CODE, read by the traveller over a voice line you trust, matches the request,
    and the request is for a key ALIAS left with this burner: the release then opens only
    with the one-time key the traveller's device made.
    """
    from burnerkit.app.border import REQUEST_PREFIX, ReturnRequest

    if not "".join(request.split()).startswith(REQUEST_PREFIX) and Path(request).is_file():
        request = Path(request).read_text()
    parsed = ReturnRequest.from_text(request)
    with open_messenger(home, burner, quiet=json_out) as messenger:
        text = messenger.release_border_key(alias, parsed, code)
    if json_out:
        print_json({"release": text})
    else:
        err_console.print(f"the code matches; give {alias} this release:")
        console.print(text, markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``border`` group to ``app``."""
    app.add_typer(border_app, name="border")
