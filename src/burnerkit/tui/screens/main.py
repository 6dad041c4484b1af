"""The main screen: contacts, the open conversation, the composer, alerts and status.

It owns the live parts: the receive loop (a worker running :func:`receive_forever`,
whose news comes up as messages), a periodic outbox flush (a message queued while a
relay was down turns delivered when a later flush sends it) and a clock tick for the
countdowns. Every refresh reads what it shows from the Messenger again.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, ListView, Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from burnerkit.app.durations import format_duration
from burnerkit.app.views import ContactView, EventView, InboxMessage
from burnerkit.errors import BurnerError, BurnOrderedError
from burnerkit.tui.live import LinkChanged, LiveStopped, NewsArrived, receive_forever, stop_workers
from burnerkit.tui.screens.alerts import AlertItem, AlertsScreen
from burnerkit.tui.screens.burn import BurnScreen
from burnerkit.tui.screens.debrief import DebriefScreen
from burnerkit.tui.screens.invite import AcceptScreen, InviteScreen
from burnerkit.tui.screens.pairing import JoinCodeScreen, OfferCodeScreen
from burnerkit.tui.screens.timer import TimerScreen
from burnerkit.tui.screens.verify import VerifyScreen
from burnerkit.tui.widgets.contacts import ContactItem, ContactList, contact_label
from burnerkit.tui.widgets.conversation import Conversation, render_lines
from burnerkit.tui.widgets.status import StatusLine

if TYPE_CHECKING:
    from burnerkit.tui.app import ChatApp

__all__ = ["Contacts", "MainScreen"]


class Contacts(ContactList):
    """The contact list, where ``?`` opens the help (the message line takes a typed ``?``)."""

    BINDINGS = [Binding("question_mark", "app.help", "Help", show=False)]  # noqa: RUF012


class MainScreen(Screen[None]):
    """Contacts on the left, the conversation on the right, the status line below."""

    app: ChatApp
    BINDINGS = [  # noqa: RUF012
        Binding("f1", "app.help", "Help"),
        Binding("f2", "invite", "Invite"),
        Binding("f3", "accept", "Accept"),
        Binding("f4", "offer_code", "Code"),
        Binding("f5", "join_code", "Join"),
        Binding("f6", "verify", "Verify"),
        Binding("f7", "timer", "Timer"),
        Binding("f8", "alerts", "Alerts"),
        Binding("f9", "burn", "Burn"),
        Binding("f10", "debrief", "Debrief"),
    ]

    def __init__(self) -> None:
        super().__init__()
        #: The open conversation's alias.
        self.current: str | None = None
        #: Messages received while their conversation was not open, by alias.
        self.unread: dict[str, int] = {}
        #: Burn-on-read messages received: the inbox handed us their only copy.
        self.ephemeral: dict[str, list[InboxMessage]] = {}
        #: Our relay's connection: None until the first report.
        self.link: bool | None = None
        self.link_detail = ""
        #: Notices dismissed by the user: (alias, kind) -> when; a later event shows again.
        self.dismissed: dict[tuple[str, str], int] = {}
        self._live: Worker[None] | None = None
        self._flushing: Worker[None] | None = None
        #: Where our queues are (the status line's relay), as of the last redraw.
        self._our_relay = ""

    def compose(self) -> ComposeResult:  # noqa: D102
        yield Header(icon="")
        yield Static("", id="banner")
        with Horizontal(id="body"):
            with Vertical(id="side"):
                yield Label("Contacts", classes="pane-title")
                yield Contacts(id="contacts")
                yield Static("groups come later", id="groups-note")
            with Vertical(id="chat"):
                yield Static("", id="chat-title")
                yield Conversation(id="conversation")
                yield Input(placeholder="pick a contact (F2 invites someone)", id="composer")
        yield StatusLine(id="status")
        yield Footer()

    async def on_mount(self) -> None:  # noqa: D102
        app = self.app
        messenger = app.messenger_or_fail
        self.sub_title = messenger.name
        self._our_relay = messenger.relay_url
        messenger.watch_links(self._link_report)
        await self.refresh_view()
        self.resume_live()
        self.set_interval(app.tick_every, self._tick)
        self.set_interval(app.flush_every, self._flush)
        if messenger.contacts():
            self.query_one("#composer", Input).focus()
        else:
            self.query_one("#contacts", Contacts).focus()

    async def on_unmount(self) -> None:  # noqa: D102
        await stop_workers(self)

    # -- the live parts ------------------------------------------------------------------------

    def _link_report(self, url: str, up: bool) -> None:
        # Called from inside a relay client: no vault read here (it may be mid-burn).
        if url == self._our_relay:
            self.post_message(LinkChanged(url, up))

    def resume_live(self) -> None:
        """(Re)start the receive loop."""
        if self._live is None or self._live.is_finished:
            self._live = self.run_worker(
                receive_forever(self.app.messenger_or_fail, self.post_message), group="live", exclusive=True
            )

    async def pause_live(self) -> None:
        """Stop the receive loop and wait until its relay connections are closed."""
        worker, self._live = self._live, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await worker.wait()

    def _flush(self) -> None:
        # One flush at a time, never cancelled half way: a tick that finds one running skips.
        # The method, not a coroutine made now: a worker that never starts (the app is
        # closing) then leaves no coroutine unawaited behind.
        if self._flushing is None or self._flushing.is_finished:
            self._flushing = self.run_worker(self._flush_outbox, group="flush")

    async def _flush_outbox(self) -> None:
        messenger = self.app.messenger
        if messenger is None or messenger.gone:
            return  # burned: the app is on its way out
        try:
            messenger.forget_expired()
            if messenger.outbox_size():
                await messenger.flush_outbox()
        except BurnerError as exc:
            self.app.notify(str(exc), severity="error")
        await self.refresh_view()

    async def _tick(self) -> None:
        await self.refresh_view()

    @on(NewsArrived)
    async def _news(self, news: NewsArrived) -> None:
        result = news.result
        for message in result.messages:
            if message.alias != self.current or not self.is_current:
                self.unread[message.alias] = self.unread.get(message.alias, 0) + 1
            if message.burn_on_read:
                self.ephemeral.setdefault(message.alias, []).append(message)
        for alias in result.new_contacts:
            self.app.notify(f"new contact {alias}: they accepted your invitation")
        for event in result.alerts:
            self.app.notify(
                f"ALERT on {event.alias or 'this burner'}: {event.kind}", severity="error", timeout=10
            )
        for event in result.events:
            if event.kind == "silent":
                self.app.notify(f"{event.alias} is silent: {event.detail}", severity="warning", timeout=30)
        await self.refresh_view()

    @on(LinkChanged)
    def _link(self, change: LinkChanged) -> None:
        self.link = change.up
        self.link_detail = "" if change.up else change.detail
        self._show_status()

    @on(LiveStopped)
    def _stopped(self, stopped: LiveStopped) -> None:
        if isinstance(stopped.error, BurnOrderedError):  # the burner is gone (§17.9)
            self.app.burned(str(stopped.error))
            return
        self.link = False
        self.link_detail = str(stopped.error)
        self.app.notify(str(stopped.error), severity="error", timeout=30)
        self._show_status()

    # -- what is shown --------------------------------------------------------------------------

    def notices(self, events: list[EventView]) -> dict[tuple[str, str], int]:
        """Alerts no contact carries, not dismissed: (alias, kind) -> when last seen.

        A message refused because the peer's queue is gone (they burned), and alerts about
        this burner itself rather than a contact (another device on one of our queues: a
        clone of this burner); the Messenger keeps them as events only.
        """
        out: dict[tuple[str, str], int] = {}
        for event in events:
            key = (event.alias, event.kind)
            if (event.kind == "undeliverable" or (event.alert and not event.alias)) and event.at >= (
                self.dismissed.get(key, -1)
            ):
                out[key] = event.at
        return out

    def alert_items(self) -> list[AlertItem]:
        """What the alerts panel lists: contacts on alert, then undeliverable notices."""
        messenger = self.app.messenger_or_fail
        items = [AlertItem(view.alias, tuple(view.alerts)) for view in messenger.contacts() if view.alerts]
        items += [AlertItem(alias, (kind,), notice=True) for alias, kind in self.notices(messenger.events())]
        return items

    async def refresh_view(self) -> None:
        """Read everything shown from the Messenger again and redraw.

        A Messenger error (a contact removed by another burner command meanwhile) is a
        notification; the next refresh draws what is there.
        """
        try:
            await self._redraw()
        except BurnerError as exc:
            self.app.notify(str(exc), severity="error")

    async def _redraw(self) -> None:
        messenger = self.app.messenger
        if messenger is None or messenger.gone:
            return  # burned (by the burn window or an order): its vault is closed
        self._our_relay = messenger.relay_url
        contacts = messenger.contacts()
        events = messenger.events()
        notices = self.notices(events)
        gone = {alias for alias, kind in notices if kind == "undeliverable"}
        aliases = [view.alias for view in contacts]
        if self.current not in aliases:
            self.current = aliases[0] if aliases else None
        if self.current is not None:
            self.unread.pop(self.current, None)  # it is open: read
        await self.query_one("#contacts", Contacts).show(
            [(v.alias, contact_label(v, self.unread.get(v.alias, 0), v.alias in gone)) for v in contacts],
            self.current,
        )
        self._show_banner(contacts, notices)
        view = next((v for v in contacts if v.alias == self.current), None)
        self._show_conversation(view, [e for e in events if view is not None and e.alias == view.alias])
        self._show_status()

    def _show_banner(self, contacts: list[ContactView], notices: dict[tuple[str, str], int]) -> None:
        banner = self.query_one("#banner", Static)
        parts = [f"{v.alias}: {', '.join(v.alerts)}" for v in contacts if v.alerts]
        parts += [f"{v.alias}: silent past its check-in window" for v in contacts if v.silent_since]
        parts += [
            f"{alias or 'this burner'}: {kind}{' (burned?)' if kind == 'undeliverable' else ''}"
            for alias, kind in notices
        ]
        banner.display = bool(parts)
        if parts:
            text = Text(" ⚠ ALERT ", style="bold white on red")
            text.append(f" {' · '.join(parts)}  ", style="bold red")
            text.append("F8: what to do", style="reverse")
            banner.update(text)

    def _show_conversation(self, view: ContactView | None, events: list[EventView]) -> None:
        title = self.query_one("#chat-title", Static)
        composer = self.query_one("#composer", Input)
        conversation = self.query_one("#conversation", Conversation)
        if view is None:
            title.update(Text("no contacts yet: F2 invite · F3 accept · F4/F5 code", style="dim"))
            conversation.show(Text(""))
            composer.disabled = True
            return
        composer.disabled = view.burned
        composer.placeholder = (
            f"{view.alias} burned their burner" if view.burned else f"message to {view.alias} (Enter sends)"
        )
        head = Text(view.alias, style="bold")
        if view.burned:
            head.append("  burned: nothing more can be sent", style="bold red")
        elif view.verified:
            head.append("  ✓ verified", style="green")
        else:
            head.append("  unverified (F6)", style="yellow")
        if view.alerts:
            head.append("  ⚠ on alert (F8)", style="bold red")
        if view.timer:
            head.append(f"  ⏱ {format_duration(view.timer)}", style="yellow")
        if view.burn_on_read:
            head.append("  🔥 burn on read", style="red")
        title.update(head)
        messenger = self.app.messenger_or_fail
        conversation.show(
            render_lines(
                view.alias,
                messenger.history(view.alias),
                self.ephemeral.get(view.alias, []),
                events,
                now=self.app.clock(),
                localtime=self.app.localtime,
            )
        )

    def _show_status(self) -> None:
        messenger = self.app.messenger
        if messenger is None:
            return
        self.query_one("#status", StatusLine).show(
            link=self.link,
            detail=self.link_detail,
            queued=messenger.outbox_size(),
            expires_in=messenger.info().expires_at - self.app.clock(),
        )

    # -- choosing and sending ----------------------------------------------------------------------

    @on(ListView.Highlighted, "#contacts")
    async def _highlighted(self, event: ListView.Highlighted) -> None:
        if isinstance(event.item, ContactItem) and event.item.alias != self.current:
            if self.current is not None:
                # Burn-on-read messages go once their conversation has been open and is left.
                self.ephemeral.pop(self.current, None)
            self.current = event.item.alias
            await self.refresh_view()

    @on(ListView.Selected, "#contacts")
    def _selected(self) -> None:
        self.query_one("#composer", Input).focus()

    @on(Input.Submitted, "#composer")
    def _send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self.current is None:
            return
        event.input.value = ""
        self.run_worker(self._send_one(self.current, text), group="send")

    async def _send_one(self, alias: str, text: str) -> None:
        try:
            receipt = await self.app.messenger_or_fail.send(alias, text)
        except BurnerError as exc:
            self.app.notify(str(exc), severity="error", timeout=10)
        else:
            if receipt.status == "queued":
                self.app.notify(f"{alias}'s relay is unreachable: #{receipt.seq} waits in the outbox")
        await self.refresh_view()

    # -- the windows ---------------------------------------------------------------------------------

    def _contact(self) -> ContactView | None:
        if self.current is None:
            self.app.notify("pick a contact first (or F2 to invite someone)", severity="warning")
            return None
        try:
            return self.app.messenger_or_fail.contact(self.current)
        except BurnerError as exc:
            self.app.notify(str(exc), severity="error")
            return None

    async def _after(self, _result: object) -> None:
        await self.refresh_view()

    def action_invite(self) -> None:  # noqa: D102
        self.app.push_screen(InviteScreen(), self._after)

    def action_accept(self) -> None:  # noqa: D102
        self.app.push_screen(AcceptScreen(), self._after)

    def action_offer_code(self) -> None:  # noqa: D102
        self.app.push_screen(OfferCodeScreen(), self._after)

    def action_join_code(self) -> None:  # noqa: D102
        self.app.push_screen(JoinCodeScreen(), self._after)

    def action_verify(self) -> None:  # noqa: D102
        view = self._contact()
        if view is not None:
            self.app.push_screen(VerifyScreen(view.alias), self._after)

    def action_timer(self) -> None:  # noqa: D102
        view = self._contact()
        if view is not None:
            self.app.push_screen(TimerScreen(view), self._after)

    def action_alerts(self) -> None:  # noqa: D102
        self.app.push_screen(AlertsScreen(self.alert_items()), self._after)

    def action_debrief(self) -> None:  # noqa: D102
        report = self.app.messenger_or_fail.debrief()
        self.app.push_screen(DebriefScreen(report, self.app.localtime))

    def action_burn(self) -> None:  # noqa: D102
        self.app.push_screen(BurnScreen(self.app.messenger_or_fail.name))
