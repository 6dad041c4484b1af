"""``burner invite``, ``accept``, ``pair``, ``verify``, ``alerts``, ``contacts``: making, trusting contacts.

Links are docs/protocol.md §17.2, pairing by code §16, the safety code §4.2, alerts §17.6;
the commands: docs/cli.md.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer

from burnerkit.cli.context import BurnerOpt, HomeOpt, JsonOpt, confirm, open_messenger
from burnerkit.cli.output import (
    alert_json,
    alert_line,
    console,
    err_console,
    print_json,
    print_qr,
    spinner,
    stamp,
)
from burnerkit.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from burnerkit.app.messenger import Messenger

__all__ = [
    "accept",
    "alerts",
    "contacts",
    "contacts_app",
    "invite",
    "pair",
    "register",
    "remove",
    "rename",
    "verify",
]

AliasOpt = Annotated[str | None, typer.Option("--name", metavar="ALIAS", help="What to call the contact.")]
ReplaceOpt = Annotated[
    bool, typer.Option("--replace", help="Re-pair an existing contact of that name without asking.")
]


def _ask_before_replacing(messenger: Messenger, alias: str | None, *, replace: bool) -> None:
    """Ask before a pairing replaces the contact called ``alias`` (its key, its queues).

    Raises:
        UsageError: no terminal to ask on, and no ``--replace``.
    """
    if alias is None or replace:
        return
    try:
        messenger.contact(alias)
    except NotFoundError:
        return
    confirm(
        f"{alias} is already a contact; replace it?",
        refusal=f"{alias} is already a contact: pass --replace to replace it (no terminal to ask on)",
    )


def invite(
    alias: Annotated[
        str | None, typer.Option("--for", metavar="ALIAS", help="What to call whoever accepts.")
    ] = None,
    long: Annotated[
        bool,
        typer.Option(
            "--long",
            help="Hand out the long link: the invitation itself (about 2 KB), nothing left on the relay.",
        ),
    ] = False,
    no_qr: Annotated[bool, typer.Option("--no-qr", help="Print only the link.")] = False,
    qr: Annotated[
        bool, typer.Option("--qr", help="Draw a --long link's QR code too (it is over 140 columns wide).")
    ] = False,
    replace: ReplaceOpt = False,
    burner: BurnerOpt = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Make a one-time invitation: a short link and its QR code; hand it over, then run 'burner inbox'.

    The short link fetches the invitation from your relay, once; --long prints the
    invitation itself instead.
    """
    import asyncio

    with open_messenger(home, burner, quiet=json_out) as messenger:
        _ask_before_replacing(messenger, alias, replace=replace)
        with spinner(f"connecting to {messenger.relay_url}…", quiet=json_out):
            view = asyncio.run(messenger.invite(alias, short=not long))
    if json_out:
        print_json(view.to_json())
        return
    # A long link's code does not fit a terminal: drawn only when asked for.
    if qr or not (no_qr or long):
        print_qr(view.link)
    console.print(view.link, markup=False)
    err_console.print(
        f"one-time invitation for {view.alias!r}, valid until {stamp(view.expires_at)}; "
        "whoever accepts it becomes that contact once you run 'burner inbox'"
    )


