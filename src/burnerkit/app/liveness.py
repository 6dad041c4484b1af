"""What a contact's heartbeats tell us: its check-in window and when it was last heard (§17.8).

Kept apart from :mod:`burnerkit.app.checkin` (this burner's own switch) because the
ledger, which stores what a delivery carries, notes each sign of life here, and the
check-in code seals heartbeats with the ledger's helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from burnerkit.app.content import MIN_CHECK_IN, Content, Heartbeat
from burnerkit.app.records import CONTACT_ID_SIZE, _Record, replace
from burnerkit.vault import VaultTransaction
from burnerkit.wire import Reader, Writer

__all__ = [
    "LIVENESS_KIND",
    "PeerLiveness",
    "forget_peer",
    "grace",
    "heartbeat_period",
    "note_heard",
    "silent_since",
]

#: The vault kind of what a contact's heartbeats told us, keyed by contact id.
LIVENESS_KIND: Final = "liveness"


class _Reader(Protocol):
    def get(self, kind: str, key: bytes) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class PeerLiveness(_Record):
    """A contact's dead-man switch as its heartbeats tell it.

    ``heard_at``: the newest authenticated ``sent_at`` (seconds, never beyond our clock
    when it arrived) of a heartbeat or message from the contact. ``silent_at``: when the
    ``silent`` event of the current silence was recorded (0: none recorded).
    """

    contact_id: bytes
    window: int
    heard_at: int
    silent_at: int = 0

    def __post_init__(self) -> None:
        if len(self.contact_id) != CONTACT_ID_SIZE:
            raise ValueError(f"contact_id must be {CONTACT_ID_SIZE} bytes")
        if self.window < MIN_CHECK_IN:
            raise ValueError("a check-in window is at least a minute")

    @property
    def silent_after(self) -> int:
        """When the contact counts as silent unless heard from before."""
        return self.heard_at + self.window + grace(self.window)

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.contact_id).u32(self.window).u64(self.heard_at).u64(self.silent_at)

    @classmethod
    def read(cls, r: Reader) -> PeerLiveness:  # noqa: D102
        return cls(r.take(CONTACT_ID_SIZE), r.u32(), r.u64(), r.u64())


def heartbeat_period(window: int) -> int:
    """Seconds between two rounds of heartbeats (and check-ins while following): a quarter window."""
    return max(1, window // 4)


def grace(window: int) -> int:
    """How long past its window a contact may stay unheard before it counts as silent.

    One heartbeat period: a peer that checks in just before each deadline sends its
    heartbeats up to a window apart, and one sealed while its relay was unreachable goes
    out with the next flush, stamped with the time it was sealed.
    """
    return heartbeat_period(window)


def note_heard(
    tx: VaultTransaction, contact_id: bytes, content: Content, sent_at_ms: int, now: float
) -> None:
    """An authentic message from ``contact_id`` arrived: note when it was sent.

    A heartbeat starts (or updates) what we know of the contact's switch; any other
    message counts as a sign of life only for a contact whose heartbeats we already know.
    The authenticated ``sent_at`` is used, not the arrival: a relay that holds a heartbeat
    back cannot make a silent peer look alive later than it was. It never goes back (a
    late, older message changes nothing) and never beyond our clock (a peer's clock ahead
    cannot hide a later silence). Hearing from the contact past its silence ends it.
    """
    data = tx.get(LIVENESS_KIND, contact_id)
    old = None if data is None else PeerLiveness.from_bytes(data)
    if isinstance(content, Heartbeat):
        window = content.window
    elif old is not None:
        window = old.window
    else:
        return
    sent = min(sent_at_ms // 1000, int(now))
    heard = sent if old is None else max(old.heard_at, sent)
    fresh = PeerLiveness(contact_id, window, heard, 0 if old is None else old.silent_at)
    if fresh.silent_at and now < fresh.silent_after:
        fresh = replace(fresh, silent_at=0)
    if fresh != old:
        tx.put(LIVENESS_KIND, contact_id, fresh.to_bytes())


def silent_since(reader: _Reader, contact_id: bytes, now: float) -> int:
    """When the contact was last heard from, if it is silent now; else 0."""
    data = reader.get(LIVENESS_KIND, contact_id)
    if data is None:
        return 0
    liveness = PeerLiveness.from_bytes(data)
    return liveness.heard_at if now >= liveness.silent_after else 0


def forget_peer(tx: VaultTransaction, contact_id: bytes) -> None:
    """Drop what a removed contact's heartbeats told us."""
    tx.delete(LIVENESS_KIND, contact_id)
