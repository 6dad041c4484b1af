"""Each window of the chat UI, driven by keys only, against a real relay process."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from textual.widgets import Input

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.tui.app import ChatApp
from burnerkit.tui.screens.alerts import AlertsScreen
from burnerkit.tui.screens.help import HelpScreen
from burnerkit.tui.screens.main import MainScreen
from burnerkit.tui.screens.unlock import UnlockScreen
from burnerkit.tui.widgets.qr import QrCode
from tests.tui.helpers import (
    PASS,
    Clock,
    banner,
    chat_app,
    connected,
    contact_rows,
    lines,
    mint,
    on_main,
    pair,
    paste,
    shown,
    until,
    utc,
)

pytestmark = pytest.mark.asyncio


def notices(app: ChatApp) -> list[str]:
    return [notification.message for notification in app._notifications]


async def test_wrong_passphrase_shows_the_error_and_the_right_one_unlocks(tmp_path: Path, url: str) -> None:
    mint(tmp_path, "alice", url, Clock()).close()
    app = ChatApp(Home(tmp_path / "alice"), clock=Clock(), localtime=utc)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, UnlockScreen), "the unlock screen shows")
        field = app.screen.query_one("#passphrase", Input)
        assert field.password  # masked
        paste(app, "not the passphrase")
        await pilot.press("enter")
        await until(pilot, lambda: "wrong passphrase" in shown(app, "#unlock-status"), "the error shows")
        assert "try again" in shown(app, "#unlock-status")
        assert field.value == ""
        assert not field.disabled
        paste(app, PASS)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the main screen shows")
        assert app.messenger is not None
        assert app.messenger.name == "alice"


async def test_several_burners_ask_which_and_the_environment_passphrase_skips_typing(
    tmp_path: Path, url: str
) -> None:
    both = Home(tmp_path / "home")
    for name in ("alice", "work"):
        Messenger.create(both, name, PASS, relay_url=url, kdf=FAST_TEST_KDF, clock=Clock()).close()
    app = ChatApp(both, passphrase=PASS, clock=Clock(), localtime=utc)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: bool(app.screen.query("#burners")), "the burner choice shows")
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "unlocked without typing")
        assert app.messenger is not None
        assert app.messenger.name == "work"


async def test_several_burners_the_passphrase_opening_one_goes_straight_to_it(
    tmp_path: Path, url: str
) -> None:
    both = Home(tmp_path / "home")
    Messenger.create(both, "alice", PASS, relay_url=url, kdf=FAST_TEST_KDF, clock=Clock()).close()
    Messenger.create(
        both, "work", "another passphrase", relay_url=url, kdf=FAST_TEST_KDF, clock=Clock()
    ).close()
    app = ChatApp(both, passphrase=PASS, clock=Clock(), localtime=utc)
    async with app.run_test(size=(80, 24)) as pilot:
        # No name on disk: the passphrase comes first, and it opens one burner only.
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "unlocked without a choice")
        assert app.messenger is not None
        assert app.messenger.name == "alice"
        await until(pilot, lambda: connected(app), "the relay is connected")


async def test_invite_shows_a_link_and_a_qr_within_80_columns_and_the_acceptor_becomes_a_contact(
    tmp_path: Path, url: str
) -> None:
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        await pilot.press("f2", *"bob", "enter")
        await until(pilot, lambda: bool(app.screen.query(QrCode)), "the QR code shows")
        link = shown(app, "#invite-link").replace("\n", "")
        assert link.startswith("burner:")
        qr = app.screen.query_one(QrCode)
        assert qr.fits
        assert qr.size.width <= 80
        await bob.accept(link, "alice")
        await until(pilot, lambda: "new contact bob: they accepted your invitation" in notices(app), "told")
        await pilot.press("escape")
        await until(pilot, lambda: contact_rows(app) == ["? bob"], "bob is a contact")
    bob.close()


async def test_accepting_a_link_pairs_and_a_damaged_link_is_a_notification(tmp_path: Path, url: str) -> None:
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    link = (await alice.invite("bob")).link
    app = chat_app(bob, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        await pilot.press("f3")
        paste(app, "burner:garbage")
        await pilot.press("enter", *"alice", "enter")
        await until(pilot, lambda: "link" in shown(app, "#dialog-status"), "the error shows")
        assert [n.severity for n in app._notifications] == ["error"]
        assert shown(app, "#dialog-status") in notices(app)  # the Messenger's words, no traceback
        app.screen.query_one("#accept-link", Input).value = link  # a paste
        app.screen.query_one("#accept-alias", Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the window closes")
        await until(pilot, lambda: contact_rows(app) == ["? alice"], "alice is a contact")
    assert (await alice.receive(wait=5, idle=0.05)).new_contacts == ["bob"]
    alice.close()


async def test_pairing_by_code_offered_in_the_app_makes_a_verified_contact(tmp_path: Path, url: str) -> None:
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        await pilot.press("f4", *"bob", "enter")
        await until(
            pilot, lambda: bool(re.search(r"\d+-\w+-\w+", shown(app, "#offer-code"))), "the code shows"
        )
        code = shown(app, "#offer-code").strip()
        assert app.main is not None
        assert app.main._live is None  # paused: pairing listens on the invitation's queue itself
        joined = await bob.pair_join(code, "alice", timeout=20)
        assert joined.verified
        await until(pilot, lambda: contact_rows(app) == ["✓ bob"], "bob is a verified contact")
        await until(pilot, lambda: app.main is not None and app.main._live is not None, "live again")
        await bob.send("alice", "paired by code")
        await until(pilot, lambda: "paired by code" in lines(app), "the receive loop runs again")
        assert alice.events() == []  # no displaced subscription: no clone alert
    assert bob.events() == []
    bob.close()


async def test_cancelling_an_offered_code_resumes_the_receive_loop_and_pairs_nobody(
    tmp_path: Path, url: str
) -> None:
    clock = Clock()
    alice = mint(tmp_path, "alice", url, clock)
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        await pilot.press("f4", "enter")
        await until(pilot, lambda: bool(re.search(r"\d+-\w+-\w+", shown(app, "#offer-code"))), "a code")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the window closes")
        await until(pilot, lambda: app.main is not None and app.main._live is not None, "live again")
        assert alice.contacts() == []


async def test_joining_by_a_typed_code_makes_a_verified_contact(tmp_path: Path, url: str) -> None:
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    codes: asyncio.Queue[str] = asyncio.Queue()
    app = chat_app(bob, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        offer = asyncio.ensure_future(alice.pair_offer("bob", codes.put_nowait, timeout=20))
        code = await asyncio.wait_for(codes.get(), 20)
        await pilot.press("f5", *code, "enter", *"alice", "enter")
        await until(pilot, lambda: contact_rows(app) == ["✓ alice"], "alice is a verified contact")
        assert (await offer).verified
    alice.close()


async def test_verify_marks_the_contact_and_a_mismatch_is_an_alert_until_cleared(
    tmp_path: Path, url: str
) -> None:
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    await pair(alice, bob, "bob", "alice")
    code = bob.verify("alice").safety_code
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        await pilot.press("f6")
        await until(pilot, lambda: code in shown(app, "#verify-code"), "the safety code shows")
        await pilot.press(*"12345", "enter")
        await until(pilot, lambda: "does not match" in shown(app, "#dialog-status"), "the mismatch shows")
        await pilot.press("escape")
        await until(pilot, lambda: "bob: code-mismatch" in banner(app), "the alert banner shows")
        assert contact_rows(app) == ["? bob ⚠"]
        await pilot.press("f8")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen), "the alerts panel opens")
        listed = str(app.screen.query_one("#alert-list").render_line(0).text)
        assert "bob: code-mismatch" in listed
        await pilot.press("c", "escape")
        await until(pilot, lambda: banner(app) == "", "the banner goes once the alert is cleared")
        await pilot.press("f6")
        app.screen.query_one("#verify-input", Input).value = code  # as read out, spaces and all
        await pilot.press("enter")
        await until(pilot, lambda: contact_rows(app) == ["✓ bob"], "bob is verified")
    bob.close()


async def test_timer_window_sets_the_policy_and_the_next_message_carries_it(tmp_path: Path, url: str) -> None:
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    await pair(alice, bob, "bob", "alice")
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        await pilot.press("f7", "down", "down", "enter")  # off, 30 seconds, 5 minutes
        await until(pilot, lambda: "⏱ 5m" in shown(app, "#chat-title"), "the title shows the timer")
        assert alice.contact("bob").timer == 300
        paste(app, "soon gone")
        await pilot.press("enter")
        await until(pilot, lambda: "soon gone  ✓ delivered  ⏱ 5m 0s" in lines(app), "the message shows it")
        await pilot.press("f7", "tab", "space", "shift+tab", "up", "up", "enter")  # burn on read, no timer
        await until(pilot, lambda: "🔥 burn on read" in on_main(app, "#chat-title"), "the title shows it")
        assert (alice.contact("bob").timer, alice.contact("bob").burn_on_read) == (0, True)
    [message] = (await bob.receive(wait=5, idle=0.05)).messages
    assert message.expires_at == int(clock.now) + 300
    bob.close()


async def test_burn_needs_the_name_and_then_leaves_with_what_it_did(tmp_path: Path, url: str) -> None:
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    await pair(alice, bob, "bob", "alice")
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        await pilot.press("f9")
        text = shown(app, "#burn-what")
        assert "irreversible" in text
        assert "delete every relay queue" in text
        assert "shred the vault's key" in text
        await pilot.press(*"bob", "enter")
        await until(pilot, lambda: "nothing was burned" in shown(app, "#dialog-status"), "refused")
        assert Home(tmp_path / "alice").count() == 1
        app.screen.query_one("#burn-name", Input).value = ""
        await pilot.press(*"alice", "enter")
        await until(pilot, lambda: app.return_value is not None, "the app leaves")
    # Her queue for bob, and the short link's (kept until its invitation would expire).
    assert app.return_value == "burned alice: vault shredded, 1 contact(s) told, 2 relay queue(s) deleted"
    assert not (tmp_path / "alice").exists()  # the home goes with its last burner
    bob.close()


async def test_help_overlay_lists_every_key_and_opens_with_f1_or_question_mark(
    tmp_path: Path, url: str
) -> None:
    clock = Clock()
    app = chat_app(mint(tmp_path, "alice", url, clock), clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the main screen shows")
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        app.screen.query_one("#contacts").focus()
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
