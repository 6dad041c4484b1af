"""``burner send``, ``burner inbox``, ``burner history``: the conversation itself.

``inbox`` shows each message once and exits 13 while a contact is on alert, so a script
cannot miss one (docs/protocol.md §17.6; docs/cli.md).
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Annotated, Final

import typer

from burnerkit.cli.context import BurnerOpt, HomeOpt, JsonOpt, open_messenger
from burnerkit.cli.output import alert_json, alert_line, console, err_console, print_json, spinner, stamp
from burnerkit.errors import UsageError

if TYPE_CHECKING:
    from burnerkit.app.views import ContactView, InboxResult

__all__ = ["history", "inbox", "register", "send"]


def _disappear(text: str | None) -> tuple[int | None, bool | None]:
    """``--disappear`` as (timer seconds, burn on read): a duration, ``read`` or ``off``."""
    from burnerkit.app.durations import parse_duration

    if text is None:
        return None, None
    if text.lower() == "off":
        return 0, False
    if text.lower() == "read":
        return 0, True
    return parse_duration(text), False


def send(
    alias: Annotated[str, typer.Argument(help="The contact.")],
    words: Annotated[
        list[str],
        typer.Argument(
            metavar="WORDS",
            help="The message: the rest of the line, joined by spaces; or - to read it from stdin "
            "(keeps it out of shell history).",
        ),
    ],
    disappear: Annotated[
        str | None,
        typer.Option(
            "--disappear",
            metavar="WHEN",
            help="Conversation timer from now on: 30s..4w, 'read' (burn on read) or 'off'.",
        ),
    ] = None,
    burner: BurnerOpt = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Encrypt and send a message; it waits in the outbox if the relay is unreachable.

    The words after ALIAS are the message (burner send bob see you at 6). Options may
    come anywhere on the line (burner send bob hi --json); after -- every word is text,
    even one that starts with - (burner send bob -- -5 degrees here).
    """
    import asyncio

    timer, burn_on_read = _disappear(disappear)
    text = _read_message() if words == ["-"] else " ".join(words)
    with open_messenger(home, burner, quiet=json_out) as messenger:
        relay_url = messenger.contact(alias).relay_url
        with spinner(f"connecting to {relay_url}…", quiet=json_out):
            receipt = asyncio.run(messenger.send(alias, text, timer=timer, burn_on_read=burn_on_read))
    if json_out:
        print_json(receipt.to_json())
    elif receipt.status == "delivered":
        console.print(f"sent to {alias} (#{receipt.seq})", markup=False)
    else:
        where = f": {receipt.unreachable}" if receipt.unreachable else ""
        err_console.print(
            f"{alias}'s relay is unreachable{where}; message #{receipt.seq} waits in the outbox", markup=False
        )


def _read_message() -> str:
    """The message from stdin: typed (ended by Ctrl-D) or piped; one final newline dropped."""
    if sys.stdin.isatty():
        err_console.print("message (end with Ctrl-D on a line of its own):")
    text = sys.stdin.read()
    text = text.removesuffix("\n")
    if not text:
        raise UsageError("the message is empty")
    return text


#: ``burner inbox`` printed an alert (docs: src/burnerkit/cli/errors.py).
EXIT_ALERT: Final = 13


def inbox(
    wait: Annotated[
        float, typer.Option("--wait", metavar="SECONDS", help="Wait up to this long for a first message.")
    ] = 0.0,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep receiving and printing until Ctrl-C.")
    ] = False,
    burner: BurnerOpt = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Fetch, decrypt, store and acknowledge new messages; each is shown once.

    Every run also shows the contacts on alert (a clone, a replay, a forgery, a doubtful
    identity) until the alert is cleared, and then exits 13.
    """
    import asyncio

    alerted = False
    with open_messenger(home, burner, quiet=json_out) as messenger:
        if follow:
            # One JSON document per line in --follow mode: a stream, not one list.
            alerted = _show_on_alert(messenger.contacts(), json_lines=json_out)
            show = _show_json_lines if json_out else _show

            def shown(result: InboxResult) -> None:
                nonlocal alerted
                alerted = alerted or bool(result.alerts)
                show(result)

            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(messenger.follow(shown))
        else:
            with spinner(f"connecting to {messenger.relay_url}…", quiet=json_out):
                result = asyncio.run(messenger.receive(wait=max(0.0, wait)))
            on_alert = [view for view in messenger.contacts() if view.alerts]
            alerted = bool(on_alert)
            if json_out:
                # Events and contacts on alert next to messages, each tagged with its "type".
                print_json(
                    [m.to_json() for m in result.messages]
                    + [e.to_json() for e in result.events]
                    + [alert_json(view) for view in on_alert]
                )
                _warn(result)
            else:
                _show(result, say_if_empty=True)
            _show_on_alert(on_alert, json_lines=False)
    if alerted:
        raise typer.Exit(EXIT_ALERT)


def _show_on_alert(views: list[ContactView], *, json_lines: bool) -> bool:
    """Say which contacts are on alert (on stderr; as JSON lines too with ``json_lines``)."""
    on_alert = [view for view in views if view.alerts]
    for view in on_alert:
        if json_lines:
            print_json(alert_json(view))
        err_console.print(alert_line(view), style="bold red", markup=False)
    return bool(on_alert)


def _show_json_lines(result: InboxResult) -> None:
    for m in result.messages:
        print_json(m.to_json())
    for e in result.events:
        print_json(e.to_json())
    _warn(result)


def _show(result: InboxResult, *, say_if_empty: bool = False) -> None:
    for name in result.new_contacts:
        console.print(f"new contact [bold]{name}[/] accepted your invitation")
    if say_if_empty and not result.messages:
        console.print("no new messages")
    for m in result.messages:
        tags = " (burned on read)" if m.burn_on_read else ""
        console.print(f"[{stamp(m.sent_at / 1000)}] {m.alias} #{m.seq}: {m.text}{tags}", markup=False)
    _warn(result)


def _warn(result: InboxResult) -> None:
    for event in result.events:
        who = event.alias or "relay"
        if event.alert:
            err_console.print(f"ALERT: {who}: {event.kind}: {event.detail}", style="bold red", markup=False)
        elif event.kind == "held-key":  # not a warning: a contact trusted us with its key (§17.12)
            console.print(f"{who} {event.detail}", markup=False)
        else:
            err_console.print(f"warning: {who}: {event.kind}: {event.detail}", markup=False)
    for url in result.unreachable:
        err_console.print(f"warning: relay unreachable: {url}", markup=False)


def history(
    alias: Annotated[str, typer.Argument(help="The contact.")],
    burner: BurnerOpt = None,
    home: HomeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show the stored conversation with a contact, oldest first."""
    with open_messenger(home, burner, quiet=json_out) as messenger:
        entries = messenger.history(alias)
        view = messenger.contact(alias)
    if json_out:
        print_json([e.to_json() for e in entries] + ([alert_json(view)] if view.alerts else []))
        return
    if view.alerts:
        err_console.print(alert_line(view), style="bold red", markup=False)
    for e in entries:
        who = "me" if e.outgoing else alias
        text = e.text if e.text or not e.burn_on_read else "(burn-on-read message)"
        pending = "" if e.delivered or not e.outgoing else " (in outbox)"
        console.print(f"[{stamp(e.sent_at / 1000)}] {who} #{e.seq}: {text}{pending}", markup=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("send")(send)
    app.command("inbox")(inbox)
    app.command("history")(history)