def accept(
    link: Annotated[str, typer.Argument(help="The burner: invitation link, or - to read it from stdin.")],
    alias: Annotated[str, typer.Option("--name", metavar="ALIAS", help="What to call the inviter.")],
    replace: ReplaceOpt = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Accept a link whose relay is ws:// on another machine.")
    ] = False,
    burner: BurnerOpt = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Accept an invitation link: open the session and greet the inviter."""
    import asyncio

    if link == "-":
        # A link pasted into stdin stays out of the shell's history, where someone else
        # could find it and accept it first.
        link = sys.stdin.read()
    with open_messenger(home, burner, quiet=json_out) as messenger:
        _ask_before_replacing(messenger, alias, replace=replace)
        with spinner(f"connecting to {messenger.relay_url}…", quiet=json_out):
            view = asyncio.run(messenger.accept(link, alias, insecure=insecure))
    if json_out:
        print_json(view.to_json())
    else:
        console.print(f"paired with [bold]{view.alias}[/]; safety code (compare it in person or by voice):")
        console.print(f"  {view.safety_code}")


def pair(
    code: Annotated[
        str | None, typer.Argument(help="The code the other side read out; omit to make one.")
    ] = None,
    alias: Annotated[
        str | None, typer.Option("--name", metavar="ALIAS", help="What to call the contact.")
    ] = None,
    relay: Annotated[
        str | None, typer.Option("--relay", metavar="URL", help="Meet on this relay [default: the burner's].")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", metavar="SECONDS", help="How long to wait.")] = 600.0,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a ws:// --relay (or peer relay) on another machine.")
    ] = False,
    words: Annotated[
        int,
        typer.Option(
            "--words", min=2, max=3, help="Words in the code made: 2, or 3 to make guessing 256x harder."
        ),
    ] = 2,
    replace: ReplaceOpt = False,
    burner: BurnerOpt = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Pair by a short code read aloud: without CODE make one and wait; with CODE join."""
    import asyncio

    if code is not None and words != 2:
        # The joining side takes the code as it comes, 2 or 3 words.
        raise UsageError("--words is for making a code; the code you were told works as it is")

    def show_code(text: str) -> None:
        if json_out:
            print_json({"code": text})
        else:
            console.print(f"code: [bold]{text}[/]  (read it to the other side; it works once)")

    with open_messenger(home, burner, quiet=json_out) as messenger:
        _ask_before_replacing(messenger, alias if code is None else alias or "contact", replace=replace)
        if code is None:
            view = asyncio.run(
                messenger.pair_offer(
                    alias, show_code, timeout=timeout, words=words, relay_url=relay, insecure=insecure
                )
            )
        else:
            view = asyncio.run(
                messenger.pair_join(
                    code, alias or "contact", relay_url=relay, timeout=timeout, insecure=insecure
                )
            )
    if json_out:
        print_json(view.to_json())
    else:
        console.print(f"paired with [bold]{view.alias}[/] (authenticated by the code); safety code:")
        console.print(f"  {view.safety_code}")


class _GroupOptions(NamedTuple):
    burner: str | None
    home: str | None
    json_out: bool


def _with_group_options(
    ctx: typer.Context, burner: str | None, home: str | None, json_out: bool
) -> _GroupOptions:
    group = ctx.obj if isinstance(ctx.obj, _GroupOptions) else _GroupOptions(None, None, False)
    return _GroupOptions(burner or group.burner, home or group.home, json_out or group.json_out)


contacts_app = typer.Typer(
    help="List contacts (the default), remove or rename one.",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
)


@contacts_app.callback()
def contacts(
    ctx: typer.Context, burner: BurnerOpt = None, home: HomeOpt = None, json_out: JsonOpt = False
) -> None:
    """List contacts, their relay and whether they are verified; or remove or rename one."""
    if ctx.invoked_subcommand is not None:
        # Given before the subcommand (burner contacts -b work remove bob), they count for it.
        ctx.obj = _GroupOptions(burner, home, json_out)
        return
    with open_messenger(home, burner, quiet=json_out) as messenger:
        views = messenger.contacts()
    if json_out:
        print_json([view.to_json() for view in views])
        return
    if not views:
        console.print("no contacts yet: 'burner invite', 'burner accept LINK' or 'burner pair'")
    for view in views:
        trust = "KEY CHANGED" if view.key_changed else ("verified" if view.verified else "unverified")
        if view.burned:
            trust = "BURNED"
        timer = f", disappearing after {view.timer}s" if view.timer else ""
        read = ", burn-on-read" if view.burn_on_read else ""
        alert = f"  ALERT: {', '.join(view.alerts)}" if view.alerts else ""
        if view.silent_since:  # past its dead-man window (docs/protocol.md §17.8)
            alert += f"  SILENT since {stamp(view.silent_since)}"
        console.print(f"{view.alias}  [{trust}]{alert}  via {view.relay_url}{timer}{read}", markup=False)


