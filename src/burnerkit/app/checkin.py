"""The dead-man switch: check-ins, heartbeats and silent contacts (docs/protocol.md §17.8).

Theory of operation
-------------------
A burner minted with ``--check-in WINDOW`` keeps a :class:`CheckIn` record. Every unlock
(:meth:`~burnerkit.app.messenger.Messenger.open`) first compares the time floor
(``Messenger.now()``, which turning the clock back does not lower) with the last check-in
plus the window: past it, the burner burns before anything else; within it, the unlock
is recorded as a check-in, a write even for a command that only reads (the one exception
to §15.11's read-only rule, for the burners that asked for it). ``inbox --follow`` and
``burner chat`` check in again every quarter window while they run.

A check-in also seals a :class:`~burnerkit.app.content.Heartbeat` carrying the window for
each contact into the outbox, at most once a quarter window, so the contacts know when to
worry. A contact that receives one keeps a
:class:`~burnerkit.app.liveness.PeerLiveness` record: the peer's window
and the newest authenticated ``sent_at`` heard from it (a heartbeat or any message, never
later than our own clock). Once our time passes that plus the window plus :func:`grace`,
the contact is *silent*: shown so by ``contacts``, ``inbox`` and the chat, and one
``silent`` event is recorded per silence by the runs that receive. It clears by itself
when the peer is heard from again.

No relay I/O here: the Messenger calls these functions inside its transactions and
flushes the outbox after them.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Final

from burnerkit.app.content import MIN_CHECK_IN, Heartbeat
from burnerkit.app.durations import format_duration
from burnerkit.app.ledger import SEND_ID_SIZE, RecordReader, all_contacts, record_event
from burnerkit.app.liveness import LIVENESS_KIND, PeerLiveness, heartbeat_period
from burnerkit.app.records import EventKind, OutboxEntry, _Record, replace
from burnerkit.crypto.rng import Random
from burnerkit.errors import UsageError
from burnerkit.protocol.session import Session
from burnerkit.vault import VaultTransaction
from burnerkit.wire import Reader, Writer

__all__ = [
    "CHECKIN_KIND",
    "MIN_CHECK_IN",
    "TICK",
    "CheckIn",
    "check_in",
    "check_window",
    "overdue",
    "own_check_in",
    "record_silences",
    "start",
    "tick_period",
]

#: The vault kind of this burner's own switch (one record, key :data:`_KEY`).
CHECKIN_KIND: Final = "checkin"
_KEY: Final = b"burner"
#: Seconds between two looks for silent contacts while following, at most.
TICK: Final = 60.0


@dataclass(frozen=True, slots=True)
class CheckIn(_Record):
    """This burner's dead-man switch: its window, its last check-in and its last heartbeats.

    ``checked_in_at`` and ``heartbeat_at`` are on the time floor (seconds); ``heartbeat_at``
    is 0 until the first heartbeats are sealed.
    """

    window: int
    checked_in_at: int
    heartbeat_at: int = 0

    def __post_init__(self) -> None:
        if self.window < MIN_CHECK_IN:
            raise ValueError("a check-in window is at least a minute")

    @property
    def deadline(self) -> int:
        """When the burner burns unless unlocked before."""
        return self.checked_in_at + self.window

    def write(self, w: Writer) -> None:  # noqa: D102
        w.u32(self.window).u64(self.checked_in_at).u64(self.heartbeat_at)

    @classmethod
    def read(cls, r: Reader) -> CheckIn:  # noqa: D102
        return cls(r.u32(), r.u64(), r.u64())


def check_window(window: int, lifetime: int) -> None:
    """Refuse a check-in window that makes no sense for a burner living ``lifetime`` seconds.

    Raises:
        UsageError: shorter than a minute, or not shorter than the burner's lifetime.
    """
    if window < MIN_CHECK_IN:
        raise UsageError(
            f"a check-in window of {format_duration(window)} is too short: at least 1m, "
            "or the burner burns while its passphrase is typed"
        )
    if window >= lifetime:
        raise UsageError(
            f"a check-in window of {format_duration(window)} is not shorter than the burner's "
            f"lifetime ({format_duration(lifetime)}): it would never fire; use a shorter --check-in "
            "or a longer --expires"
        )


# -- this burner's own switch ----------------------------------------------------------------


def start(tx: VaultTransaction, window: int, now: int) -> None:
    """Arm the switch of a burner just minted: its first check-in is its mint."""
    tx.put(CHECKIN_KIND, _KEY, CheckIn(window, now).to_bytes())


def own_check_in(reader: RecordReader) -> CheckIn | None:
    """This burner's switch, if it has one."""
    data = reader.get(CHECKIN_KIND, _KEY)
    return None if data is None else CheckIn.from_bytes(data)


