"""``burner new``, ``burner list``, ``burner burn``: minting, listing and destroying burners.

What burning destroys, and in which order: docs/protocol.md §15.7; the commands: docs/cli.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from burnerkit.cli.context import HomeOpt, JsonOpt, open_messenger, relay_timeout
from burnerkit.cli.duress import ask_duress_passphrase
from burnerkit.cli.output import console, err_console, print_json, remaining, spinner, stamp
from burnerkit.cli.passphrase import ENV_PASSPHRASE, ask_passphrase
from burnerkit.errors import RelayError, RelayUnavailableError, UsageError

if TYPE_CHECKING:
    from burnerkit.app.issuer import IssuerPublicKey
    from burnerkit.app.messenger import Messenger
    from burnerkit.app.views import BurnerInfo

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
    check_in: Annotated[
        str | None,
        typer.Option(
            "--check-in",
            metavar="DURATION",
            help="Dead-man switch: burn on the next start if not unlocked within this window (24h).",
        ),
    ] = None,
    issuer: Annotated[
        str | None,
        typer.Option(
            "--issuer", metavar="PUBKEY", help="Carry this issuer key (burner:ik1.…): it can order a burn."
        ),
    ] = None,
    order_address: Annotated[
        Path | None,
        typer.Option(
            "--order-address", metavar="FILE", help="With --issuer: also write the order address here."
        ),
    ] = None,
    with_duress: Annotated[
        bool,
        typer.Option("--duress", help="Also arm a duress passphrase (asked next): see 'burner duress'."),
    ] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Mint a new burner with an expiry; its vault is sealed under a passphrase.

    The relay is checked first (one PING round trip): if it does not answer, nothing is
    created. A pinned relay URL (wss://HOST:PORT#sha256=...) trusts that certificate alone.
    With --check-in, a burner not unlocked within that window burns on its next start, and
    its contacts get heartbeats that warn them when it goes silent (docs/field-guide.md).
    With --issuer, the burner gets an order queue on its relay and prints its order
    address: what the issuing office needs to order it burned (docs/protocol.md §17.9).
    With --duress, a second passphrase opens a decoy and destroys this burner (§17.11).
    """
    from burnerkit.app.checkin import check_window
    from burnerkit.app.durations import format_duration, parse_duration
    from burnerkit.app.home import Home
    from burnerkit.app.messenger import DEFAULT_LIFETIME, Messenger
    from burnerkit.crypto.passphrase import FAST_TEST_KDF

    lifetime = parse_duration(expires) if expires else DEFAULT_LIFETIME
    window = 0
    if check_in is not None:
        window = parse_duration(check_in)
        check_window(window, lifetime)  # before the passphrase is asked
    resolved = Home.resolve(home)
    kdf = None
    if os.environ.get(ENV_FAST_KDF) == "1":
        kdf = FAST_TEST_KDF
        err_console.print(
            f"warning: {ENV_FAST_KDF}=1: this vault's passphrase is cheap to guess (tests only)"
        )
    Messenger.check_new(resolved, name, relay, insecure=insecure)
    issuer_key = _issuer_key(issuer, order_address, offline=offline)
    passphrase = ask_passphrase(name, new=True)
    duress_passphrase = ask_duress_passphrase(name) if with_duress else None
    if resolved.count():  # a name is unique among the burners one passphrase opens
        with spinner("checking the name against the burners this passphrase opens…", quiet=json_out):
            Messenger.check_new(resolved, name, relay, insecure=insecure, passphrase=passphrase)
    if not offline:
        with spinner(f"checking the relay at {relay.partition('#')[0]}…", quiet=json_out):
            _check_relay(relay, insecure=insecure)
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
            name_checked=True,
            check_in=window,
        ) as messenger,
    ):
        if duress_passphrase is not None:
            messenger.arm_duress(duress_passphrase)
        info = messenger.info()
        address = None if issuer_key is None else _carry_issuer(messenger, issuer_key, order_address)
    if json_out:
        print_json(info.to_json() | ({} if address is None else {"order_address": address}))
    else:
        expiry = stamp(info.expires_at)
        switch = f", burns unless unlocked every {format_duration(info.check_in)}" if info.check_in else ""
        console.print(
            f"minted burner [bold]{info.name}[/] (relay {info.relay_url}, expires {expiry}{switch})"
        )
        if address is not None:
            console.print("order address (for the issuing office's 'burner issuer burn --to'):", markup=False)
            console.print(address, markup=False)


def _issuer_key(text: str | None, order_address: Path | None, *, offline: bool) -> IssuerPublicKey | None:
    """The issuer key of ``--issuer``, checked before anything is minted."""
    if text is None:
        if order_address is not None:
            raise UsageError("--order-address needs --issuer")
        return None
    if offline:
        raise UsageError("--issuer needs the relay (the order queue is made there): drop --offline")
    if order_address is not None and order_address.exists():
        raise UsageError(f"{order_address} exists already: choose another file")
    from burnerkit.app.issuer import IssuerPublicKey

    return IssuerPublicKey.from_text(text)


