"""``burner new``, ``burner list``, ``burner burn``: minting, listing and destroying burners."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from burnerkit.app.durations import parse_duration
from burnerkit.app.home import Home
from burnerkit.app.messenger import DEFAULT_LIFETIME, Messenger
from burnerkit.cli.context import HomeOpt, JsonOpt, open_messenger, relay_timeout
from burnerkit.cli.output import console, err_console, print_json, stamp
from burnerkit.cli.passphrase import ask_passphrase
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.errors import UsageError

__all__ = ["burn", "list_burners", "new", "register"]

#: Tests and the demo set this to mint vaults with a deliberately weak KDF. Never in use.
ENV_FAST_KDF = "BURNER_INSECURE_FAST_KDF"


def new(
    name: Annotated[str, typer.Argument(help="A name for the burner (a-z 0-9 _ -).")],
    relay: Annotated[
        str, typer.Option("--relay", metavar="URL", help="Relay for new queues (ws:// or wss://).")
    ] = "ws://127.0.0.1:7000",
    expires: Annotated[
        str, typer.Option("--expires", metavar="DURATION", help="Lifetime: 12h, 7d, 4w.")
    ] = "7d",
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Mint a new burner with an expiry; its vault is sealed under a passphrase."""
    lifetime = parse_duration(expires) if expires else DEFAULT_LIFETIME
    resolved = Home.resolve(home)
    kdf = None
    if os.environ.get(ENV_FAST_KDF) == "1":
        kdf = FAST_TEST_KDF
        err_console.print(
            f"warning: {ENV_FAST_KDF}=1: this vault's passphrase is cheap to guess (tests only)"
        )
    passphrase = ask_passphrase(name, new=True)
    with Messenger.create(
        resolved, name, passphrase, relay_url=relay, lifetime=lifetime, kdf=kdf, relay_timeout=relay_timeout()
    ) as messenger:
        info = messenger.info()
    if json_out:
        print_json(info.to_json())
    else:
        expiry = stamp(info.expires_at)
        console.print(f"minted burner [bold]{info.name}[/] (relay {info.relay_url}, expires {expiry} UTC)")


def list_burners(home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """List the burners in the home (no passphrase needed: only names are shown)."""
    resolved = Home.resolve(home)
    names = resolved.names()
    if json_out:
        print_json([{"name": name} for name in names])
    elif not names:
        console.print(f"no burners in {resolved.root}")
    else:
        for name in names:
            console.print(name)


def burn(
    name: Annotated[
        str | None, typer.Argument(help="The burner to burn (optional when there is one).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really burn: there is no undo.")] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Destroy a burner: delete its relay queues, crypto-shred its vault, remove its files."""
    if not yes:
        raise UsageError("burning cannot be undone: add --yes")
    resolved = Home.resolve(home)
    picked = resolved.pick(name)
    with open_messenger(home, picked, allow_expired=True) as messenger:
        report = asyncio.run(messenger.burn())
    if json_out:
        print_json(report.to_json())
    else:
        console.print(
            f"burned [bold]{report.name}[/]: vault shredded, {report.queues_deleted} relay queue(s) deleted"
            + (f", {report.queues_failed} unreachable" if report.queues_failed else "")
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("new")(new)
    app.command("list")(list_burners)
    app.command("burn")(burn)
