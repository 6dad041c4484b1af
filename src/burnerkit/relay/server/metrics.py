"""Aggregate counters and a tiny Prometheus text endpoint (docs/protocol.md §14.11).

Only totals and two gauges: no label ever names a queue, a connection or an address.
The HTTP side is a few lines over :func:`asyncio.start_server` rather than a new
dependency: it answers ``GET /metrics`` and nothing else, one request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

from burnerkit.relay.protocol import ErrorCode

__all__ = ["COMMANDS", "Metrics", "start_metrics_server"]

#: Label values of ``commands_total``, one per client command.
COMMANDS: Final = (
    "new",
    "sub",
    "key",
    "send",
    "ack",
    "del",
    "ping",
    "mb_alloc",
    "mb_join",
    "mb_put",
    "mb_get",
    "mb_del",
)

_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_REQUEST_LIMIT: Final = 8192
_REQUEST_TIMEOUT: Final = 5.0


class Metrics:
    """The relay's counters; the server increments them, :meth:`render` prints them."""

    __slots__ = (
        "commands",
        "connections_total",
        "errors",
        "mailboxes_crowded_total",
        "mailboxes_expired_total",
        "mailboxes_opened_total",
        "messages_acked_total",
        "messages_delivered_total",
        "messages_expired_total",
        "messages_stored_total",
        "queues_created_total",
    )

    def __init__(self) -> None:
        self.connections_total = 0
        self.commands: dict[str, int] = dict.fromkeys(COMMANDS, 0)
        self.messages_stored_total = 0
        self.messages_delivered_total = 0
        self.messages_acked_total = 0
        self.messages_expired_total = 0
        self.queues_created_total = 0
        #: pairing mailboxes (§14.12): allocated, burnt by a third join, expired unfinished
        self.mailboxes_opened_total = 0
        self.mailboxes_crowded_total = 0
        self.mailboxes_expired_total = 0
        self.errors: dict[ErrorCode, int] = dict.fromkeys(ErrorCode, 0)

    def render(self, *, connections_active: int, subscriptions_active: int, mailboxes_open: int = 0) -> str:
        """The Prometheus text exposition of every counter and the two gauges."""
        lines: list[str] = []

        def metric(name: str, kind: str, doc: str, samples: list[tuple[str, int]]) -> None:
            lines.append(f"# HELP {name} {doc}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {value}" for labels, value in samples)

        metric(
            "connections_total", "counter", "WebSocket connections accepted.", [("", self.connections_total)]
        )
        metric(
            "commands_total",
            "counter",
            "Commands received, by command.",
            [(f'{{command="{name}"}}', count) for name, count in self.commands.items()],
        )
        metric(
            "messages_stored_total", "counter", "Messages durably stored.", [("", self.messages_stored_total)]
        )
        metric(
            "messages_delivered_total",
            "counter",
            "MSG frames pushed to subscribers (redeliveries included).",
            [("", self.messages_delivered_total)],
        )
        metric(
            "messages_acked_total",
            "counter",
            "Messages acknowledged and deleted.",
            [("", self.messages_acked_total)],
        )
        metric(
            "messages_expired_total",
            "counter",
            "Messages deleted by the sweeper.",
            [("", self.messages_expired_total)],
        )
        metric("queues_created_total", "counter", "Queues created.", [("", self.queues_created_total)])
        metric(
            "mailboxes_opened_total",
            "counter",
            "Pairing mailboxes allocated.",
            [("", self.mailboxes_opened_total)],
        )
        metric(
            "mailboxes_crowded_total",
            "counter",
            "Pairing mailboxes closed by a third join.",
            [("", self.mailboxes_crowded_total)],
        )
        metric(
            "mailboxes_expired_total",
            "counter",
            "Pairing mailboxes that expired still open.",
            [("", self.mailboxes_expired_total)],
        )
        metric(
            "errors_total",
            "counter",
            "ERR answers, by code.",
            [(f'{{code="{code.name.lower()}"}}', count) for code, count in self.errors.items()],
        )
        metric("connections_active", "gauge", "Open WebSocket connections.", [("", connections_active)])
        metric("subscriptions_active", "gauge", "Subscribed queues.", [("", subscriptions_active)])
        metric("mailboxes_open", "gauge", "Pairing mailboxes held in memory.", [("", mailboxes_open)])
        return "\n".join(lines) + "\n"


async def start_metrics_server(render: Callable[[], str], host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` and answer ``GET /metrics`` with ``render()``.

    Raises:
        OSError: if the address cannot be bound.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                status, body, content_type = _answer(head, render)
                writer.write(
                    (
                        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                    ).encode("ascii")
                    + body
                )
                await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, limit=_REQUEST_LIMIT)


def _answer(head: bytes, render: Callable[[], str]) -> tuple[str, bytes, str]:
    request_line = head.split(b"\r\n", 1)[0].split()
    if len(request_line) != 3 or not request_line[2].startswith(b"HTTP/1."):
        return "400 Bad Request", b"bad request\n", "text/plain"
    method, target = request_line[0], request_line[1]
    if target.split(b"?", 1)[0] != b"/metrics":
        return "404 Not Found", b"not found\n", "text/plain"
    if method != b"GET":
        return "405 Method Not Allowed", b"method not allowed\n", "text/plain"
    return "200 OK", render().encode("utf-8"), _CONTENT_TYPE