def overdue(reader: RecordReader, now: float) -> CheckIn | None:
    """The switch, if ``now`` (the time floor) is past its deadline: the burner must burn."""
    switch = own_check_in(reader)
    return switch if switch is not None and now >= switch.deadline else None


def check_in(tx: VaultTransaction, rng: Random, now: float) -> bool:
    """Record a check-in at ``now``; seal heartbeats into the outbox if a round is due.

    A contact gets no heartbeat while its identity key changed (it may not be who it
    was) or while something for it already waits in the outbox: that will say we are
    alive when it arrives, and heartbeats do not pile up behind a relay that is down.

    Returns:
        Whether heartbeats were put in the outbox (the caller flushes it).
    """
    switch = own_check_in(tx)
    if switch is None:
        return False
    at = int(now)
    due = at - switch.heartbeat_at >= heartbeat_period(switch.window)
    queued = False
    if due:
        waiting = {OutboxEntry.from_bytes(data).contact_id for _, data in tx.items("outbox")}
        content = Heartbeat(switch.window).encode()
        for contact in all_contacts(tx):
            if contact.burned or contact.key_changed or contact.contact_id in waiting:
                continue
            session = Session.from_bytes(contact.session, rng=rng)
            envelope = session.send(content, now=now)
            entry = OutboxEntry(
                rng.random_bytes(SEND_ID_SIZE),
                contact.contact_id,
                contact.peer,
                envelope,
                int(now * 1000),
                b"",
            )
            tx.put("contact", contact.contact_id, replace(contact, session=session.to_bytes()).to_bytes())
            tx.put("outbox", entry.send_id, entry.to_bytes())
            queued = True
    tx.put(
        CHECKIN_KIND,
        _KEY,
        CheckIn(
            switch.window, max(switch.checked_in_at, at), at if queued else switch.heartbeat_at
        ).to_bytes(),
    )
    return queued


# -- contacts' switches ----------------------------------------------------------------------


def record_silences(tx: VaultTransaction, rng: Random, now: float) -> bool:
    """Record one ``silent`` event for each contact that went silent since the last look.

    Returns:
        Whether any was recorded (when none was, nothing was written).
    """
    recorded = False
    contacts = {c.contact_id for c in all_contacts(tx)}
    for key, data in tx.items(LIVENESS_KIND):
        liveness = PeerLiveness.from_bytes(data)
        if liveness.silent_at or now < liveness.silent_after:
            continue
        if not any(hmac.compare_digest(key, cid) for cid in contacts):
            continue  # a contact removed meanwhile: nobody to warn about
        since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(liveness.heard_at))
        record_event(
            tx,
            rng,
            liveness.contact_id,
            EventKind.SILENT,
            f"no sign of life since {since}, past its check-in window of {format_duration(liveness.window)}: "
            "it was not unlocked or could not reach its relay; if it was taken, it burns when next started",
            now,
        )
        tx.put(LIVENESS_KIND, key, replace(liveness, silent_at=int(now)).to_bytes())
        recorded = True
    return recorded


def tick_period(reader: RecordReader) -> float:
    """Seconds between two check-ins and looks for silent contacts while following."""
    switch = own_check_in(reader)
    return TICK if switch is None else min(TICK, float(heartbeat_period(switch.window)))
