"""The relay's Outbox: every link's frames of a turn written by one callback after it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from burnerkit.relay.server.link import Link, Outbox


class Recorder:
    """Stands in for a Link: only ``_write_pending`` is called by the outbox."""

    def __init__(self, name: str, written: list[str], fail: bool = False) -> None:
        self.name = name
        self.written = written
        self.fail = fail

    def _write_pending(self) -> None:
        if self.fail:
            raise RuntimeError("boom")
        self.written.append(self.name)


@pytest.mark.asyncio
async def test_one_callback_writes_every_link_of_the_turn_in_order_and_a_failure_stops_none() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        written: list[str] = []
        outbox = Outbox(loop)
        links = [Recorder("a", written), Recorder("bad", written, fail=True), Recorder("b", written)]
        scheduled = len(loop._ready)  # type: ignore[attr-defined]
        for link in links:
            outbox.add(cast(Link, link))
        assert len(loop._ready) == scheduled + 1  # type: ignore[attr-defined]
        assert written == []  # nothing before the end of the turn
        await asyncio.sleep(0)
        assert written == ["a", "b"]
        assert [context["message"] for context in errors] == ["link write failed"]
        # The next turn starts a new round.
        outbox.add(cast(Link, links[0]))
        await asyncio.sleep(0)
        assert written == ["a", "b", "a"]
    finally:
        loop.set_exception_handler(None)
