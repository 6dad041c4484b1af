"""Pairing mailboxes: short-lived, in-memory boxes named by a nameplate (docs/protocol.md §14.12).

Theory of operation
-------------------
A mailbox has at most two sides. ``MB_ALLOC`` creates it with side A and a fresh
nameplate; ``MB_JOIN nameplate`` adds side B. A third ``MB_JOIN`` finds it full: the
answer is the same ``ERR MAILBOX`` an unknown nameplate gets, and the mailbox closes
(``MB_END CROWDED`` to both sides), so someone who raced in to guess burns the code
instead of getting a second try. Each side holds a random 24-byte token (compared with
``hmac.compare_digest``), puts up to :data:`MAILBOX_MESSAGES` numbered messages, and is
pushed the other side's messages on the connection it is attached to; ``MB_GET``
attaches a new connection (after a reconnect) and pushes everything again, so delivery
is at-least-once and the client deduplicates by index.

A mailbox *closes* when one side deletes it, a third join crowds it, or its TTL runs
out: its nameplate is free again at once and nothing more can be put, but a side that
did not delete may still ``MB_GET`` what the other side left (then ``MB_END``) until it
deletes its side too or the TTL removes the mailbox for good.

Why in memory and not in the store: a mailbox lives minutes, holds nothing worth
keeping across a restart (pairing simply starts again with a new code), and must leave
no trace on disk; a relay restart closing every mailbox is the safe failure.

This class does no I/O and reads no clock: the server passes ``now`` and sends the
:class:`Push` values it returns. Connections are opaque keys to it. Nothing here logs.
"""

from __future__ import annotations

import hmac
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final, assert_never

from burnerkit.crypto.rng import Random
from burnerkit.relay.protocol import (
    MAILBOX_BODY_SIZE,
    MAILBOX_MESSAGES,
    MAILBOX_TOKEN_SIZE,
    Err,
    ErrorCode,
    MailboxEndReason,
    MbAlloc,
    MbDel,
    MbEnd,
    MbGet,
    MbJoin,
    MbMsg,
    MbOpen,
    MbPut,
    Ok,
    ServerResponse,
)

from .metrics import Metrics

__all__ = ["MailboxCommand", "MailboxHub", "Push"]

MailboxCommand = MbAlloc | MbJoin | MbPut | MbGet | MbDel

#: Nameplates are drawn from the smallest of these ranges that is less than half used,
#: so codes stay short while the relay is quiet (wormhole's nameplates grow the same way).
_RANGES: Final = (999, 9_999, 65_535)
#: Random draws before we fall back to a scan for a free nameplate.
_DRAWS: Final = 64


@dataclass(frozen=True, slots=True)
class Push:
    """A frame to push to a connection (corr_id zeros, entity ``token``)."""

    conn: Hashable
    token: bytes = field(repr=False)
    response: MbMsg | MbEnd
    #: send it after the answer to the command (it goes to the asking side itself)
    after_answer: bool


class _Side:
    __slots__ = ("conn", "deleted", "mailbox", "messages", "token")

    def __init__(self, mailbox: _Mailbox, token: bytes) -> None:
        self.mailbox = mailbox
        self.token = token
        self.messages: list[bytes] = []
        self.conn: Hashable | None = None
        self.deleted = False


class _Mailbox:
    __slots__ = ("ended", "expires_at", "nameplate", "sides")

    def __init__(self, nameplate: int, expires_at: float) -> None:
        self.nameplate = nameplate
        self.expires_at = expires_at
        self.sides: list[_Side] = []
        self.ended: MailboxEndReason | None = None

    def other(self, side: _Side) -> _Side | None:
        for candidate in self.sides:
            if candidate is not side:
                return candidate
        return None


