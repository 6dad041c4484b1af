"""``burner new``, ``burner list``, ``burner burn``: minting, listing and destroying burners.

What burning destroys, and in which order: docs/protocol.md §15.7; the commands: docs/cli.md.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Annotated

import typer

from burnerkit.cli.context import HomeOpt, JsonOpt, open_messenger, relay_timeout
from burnerkit.cli.output import console, err_console, print_json, remaining, spinner, stamp
from burnerkit.cli.passphrase import ENV_PASSPHRASE, ask_passphrase
from burnerkit.errors import NotFoundError, RelayError, RelayUnavailableError, UsageError, VaultError

if TYPE_CHECKING:
    from burnerkit.app.home import Home

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
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a ws:// relay on another machine (unencrypted).")
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Mint without checking that the relay answers.")
    ] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Mint a new burner with an expiry; its vault is sealed under a passphrase.

    The relay is checked first (one PING round trip): if it does not answer, nothing is
    created. A pinned relay URL (wss://HOST:PORT#sha256=...) trusts that certificate alone.
    """
    from burnerkit.app.durations import parse_duration
    from burnerkit.app.home import Home
    from burnerkit.app.messenger import DEFAULT_LIFETIME, Messenger
    from burnerkit.crypto.passphrase import FAST_TEST_KDF

    lifetime = parse_duration(expires) if expires else DEFAULT_LIFETIME
    resolved = Home.resolve(home)
    kdf = None
    if os.environ.get(ENV_FAST_KDF) == "1":
        kdf = FAST_TEST_KDF
        err_console.print(
            f"warning: {ENV_FAST_KDF}=1: this vault's passphrase is cheap to guess (tests only)"
        )
    Messenger.check_new(resolved, name, relay, insecure=insecure)
    if not offline:
        with spinner(f"checking the relay at {relay.partition('#')[0]}…", quiet=json_out):
            _check_relay(relay, insecure=insecure)
    passphrase = ask_passphrase(name, new=True)
    with (
        spinner(f"sealing {name}'s vault…", quiet=json_out),
        Messenger.create(
            resolved,
            name,
            passphrase,
            relay_url=relay,
            lifetime=lifetime,
            kdf=kdf,
            relay_timeout=relay_timeout(),
            insecure=insecure,
        ) as messenger,
    ):
        info = messenger.info()
    if json_out:
        print_json(info.to_json())
    else:
        expiry = stamp(info.expires_at)
        console.print(f"minted burner [bold]{info.name}[/] (relay {info.relay_url}, expires {expiry})")


def _check_relay(url: str, *, insecure: bool) -> None:
    """PING the relay before anything is minted; say plainly what failed and what to do.

    Raises:
        UsageError: the URL is not one a burner can use.
        RelayUnavailableError: the relay did not answer (the cause, then the remedies).
    """
    import asyncio

    from burnerkit.app.messenger import Messenger

    try:
        asyncio.run(Messenger.check_relay(url, insecure=insecure, timeout=relay_timeout()))
    except RelayError as exc:
        address = url.partition("#")[0]
        if isinstance(exc, RelayUnavailableError) and exc.cause is not None:
            cause = exc.cause
        else:  # it connected, then did not answer the PING (or refused it)
            cause = f"no answer to a ping: {exc}"
        raise RelayUnavailableError(
            f"relay unreachable: {address} ({cause}). Nothing was created: is the relay running, and "
            "is the URL right? To mint the burner without this check, add --offline",
            url=address,
            cause=cause,
        ) from exc


def list_burners(
    unlock: Annotated[
        bool, typer.Option("--unlock", help="Ask each burner's passphrase to show its expiry.")
    ] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the burners in the home, with their expiry when they can be unlocked.

    Without a passphrase only the names can be read: a burner's expiry is sealed in its
    vault. It is shown when $BURNER_PASSPHRASE is set (for the burners it unlocks) or
    with --unlock, which asks for each burner's passphrase.
    """
    from burnerkit.app.home import Home

    resolved = Home.resolve(home)
    names = resolved.names()
    expiries: dict[str, int | None] = {}
    if unlock or ENV_PASSPHRASE in os.environ:
        for name in list(names):
            try:
                expiries[name] = _expiry(resolved, name)
            except NotFoundError:  # an interrupted burn, which opening it just finished
                names.remove(name)
    if json_out:
        print_json([{"name": name, "expires_at": expiries.get(name)} for name in names])
    elif not names:
        console.print(f"no burners in {resolved.root}")
    else:
        now = time.time()
        for name in names:
            expires_at = expiries.get(name)
            if name not in expiries:
                console.print(name, markup=False)
            elif expires_at is None:
                console.print(f"{name}  (expiry unknown: the passphrase did not unlock it)", markup=False)
            else:
                when = f"{stamp(expires_at)} ({remaining(expires_at, now)})"
                console.print(f"{name}  expires {when}", markup=False)


def _expiry(home: Home, name: str) -> int | None:
    """When burner ``name`` expires, or None if its passphrase did not unlock it.

    Raises:
        NotFoundError: it was being burned (opening it finished the burn).
        UsageError: no terminal to ask for its passphrase on.
    """
    from burnerkit.app.messenger import Messenger

    passphrase = ask_passphrase(name)
    try:
        with (
            spinner(f"unlocking {name}…"),
            Messenger.open(home, name, passphrase, allow_expired=True) as messenger,
        ):
            return messenger.info().expires_at
    except VaultError:  # another burner's passphrase, or a damaged vault: only the name is shown
        return None


def burn(
    name: Annotated[
        str | None, typer.Argument(help="The burner to burn (optional when there is one).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really burn: there is no undo.")] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Destroy a burner: delete its relay queues, crypto-shred its vault, remove its files."""
    import asyncio

    from burnerkit.app.home import Home

    if not yes:
        raise UsageError("burning cannot be undone: add --yes")
    resolved = Home.resolve(home)
    picked = resolved.pick(name)
    with (
        open_messenger(home, picked, allow_expired=True, quiet=json_out) as messenger,
        spinner(f"deleting {picked}'s relay queues…", quiet=json_out),
    ):
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
