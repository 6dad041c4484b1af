"""The receive loop as a worker, and the messages it posts up to the main screen.

:func:`receive_forever` runs :meth:`Messenger.follow` until cancelled: each delivery's
news goes up as :class:`NewsArrived`; when every relay is unreachable it says so
(:class:`LinkChanged`) and tries again after a pause. The relay clients reconnect by
themselves inside ``follow``; their up/down reports (``Messenger.watch_links``) come up
as :class:`LinkChanged` too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

from textual.dom import DOMNode
from textual.message import Message
from textual.worker import WorkerCancelled, WorkerFailed

from burnerkit.app.messenger import Messenger
from burnerkit.app.views import InboxResult
from burnerkit.errors import BurnerError, BurnOrderedError, IdentityExpiredError, RelayError

__all__ = ["RETRY_AFTER", "LinkChanged", "LiveStopped", "NewsArrived", "receive_forever", "stop_workers"]

#: Seconds between two tries of a receive loop that found every relay unreachable.
RETRY_AFTER: Final = 3.0


class NewsArrived(Message):
    """New messages, contacts or anomalies from one delivery."""

    def __init__(self, result: InboxResult) -> None:
        super().__init__()
        self.result = result


class LinkChanged(Message):
    """A relay connection came up (``up``) or was lost or refused (``detail`` says why)."""

    def __init__(self, url: str, up: bool, detail: str = "") -> None:
        super().__init__()
        self.url = url
        self.up = up
        self.detail = detail


class LiveStopped(Message):
    """The receive loop stopped for good (the burner expired, or its issuer's order burned it)."""

    def __init__(self, error: BurnerError) -> None:
        super().__init__()
        self.error = error


async def receive_forever(
    messenger: Messenger, post: Callable[[Message], object], *, retry_after: float = RETRY_AFTER
) -> None:
    """Run the receive loop until cancelled, posting what it brings with ``post``."""
    while True:
        try:
            await messenger.follow(lambda news: _post(post, NewsArrived(news)))
        except (IdentityExpiredError, BurnOrderedError) as exc:
            post(LiveStopped(exc))
            return
        except (RelayError, BurnerError) as exc:
            # Every relay unreachable, or a vault busy with another burner command: say
            # so on the status line and try again; nothing is lost meanwhile.
            post(LinkChanged(messenger.relay_url, False, str(exc)))
        await asyncio.sleep(retry_after)


async def stop_workers(node: DOMNode) -> None:
    """Cancel ``node``'s workers and wait until they are done.

    Textual cancels a node's workers when it goes, without waiting; ours hold relay
    connections, which must close before the event loop does.
    """
    workers = [worker for worker in node.app.workers if worker.node is node]
    for worker in workers:
        worker.cancel()
    for worker in workers:
        with contextlib.suppress(WorkerCancelled, WorkerFailed, asyncio.CancelledError):
            await worker.wait()


def _post(post: Callable[[Message], object], message: Message) -> None:
    post(message)