class MailboxHub:
    """Every open mailbox of one relay.

    Args:
        rng: draws nameplates and tokens.
        metrics: where the aggregate mailbox counters go.
        ttl: seconds a mailbox lives.
        capacity: mailboxes (open or closed, not yet removed) the relay holds at most.
        per_connection: mailbox sides one connection may be attached to at once.
    """

    def __init__(
        self, *, rng: Random, metrics: Metrics, ttl: float, capacity: int, per_connection: int
    ) -> None:
        if ttl <= 0 or capacity < 1 or per_connection < 1:
            raise ValueError("mailbox ttl, capacity and per-connection limit must be positive")
        self._rng = rng
        self._metrics = metrics
        self._ttl = ttl
        self._capacity = min(capacity, _RANGES[-1])
        self._per_connection = per_connection
        #: every mailbox not yet removed, oldest first (the TTL is fixed, so also soonest to expire)
        self._live: dict[_Mailbox, None] = {}
        self._by_nameplate: dict[int, _Mailbox] = {}
        self._by_token: dict[bytes, _Side] = {}
        self._attached: dict[Hashable, set[_Side]] = {}

    @property
    def open_count(self) -> int:
        """Mailboxes held (open, or closed and not yet deleted by both sides)."""
        return len(self._live)

    def handle(
        self, conn: Hashable, token: bytes, command: MailboxCommand, now: float
    ) -> tuple[ServerResponse, list[Push]]:
        """Run one mailbox command of ``conn``; ``token`` is the command's entity.

        Returns:
            The answer, and the frames to push (expired mailboxes' ends included).
        """
        pushes = self.expire(now)
        match command:
            case MbAlloc():
                response = self._alloc(conn, now)
            case MbJoin(nameplate):
                response = self._join(conn, nameplate, pushes)
            case MbPut(index, body):
                response = self._put(token, index, body, pushes)
            case MbGet():
                response = self._get(conn, token, pushes)
            case MbDel():
                response = self._delete(token, pushes)
            case _:  # pragma: no cover
                assert_never(command)
        return response, pushes

    def expire(self, now: float) -> list[Push]:
        """Remove every mailbox past its TTL; returns the ``MB_END EXPIRED`` frames to push."""
        pushes: list[Push] = []
        while self._live:
            mailbox = next(iter(self._live))
            if mailbox.expires_at > now:
                break
            if mailbox.ended is None:
                self._close(mailbox, MailboxEndReason.EXPIRED, pushes)
                self._metrics.mailboxes_expired_total += 1
            for side in mailbox.sides:
                self._retire(side)
            del self._live[mailbox]
        return pushes

    def detach(self, conn: Hashable) -> None:
        """The connection closed: its sides wait for an ``MB_GET`` from a new connection."""
        for side in self._attached.pop(conn, ()):
            side.conn = None

    # -- commands -------------------------------------------------------------------------

    def _alloc(self, conn: Hashable, now: float) -> ServerResponse:
        if not self._has_room(conn) or len(self._live) >= self._capacity:
            return Err(ErrorCode.QUOTA)
        nameplate = self._free_nameplate()
        if nameplate is None:  # pragma: no cover - capacity is below the nameplate space
            return Err(ErrorCode.QUOTA)
        mailbox = _Mailbox(nameplate, now + self._ttl)
        self._live[mailbox] = None
        self._by_nameplate[nameplate] = mailbox
        side = self._new_side(mailbox, conn)
        self._metrics.mailboxes_opened_total += 1
        return MbOpen(nameplate, side.token)

    def _join(self, conn: Hashable, nameplate: int, pushes: list[Push]) -> ServerResponse:
        mailbox = self._by_nameplate.get(nameplate)
        if mailbox is None:
            return Err(ErrorCode.MAILBOX)
        if len(mailbox.sides) >= 2:
            # A third party: the same answer as an unknown nameplate, and the code is burnt.
            self._close(mailbox, MailboxEndReason.CROWDED, pushes)
            self._metrics.mailboxes_crowded_total += 1
            return Err(ErrorCode.MAILBOX)
        if not self._has_room(conn):
            return Err(ErrorCode.QUOTA)
        side = self._new_side(mailbox, conn)
        self._push_backlog(side, pushes)
        return MbOpen(nameplate, side.token)

    def _put(self, token: bytes, index: int, body: bytes, pushes: list[Push]) -> ServerResponse:
        side = self._side(token)
        if side is None or side.mailbox.ended is not None:
            return Err(ErrorCode.MAILBOX)
        if len(body) > MAILBOX_BODY_SIZE:
            return Err(ErrorCode.LARGE)
        if index < len(side.messages):
            # A retry after a lost OK repeats index and body: stored once, answered OK.
            return Ok() if hmac.compare_digest(side.messages[index], body) else Err(ErrorCode.CMD)
        if index > len(side.messages):
            return Err(ErrorCode.CMD)
        if len(side.messages) >= MAILBOX_MESSAGES:
            return Err(ErrorCode.QUOTA)
        side.messages.append(bytes(body))
        peer = side.mailbox.other(side)
        if peer is not None and peer.conn is not None and not peer.deleted:
            # Before the answer: whatever the putter does next (say, MB_DEL) reaches the
            # other side after this message.
            pushes.append(Push(peer.conn, peer.token, MbMsg(index, side.messages[index]), False))
        return Ok()

    def _get(self, conn: Hashable, token: bytes, pushes: list[Push]) -> ServerResponse:
        side = self._side(token)
        if side is None:
            return Err(ErrorCode.MAILBOX)
        if side.conn is not conn:
            if not self._has_room(conn):
                return Err(ErrorCode.QUOTA)
            self._attach(side, conn)
        self._push_backlog(side, pushes)
        if side.mailbox.ended is not None:
            pushes.append(Push(conn, side.token, MbEnd(side.mailbox.ended), True))
        return Ok()

    def _delete(self, token: bytes, pushes: list[Push]) -> ServerResponse:
        side = self._side(token)
        if side is None:
            return Err(ErrorCode.MAILBOX)
        mailbox = side.mailbox
        self._retire(side)
        if mailbox.ended is None:
            self._close(mailbox, MailboxEndReason.DELETED, pushes)
        if all(s.deleted for s in mailbox.sides):
            self._live.pop(mailbox, None)
        return Ok()

    # -- helpers --------------------------------------------------------------------------

    def _side(self, token: bytes) -> _Side | None:
        if len(token) != MAILBOX_TOKEN_SIZE:
            return None
        side = self._by_token.get(token)
        # The dict found it by hash; the token itself is compared in constant time.
        if side is None or not hmac.compare_digest(side.token, token):
            return None
        return side

    def _new_side(self, mailbox: _Mailbox, conn: Hashable) -> _Side:
        side = _Side(mailbox, self._rng.random_bytes(MAILBOX_TOKEN_SIZE))
        mailbox.sides.append(side)
        self._by_token[side.token] = side
        self._attach(side, conn)
        return side

    def _push_backlog(self, side: _Side, pushes: list[Push]) -> None:
        peer = side.mailbox.other(side)
        if peer is not None and side.conn is not None:
            for index, body in enumerate(peer.messages):
                pushes.append(Push(side.conn, side.token, MbMsg(index, body), True))

    def _close(self, mailbox: _Mailbox, reason: MailboxEndReason, pushes: list[Push]) -> None:
        mailbox.ended = reason
        if self._by_nameplate.get(mailbox.nameplate) is mailbox:
            del self._by_nameplate[mailbox.nameplate]
        for side in mailbox.sides:
            if not side.deleted and side.conn is not None:
                pushes.append(Push(side.conn, side.token, MbEnd(reason), False))

    def _retire(self, side: _Side) -> None:
        """The side is gone: its token stops working and it leaves its connection."""
        side.deleted = True
        self._by_token.pop(side.token, None)
        self._detach(side)

    def _has_room(self, conn: Hashable) -> bool:
        return len(self._attached.get(conn, ())) < self._per_connection

    def _attach(self, side: _Side, conn: Hashable) -> None:
        self._detach(side)
        side.conn = conn
        self._attached.setdefault(conn, set()).add(side)

    def _detach(self, side: _Side) -> None:
        if side.conn is None:
            return
        held = self._attached.get(side.conn)
        if held is not None:
            held.discard(side)
            if not held:
                del self._attached[side.conn]
        side.conn = None

    def _free_nameplate(self) -> int | None:
        used = self._by_nameplate
        top = next((top for top in _RANGES if 2 * len(used) < top), _RANGES[-1])
        for _ in range(_DRAWS):
            candidate = 1 + int.from_bytes(self._rng.random_bytes(4), "big") % top
            if candidate not in used:
                return candidate
        return next((n for n in range(1, _RANGES[-1] + 1) if n not in used), None)  # pragma: no cover
