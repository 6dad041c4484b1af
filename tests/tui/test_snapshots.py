"""Snapshots of the main screens at 80x24 (pytest-textual-snapshot), on fixed clocks.

Update them after a deliberate change with ``pytest tests/tui/test_snapshots.py
--snapshot-update`` and look at the SVGs in tests/tui/__snapshots__/ before committing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from burnerkit.app.home import Home
from burnerkit.errors import IdentityError
from burnerkit.tui.app import ChatApp
from tests.integration.harness import RelayProcess
from tests.tui import scene
from tests.tui.helpers import Clock, chat_app, connected, mint, pair, until, utc

SnapCompare = Callable[..., bool]


def lone(tmp_path: Path, url: str) -> tuple[ChatApp, Clock]:
    clock = Clock()
    return chat_app(mint(tmp_path, "alice", url, clock), clock), clock


async def ready(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, ChatApp)
    await until(pilot, lambda: connected(app), "the relay is connected")


def then(*keys: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """``ready``, then ``keys`` pressed, then :func:`steady`."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await ready(pilot)
        await pilot.press(*keys)
        await steady(pilot)

    return run_before


async def steady(pilot: Pilot[Any]) -> None:
    """Draw every text input's cursor steadily, as the stored snapshots show it.

    A blinking cursor is on or off at the screenshot by the machine's timing: a loaded
    machine took it off and the snapshot differed in that one cell.
    """
    await pilot.pause()
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    await pilot.pause()


def test_main_screen(snap_compare: SnapCompare, tmp_path: Path, shared_relay: RelayProcess) -> None:
    clock = Clock()
    asyncio.run(scene.build(tmp_path, shared_relay.url, clock))
    app = scene.open_app(tmp_path, clock)

    async def run_before(pilot: Pilot[Any]) -> None:
        await scene.arrive(tmp_path, clock, app, pilot)
        await steady(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_alerts_panel(snap_compare: SnapCompare, tmp_path: Path, shared_relay: RelayProcess) -> None:
    clock = Clock()
    alice = mint(tmp_path, "alice", shared_relay.url, clock)
    carol = mint(tmp_path, "carol", shared_relay.url, clock)
    asyncio.run(pair(alice, carol, "carol", "alice"))
    with pytest.raises(IdentityError):
        alice.verify("carol", "12345")
    carol.close()
    app = chat_app(alice, clock)
    assert snap_compare(app, terminal_size=(80, 24), run_before=then("f8"))


def test_help_overlay(snap_compare: SnapCompare, tmp_path: Path, shared_relay: RelayProcess) -> None:
    app, _ = lone(tmp_path, shared_relay.url)
    assert snap_compare(app, terminal_size=(80, 24), run_before=then("f1"))


def test_burn_window(snap_compare: SnapCompare, tmp_path: Path, shared_relay: RelayProcess) -> None:
    app, _ = lone(tmp_path, shared_relay.url)
    assert snap_compare(app, terminal_size=(80, 24), run_before=then("f9"))


def test_unlock_screen(snap_compare: SnapCompare, tmp_path: Path, shared_relay: RelayProcess) -> None:
    clock = Clock()
    mint(tmp_path, "alice", shared_relay.url, clock).close()
    app = ChatApp(Home(tmp_path / "alice"), clock=clock, localtime=utc)
    assert snap_compare(app, terminal_size=(80, 24), run_before=steady)
