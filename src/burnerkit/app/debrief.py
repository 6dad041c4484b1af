"""The debrief: every anomaly of a burner's life, without content (docs/protocol.md §17.10).

The event records (``event`` in the vault, :class:`~burnerkit.app.records.EventRecord`)
are the debrief's only source: one is written in the transaction that noticed the
anomaly and none is ever deleted while the burner lives (clearing an alert clears the
``alert`` record only; removing a contact keeps its events). This module turns them into
a report, grouped per contact, with a count per kind.

It knows no kind by name: it counts every :class:`~burnerkit.app.records.EventKind`,
so a kind added to that enum appears in the debrief, with a zero count until it happens,
without a change here. That is also what makes the JSON form stable for the issuing
office: a reader keys on ``kind`` strings and ``version``, never on positions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from burnerkit.app.records import ALERT_KINDS, EventKind, EventRecord

__all__ = ["DEBRIEF_VERSION", "Debrief", "DebriefContact", "DebriefEvent", "build_debrief"]

#: The ``version`` of the JSON form. A reader refuses a version it does not know; fields are
#: only ever added within a version, never renamed, removed or given another meaning.
DEBRIEF_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class DebriefEvent:
    """One anomaly: when, about whom (``contact``), what, and its detail (never content).

    ``contact`` is the contact's alias, ``""`` when the anomaly concerns no contact (this
    burner's own queues, an invitation), or ``removed contact N`` for a contact deleted
    since (its alias went with it; N tells removed contacts apart within one debrief).
    """

    at: int
    contact: str
    kind: str
    detail: str
    alert: bool

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {
            "at": self.at,
            "contact": self.contact,
            "kind": self.kind,
            "detail": self.detail,
            "alert": self.alert,
        }


@dataclass(frozen=True, slots=True)
class DebriefContact:
    """What happened around one contact (or none: ``contact == ""``), and a one-line summary."""

    contact: str
    removed: bool
    first_at: int
    last_at: int
    #: kind -> how many, only the kinds that happened, in :class:`EventKind` order
    counts: dict[str, int]
    alerts: int

    @property
    def summary(self) -> str:
        """``bob: 1 fork, 2 gap (3 alerts)``: who, and how many of each kind."""
        who = self.contact or "this burner"
        kinds = ", ".join(f"{count} {kind}" for kind, count in self.counts.items())
        tail = f" ({self.alerts} alert{'s' if self.alerts != 1 else ''})" if self.alerts else ""
        return f"{who}: {kinds}{tail}"

    def to_json(self) -> dict[str, Any]:  # noqa: D102
        return {
            "contact": self.contact,
            "removed": self.removed,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "counts": dict(self.counts),
            "alerts": self.alerts,
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class Debrief:
    """The whole report: totals per kind, one summary per contact, every event oldest first."""

    burner: str
    generated_at: int
    #: every :class:`EventKind` value -> how many (zero included: what was watched for)
    kinds: dict[str, int]
    contacts: list[DebriefContact]
    events: list[DebriefEvent]

    @property
    def alerts(self) -> int:
        """How many of the events are alert kinds (a clone, a replay, a forgery, ...)."""
        return sum(1 for event in self.events if event.alert)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form (docs/protocol.md §17.10)."""
        return {
            "type": "debrief",
            "version": DEBRIEF_VERSION,
            "burner": self.burner,
            "generated_at": self.generated_at,
            "total": len(self.events),
            "alerts": self.alerts,
            "kinds": dict(self.kinds),
            "contacts": [contact.to_json() for contact in self.contacts],
            "events": [event.to_json() for event in self.events],
        }


def build_debrief(
    burner: str, records: Iterable[EventRecord], aliases: Mapping[bytes, str], now: float
) -> Debrief:
    """The debrief of ``records``; ``aliases`` maps the contacts that still exist to their alias."""
    ordered = sorted(records, key=lambda e: (e.at, e.event_id))
    removed: dict[bytes, str] = {}

    def name_of(contact_id: bytes) -> str:
        if not contact_id:
            return ""
        if contact_id in aliases:
            return aliases[contact_id]
        return removed.setdefault(contact_id, f"removed contact {len(removed) + 1}")

    events = [
        DebriefEvent(e.at, name_of(e.contact_id), e.kind.value, e.detail, e.kind in ALERT_KINDS)
        for e in ordered
    ]
    groups: dict[bytes, list[EventRecord]] = {}
    for e in ordered:
        groups.setdefault(e.contact_id, []).append(e)
    contacts = []
    for contact_id, group in groups.items():
        counted = Counter(e.kind for e in group)
        contacts.append(
            DebriefContact(
                name_of(contact_id),
                bool(contact_id) and contact_id not in aliases,
                group[0].at,
                group[-1].at,
                {kind.value: counted[kind] for kind in EventKind if counted[kind]},
                sum(1 for e in group if e.kind in ALERT_KINDS),
            )
        )
    # The burner's own line first, then contacts by name: a stable order for people and diffs.
    contacts.sort(key=lambda c: (c.contact != "", c.removed, c.contact))
    totals = Counter(e.kind for e in ordered)
    return Debrief(burner, int(now), {kind.value: totals[kind] for kind in EventKind}, contacts, events)