def _carry_issuer(messenger: Messenger, issuer: IssuerPublicKey, out: Path | None) -> str:
    """Make the burner's order queue; the order address as text, written to ``out`` too."""
    import asyncio

    from burnerkit.cli.issuer import write_new_file

    try:
        text = asyncio.run(messenger.carry_issuer(issuer)).to_text()
    except RelayError as exc:
        raise type(exc)(
            f"{exc}: burner {messenger.name!r} was minted without its issuer key; burn it and mint it again"
        ) from exc
    if out is not None:
        write_new_file(out, (text + "\n").encode())
    return text


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
        bool, typer.Option("--unlock", help="Ask a passphrase and list the burners it opens.")
    ] = False,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Count the home's burners; with a passphrase, list those it opens, with their expiry.

    Nothing on disk names a burner (docs/protocol.md §15.1): a burner's name and expiry
    are sealed in its vault. They are shown for the burners $BURNER_PASSPHRASE opens, or
    with --unlock, which asks for a passphrase; each burner of the home costs one
    derivation of it. Without a passphrase, only how many burners the home holds.
    """
    from burnerkit.app.home import Home

    resolved = Home.resolve(home)
    opened: list[BurnerInfo] = []
    if resolved.count() and (unlock or ENV_PASSPHRASE in os.environ):
        from burnerkit.app.messenger import Messenger

        passphrase = ask_passphrase(None)
        with spinner("unlocking…", quiet=json_out):
            opened = Messenger.survey(resolved, passphrase, relay_timeout=relay_timeout(), detach_alerts=True)
        sealed = resolved.count() - len(opened)  # after the survey: it finishes interrupted burns
        asked = True
    else:
        sealed = resolved.count()
        asked = False
    if json_out:
        # One entry per burner of the home, as before; a name no passphrase opened is null.
        entries = [{"name": info.name, "expires_at": info.expires_at} for info in opened]
        print_json(entries + [{"name": None, "expires_at": None} for _ in range(sealed)])
        return
    if not opened and not sealed:
        console.print(f"no burners in {resolved.root}", markup=False)
        return
    now = time.time()
    for info in opened:
        when = f"{stamp(info.expires_at)} ({remaining(info.expires_at, now)})"
        console.print(f"{info.name}  expires {when}", markup=False)
    if sealed and asked:
        console.print(f"{_burners(sealed)} that this passphrase does not open", markup=False)
    elif sealed:
        console.print(
            f"{_burners(sealed)} in {resolved.root}; names are sealed: "
            "add --unlock (or set $BURNER_PASSPHRASE) to list those a passphrase opens",
            markup=False,
        )


def _burners(count: int) -> str:
    return f"{count} burner" + ("" if count == 1 else "s")


def burn(
    name: Annotated[
        str | None, typer.Argument(help="The burner to burn (optional when there is one).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Really burn: there is no undo.")] = False,
    erase_conversations: Annotated[
        bool,
        typer.Option(
            "--erase-conversations",
            help="Ask every contact to delete its conversation with this burner too (their app does it).",
        ),
    ] = False,
    report_to: Annotated[
        Path | None,
        typer.Option(
            "--report-to", metavar="FILE", help="First write a debrief report sealed to the issuer."
        ),
    ] = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Destroy a burner: its key, then a signed burn notice to each contact, its relay queues, its files.

    Killed half way, the next 'burner' command that unlocks finishes it (docs/protocol.md §17.7).
    With --report-to, a burner that carries an issuer key first writes its anomalies (no
    message content) to FILE, sealed to the issuer ('burner issuer open-report').
    """
    import asyncio

    if not yes:
        raise UsageError("burning cannot be undone: add --yes")
    if report_to is not None and report_to.exists():
        raise UsageError(f"{report_to} exists already: choose another file")
    with open_messenger(home, name, allow_expired=True, quiet=json_out) as messenger:
        if report_to is not None:
            from burnerkit.cli.issuer import write_new_file

            write_new_file(report_to, messenger.seal_report())
        with spinner(f"burning {messenger.name}…", quiet=json_out):
            report = asyncio.run(messenger.burn(erase_conversations=erase_conversations))
    if json_out:
        print_json(report.to_json())
    else:
        console.print(
            f"burned [bold]{report.name}[/]: key destroyed, {report.notices_sent} contact(s) told, "
            f"{report.queues_deleted} relay queue(s) deleted, files shredded"
            + (f"; {report.notices_failed} notice(s) undelivered" if report.notices_failed else "")
            + (f"; {report.queues_failed} queue(s) unreachable" if report.queues_failed else "")
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("new")(new)
    app.command("list")(list_burners)
    app.command("burn")(burn)