def alerts(
    alias: Annotated[str | None, typer.Argument(help="Only this contact.")] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Clear the contact's alerts (after you dealt with them).")
    ] = False,
    burner: BurnerOpt = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show the alerts (clones, replays, forgeries, doubtful identities) and what caused them."""
    if clear and alias is None:
        raise UsageError("say whose alerts to clear: 'burner alerts --clear NAME'")
    with open_messenger(home, burner, quiet=json_out) as messenger:
        if clear:
            assert alias is not None
            messenger.clear_alerts(alias)
        views = [messenger.contact(alias)] if alias is not None else messenger.contacts()
        events = [e for e in messenger.events() if e.alert and (alias is None or e.alias == alias)]
    on_alert = [view for view in views if view.alerts]
    if json_out:
        print_json([alert_json(view) for view in on_alert] + [e.to_json() for e in events])
        return
    if clear:
        console.print(f"alerts of {alias} cleared (the events stay for the debrief)", markup=False)
        return
    if not on_alert:
        console.print("no alerts")
    for view in on_alert:
        err_console.print(alert_line(view), style="bold red", markup=False)
    for e in events:
        console.print(f"[{stamp(e.at)}] {e.alias or 'relay'}: {e.kind}: {e.detail}", markup=False)


@contacts_app.command("remove")
def remove(
    ctx: typer.Context,
    alias: Annotated[str, typer.Argument(help="The contact.")],
    yes: Annotated[bool, typer.Option("--yes", help="Remove without asking.")] = False,
    burner: BurnerOpt = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete a contact, its messages and unsent messages, and its queue on our relay.

    Their messages to us are refused by the relay from then on. There is no undo:
    asks first, unless --yes.
    """
    import asyncio

    burner, home, json_out = _with_group_options(ctx, burner, home, json_out)
    with open_messenger(home, burner, quiet=json_out) as messenger:
        count = len(messenger.history(alias))
        if not yes:
            confirm(
                f"remove {alias} and the {count} message(s) kept with them? There is no undo.",
                refusal=f"removing {alias} cannot be undone: pass --yes (no terminal to ask on)",
            )
        with spinner(f"connecting to {messenger.relay_url}…", quiet=json_out):
            report = asyncio.run(messenger.remove_contact(alias))
    if json_out:
        print_json(report.to_json())
        return
    later = "" if report.queue_deleted else " (our relay is unreachable: a later run deletes their queue)"
    console.print(f"removed {alias}: {report.messages} message(s) and {report.unsent} unsent deleted{later}")


@contacts_app.command("rename")
def rename(
    ctx: typer.Context,
    alias: Annotated[str, typer.Argument(help="The contact.")],
    new_alias: Annotated[str, typer.Argument(metavar="NEW", help="Its new name (a-z 0-9 _ -).")],
    burner: BurnerOpt = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Call a contact by another name; its keys, messages and verification stay."""
    burner, home, json_out = _with_group_options(ctx, burner, home, json_out)
    with open_messenger(home, burner, quiet=json_out) as messenger:
        view = messenger.rename_contact(alias, new_alias)
    if json_out:
        print_json(view.to_json())
    else:
        console.print(f"{alias} is now called {view.alias}", markup=False)


def verify(
    alias: Annotated[str, typer.Argument(help="The contact.")],
    code: Annotated[
        str | None, typer.Option("--code", metavar="CODE", help="The safety code the contact read out.")
    ] = None,
    burner: BurnerOpt = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a contact's safety code; with --code, check it and mark the contact verified."""
    with open_messenger(home, burner, quiet=json_out) as messenger:
        result = messenger.verify(alias, code)
    if json_out:
        print_json(result.to_json())
    elif code is None:
        console.print(
            f"safety code with {alias}: compare it with theirs, then 'burner verify {alias} --code ...'"
        )
        console.print(f"  {result.safety_code}")
    else:
        console.print(f"{alias} is verified: the safety codes match")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("invite")(invite)
    app.command("accept")(accept)
    app.command("pair")(pair)
    app.add_typer(contacts_app, name="contacts")
    app.command("verify")(verify)
    app.command("alerts")(alerts)
