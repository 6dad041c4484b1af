"""What the :class:`~burnerkit.app.messenger.Messenger` hands to its faces (CLI, TUI).

Plain frozen values with no secrets beyond what the user is meant to see; each has
``to_json`` for ``--json`` output. The faces get these, never records or sessions, so
they cannot reach what they should not show (docs/architecture.md §6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BurnReport",
    "BurnerInfo",
    "ContactRemoved",
    "ContactView",
    "EventView",
    "HistoryEntry",
    "InboxMessage",
    "InboxResult",
    "InviteView",
    "RelayMove",
    "SendReceipt",
    "VerifyResult",
]


@dataclass(frozen=True, slots=True)
class BurnerInfo:
    """A burner's public facts."""

    name: str
    relay_url: str
    created_at: int
    expires_at: int
    contacts: int
    #: The dead-man switch's check-in window in seconds (0: none, docs/protocol.md §17.8).
    check_in: int = 0

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {
            "name": self.name,
            "relay": self.relay_url,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "contacts": self.contacts,
            "check_in": self.check_in or None,
        }


@dataclass(frozen=True, slots=True)
class ContactView:
    """One contact as the user sees it.

    ``alerts``: the kinds of anomaly that put the contact on alert, until the user clears
    them (``burner alerts --clear``); a contact on alert is never ``verified``.
    ``silent_since``: the contact has a dead-man switch and went silent past its window
    (docs/protocol.md §17.8): when it was last heard from; 0 when it is not silent.
    """

    alias: str
    relay_url: str
    verified: bool
    key_changed: bool
    timer: int
    burn_on_read: bool
    safety_code: str
    alerts: list[str] = field(default_factory=list)
    silent_since: int = 0
    #: It burned its burner (docs/protocol.md §17.7): nothing is sent to it any more.
    burned: bool = False

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {
            "alias": self.alias,
            "relay": self.relay_url,
            "verified": self.verified,
            "key_changed": self.key_changed,
            "disappear_seconds": self.timer,
            "burn_on_read": self.burn_on_read,
            "safety_code": self.safety_code,
            "alerts": list(self.alerts),
            "silent_since": self.silent_since or None,
            "burned": self.burned,
        }


@dataclass(frozen=True, slots=True)
class InviteView:
    """An invitation handed out: the links to pass on, and for whom.

    ``link`` is the short link when there is one (docs/protocol.md §17.2), else the long
    one; ``long_link`` always carries the invitation itself.
    """

    link: str
    alias: str
    expires_at: int
    long_link: str

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {
            "link": self.link,
            "long_link": self.long_link,
            "for": self.alias,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """A contact's safety code and whether it is now verified."""

    alias: str
    safety_code: str
    verified: bool

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {"alias": self.alias, "safety_code": self.safety_code, "verified": self.verified}


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """A message sent, and its ``status``.

    ``delivered``: the peer's relay stored it. ``queued``: the relay was unreachable and
    it waits in the outbox for the next run. ``refused``: the relay no longer knows the
    peer's queue (the peer burned it); the message is dropped.
    """

    alias: str
    seq: int
    status: str
    #: Why it is ``queued``: ``URL (cause)`` of the relay that could not be reached.
    unreachable: str = ""

    @property
    def delivered(self) -> bool:
        """Whether the peer's relay stored it."""
        return self.status == "delivered"

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {"to": self.alias, "seq": self.seq, "status": self.status}


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """An incoming message shown for the first (and only) time by the inbox."""

    alias: str
    text: str = field(repr=False)
    sent_at: int  #: the sender's clock, milliseconds since the epoch (not trusted)
    seq: int
    burn_on_read: bool
    expires_at: int

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {
            "type": "message",
            "from": self.alias,
            "text": self.text,
            "sent_at": self.sent_at,
            "seq": self.seq,
            "burn_on_read": self.burn_on_read,
            "expires_at": self.expires_at or None,
        }


@dataclass(frozen=True, slots=True)
class EventView:
    """An anomaly worth the user's attention (a gap, a replay, a clone alert).

    ``alert``: its kind puts a contact on alert (a clone, a replay, a forgery, a changed
    or doubtful identity), not merely a fact for the debrief (a gap, a late message).
    """

    alias: str
    at: int
    kind: str
    detail: str
    alert: bool = False

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {
            "type": "event",
            "contact": self.alias,
            "at": self.at,
            "kind": self.kind,
            "detail": self.detail,
            "alert": self.alert,
        }


@dataclass(frozen=True, slots=True)
class InboxResult:
    """What one inbox run fetched, what it noticed, and relays it could not reach."""

    messages: list[InboxMessage]
    events: list[EventView]
    #: ``URL (cause)`` of each relay that could not be reached
    unreachable: list[str]
    new_contacts: list[str]

    @property
    def alerts(self) -> list[EventView]:
        """The events among :attr:`events` that put a contact on alert."""
        return [event for event in self.events if event.alert]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One message of a conversation, either direction.

    ``status`` (outgoing messages only): ``queued``, ``delivered`` or ``refused``, as in
    :class:`SendReceipt`.
    """

    outgoing: bool
    text: str = field(repr=False)
    sent_at: int
    seq: int
    delivered: bool
    burn_on_read: bool
    expires_at: int
    status: str = ""

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {
            "type": "message",
            "direction": "out" if self.outgoing else "in",
            "text": self.text,
            "sent_at": self.sent_at,
            "seq": self.seq,
            "delivered": self.delivered,
            "burn_on_read": self.burn_on_read,
            "expires_at": self.expires_at or None,
        }


@dataclass(frozen=True, slots=True)
class RelayMove:
    """Where one contact's move to the burner's relay stands (``burner relay set``).

    ``state``: ``moved`` (the contact sends to our queue on that relay), ``pending`` (told,
    not yet confirmed: they switch when they next receive), ``queued`` (the news waits in
    the outbox: their relay was unreachable), ``waiting`` (no queue there yet: run again).
    """

    alias: str
    state: str

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {"alias": self.alias, "state": self.state}


@dataclass(frozen=True, slots=True)
class BurnReport:
    """What a burn destroyed; ``queues_failed`` counts relay queues it could not delete."""

    name: str
    queues_deleted: int
    queues_failed: int
    #: Burn notices the contacts' relays took, and those they did not (unreachable).
    notices_sent: int = 0
    notices_failed: int = 0

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {
            "burned": self.name,
            "queues_deleted": self.queues_deleted,
            "queues_failed": self.queues_failed,
            "notices_sent": self.notices_sent,
            "notices_failed": self.notices_failed,
        }


@dataclass(frozen=True, slots=True)
class ContactRemoved:
    """A contact deleted: how much went with it, and whether its relay queue is gone yet.

    ``queue_deleted`` False: our relay was unreachable; the queue is deleted by a later run.
    """

    alias: str
    messages: int
    unsent: int
    queue_deleted: bool

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {
            "removed": self.alias,
            "messages": self.messages,
            "unsent": self.unsent,
            "queue_deleted": self.queue_deleted,
        }
