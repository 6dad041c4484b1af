"""The app's vault records: what a burner keeps, one sealed record each (docs/protocol.md §17.4).

The vault (:mod:`burnerkit.vault`) seals opaque bytes under a kind and a key; this
module gives those bytes a layout. Every record starts with its own version byte so a
later layout can still read the earlier one.

| kind      | key                        | record                                   |
|-----------|----------------------------|------------------------------------------|
| `profile` | `b"burner"`                | :class:`Profile`                         |
| `contact` | contact id (16)            | :class:`Contact`                         |
| `invite`  | invite id (16)             | :class:`Invite`                          |
| `message` | contact id ‖ message id (8) | :class:`StoredMessage`                  |
| `outbox`  | send id (16)               | :class:`OutboxEntry`                     |
| `event`   | event id (16)              | :class:`EventRecord`                     |
| `orphan`  | recipient id (24)          | :class:`Orphan`                          |
| `alert`   | contact id (16)            | :class:`Alert`                           |
| `pending` | recipient id (24) ‖ u64 order | :class:`PendingDelivery`              |
| `delivery`| recipient id (24)          | :class:`LastDelivery`                    |
| `issuer`  | `b"issuer"`                | :class:`burnerkit.app.issuer.IssuerRecord` (§17.9) |
| `escrow`  | escrow id (16)             | :class:`burnerkit.app.escrow.HeldEscrow` (§17.12.7) |
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import ClassVar, Final, Self

from burnerkit.app.addresses import QueueAddress
from burnerkit.errors import RemoteProtocolError, VaultCorruptedError
from burnerkit.relay.client import QueueCredentials
from burnerkit.wire import CodecError, Reader, Writer

__all__ = [
    "ALERT_KINDS",
    "CONTACT_ID_SIZE",
    "SENDER_KEY_SIZE",
    "Alert",
    "Contact",
    "EventKind",
    "EventRecord",
    "Invite",
    "LastDelivery",
    "Orphan",
    "OutboxEntry",
    "PROFILE_KEY",
    "PendingDelivery",
    "Profile",
    "StoredMessage",
    "replace",
]

CONTACT_ID_SIZE: Final = 16
#: An Ed25519 seed: the key our SENDs to a contact's queue are signed with (§14.8).
SENDER_KEY_SIZE: Final = 32
_RECIPIENT_ID_SIZE: Final = 24
_MSG_ID_SIZE: Final = 24
_ID16: Final = 16
_MESSAGE_ID_SIZE: Final = 8
_V1: Final = 1
_V2: Final = 2
_V3: Final = 3
#: The vault key of the one ``profile`` record.
PROFILE_KEY: Final = b"burner"


def _check_size(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes")


def _w_str(w: Writer, text: str) -> None:
    w.var16(text.encode())


def _r_str(r: Reader) -> str:
    return r.var16().decode()


def _r_bool(r: Reader) -> bool:
    value = r.u8()
    if value > 1:
        raise CodecError("bad boolean")
    return bool(value)


class _Record:
    """Shared parse wrapper: a record that does not parse is a corrupted vault.

    ``VERSION`` is the layout a record is written in; :meth:`read_version` reads the
    earlier layouts a vault may still hold (a record is rewritten in the current one the
    next time it changes).
    """

    __slots__ = ()
    VERSION: ClassVar[int] = _V1

    def write(self, w: Writer) -> None:
        raise NotImplementedError

    @classmethod
    def read(cls, r: Reader) -> Self:
        raise NotImplementedError

    @classmethod
    def older_layouts(cls) -> dict[int, Callable[[Reader], Self]]:
        """The reader of each earlier layout a vault may still hold; none unless overridden."""
        return {}

    @classmethod
    def read_version(cls, r: Reader, version: int) -> Self:
        """Read the fields of layout ``version``: the current one, or an earlier one."""
        if version == cls.VERSION:
            return cls.read(r)
        reader = cls.older_layouts().get(version)
        if reader is None:
            raise CodecError("unknown record version")
        return reader(r)

    def to_bytes(self) -> bytes:
        """``u8 version ‖ fields`` (docs/protocol.md §17.4)."""
        w = Writer().u8(self.VERSION)
        self.write(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Parse :meth:`to_bytes` output.

        Raises:
            VaultCorruptedError: the record does not parse (authentic bytes that are not
                a record of this kind: a bug or a vault written by a newer version).
        """
        try:
            r = Reader(bytes(data))
            record = cls.read_version(r, r.u8())
            r.end()
            return record
        except (CodecError, UnicodeDecodeError, ValueError, RemoteProtocolError) as exc:
            raise VaultCorruptedError(f"a {cls.__name__.lower()} record does not parse") from exc


@dataclass(frozen=True, slots=True)
class Profile(_Record):
    """The burner itself: its name, default relay and validity window.

    ``clock_mark`` is the latest time any run has seen; time never goes below it, so
    turning the clock back does not revive an expired burner.
    """

    name: str
    relay_url: str
    created_at: int
    expires_at: int
    clock_mark: int

    def write(self, w: Writer) -> None:  # noqa: D102
        _w_str(w, self.name)
        _w_str(w, self.relay_url)
        w.u64(self.created_at).u64(self.expires_at).u64(self.clock_mark)

    @classmethod
    def read(cls, r: Reader) -> Profile:  # noqa: D102
        return cls(_r_str(r), _r_str(r), r.u64(), r.u64(), r.u64())


@dataclass(frozen=True, slots=True)
class Contact(_Record):
    """One contact: our queue for them, their queue for us, the session and its trust.

    ``identity`` is their per-contact public identity (64 bytes) as first paired; a
    re-pairing under the same alias with another identity sets ``key_changed``, which
    blocks sending until the safety code is verified again. ``sender_key`` (layout 2) is
    the Ed25519 seed our SENDs to ``peer`` are signed with, which locks their
    sender-secured queue to us (§14.8); empty for a contact paired by layout 1, whose
    queue takes unsigned SENDs. ``next_queue`` (layout 3) is the queue we made for them on
    the relay we are moving to, announced by a Move and not yet confirmed by a delivery on
    it (docs/protocol.md §17.6, relay moves); None when no move is under way. ``burned``
    (layout 4): the contact sent a verified burn notice; its session state is dropped
    (``session`` empty) and nothing is sent to it any more (docs/protocol.md §17.7).
    ``peer_expires_at`` (layout 4, seconds since the epoch; 0: not told): the contact's
    burner expires then, and what it sends later is refused (§17.7, expiry).
    ``expiry_told`` (layout 4): we told the contact our own expiry (in our Hello or a Text).
    """

    VERSION: ClassVar[int] = 4

    contact_id: bytes
    alias: str
    created_at: int
    queue_relay: str
    queue: QueueCredentials = field(repr=False)
    peer: QueueAddress
    session: bytes = field(repr=False)
    identity: bytes = field(repr=False)
    verified: bool = False
    key_changed: bool = False
    timer: int = 0
    burn_on_read: bool = False
    sender_key: bytes = field(default=b"", repr=False)
    next_queue_relay: str = ""
    next_queue: QueueCredentials | None = field(default=None, repr=False)
    burned: bool = False
    peer_expires_at: int = 0
    expiry_told: bool = False

    def __post_init__(self) -> None:
        _check_size("contact_id", self.contact_id, CONTACT_ID_SIZE)
        if self.sender_key:
            _check_size("sender_key", self.sender_key, SENDER_KEY_SIZE)
        if bool(self.next_queue_relay) != (self.next_queue is not None):
            raise ValueError("a next queue has both a relay and credentials, or neither")

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.contact_id)
        _w_str(w, self.alias)
        w.u64(self.created_at)
        _w_str(w, self.queue_relay)
        w.var16(self.queue.to_bytes()).var16(self.peer.to_bytes()).var32(self.session)
        w.var16(self.identity)
        w.u8(self.verified).u8(self.key_changed).u32(self.timer).u8(self.burn_on_read)
        w.var16(self.sender_key)
        _w_str(w, self.next_queue_relay)
        w.var16(b"" if self.next_queue is None else self.next_queue.to_bytes())
        w.u8(self.burned).u64(self.peer_expires_at).u8(self.expiry_told)

    @classmethod
    def read(cls, r: Reader) -> Contact:  # noqa: D102
        contact = cls._read_v3(r)
        return replace(contact, burned=_r_bool(r), peer_expires_at=r.u64(), expiry_told=_r_bool(r))

    @classmethod
    def older_layouts(cls) -> dict[int, Callable[[Reader], Contact]]:  # noqa: D102
        return {_V1: cls._read_v1, _V2: cls._read_v2, _V3: cls._read_v3}

    @classmethod
    def _read_v3(cls, r: Reader) -> Contact:
        contact = cls._read_v2(r)
        relay, creds = _r_str(r), r.var16()
        return replace(
            contact, next_queue_relay=relay, next_queue=QueueCredentials.from_bytes(creds) if creds else None
        )

    @classmethod
    def _read_v2(cls, r: Reader) -> Contact:
        return replace(cls._read_v1(r), sender_key=r.var16())

    @classmethod
    def _read_v1(cls, r: Reader) -> Contact:
        return cls(
            contact_id=r.take(CONTACT_ID_SIZE),
            alias=_r_str(r),
            created_at=r.u64(),
            queue_relay=_r_str(r),
            queue=QueueCredentials.from_bytes(r.var16()),
            peer=QueueAddress.from_bytes(r.var16()),
            session=r.var32(),
            identity=r.var16(),
            verified=_r_bool(r),
            key_changed=_r_bool(r),
            timer=r.u32(),
            burn_on_read=_r_bool(r),
        )


@dataclass(frozen=True, slots=True)
class Invite(_Record):
    """An invitation we handed out and the queue its acceptance will arrive on.

    ``verified``: the invitation travelled over a channel the short code authenticated,
    so the contact it makes starts verified. ``link_queue`` (layout 2): the queue on the
    same relay where its short link's sealed copy waits (docs/protocol.md §17.2), deleted
    once the invitation is accepted, withdrawn or expired; None without a short link.
    """

    VERSION: ClassVar[int] = 2

    invite_id: bytes
    alias: str
    created_at: int
    expires_at: int
    queue_relay: str
    queue: QueueCredentials = field(repr=False)
    pending: bytes = field(repr=False)
    verified: bool = False
    link_queue: QueueCredentials | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_size("invite_id", self.invite_id, _ID16)

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.invite_id)
        _w_str(w, self.alias)
        w.u64(self.created_at).u64(self.expires_at)
        _w_str(w, self.queue_relay)
        w.var16(self.queue.to_bytes()).var32(self.pending).u8(self.verified)
        w.var16(b"" if self.link_queue is None else self.link_queue.to_bytes())

    @classmethod
    def read(cls, r: Reader) -> Invite:  # noqa: D102
        invite = cls._read_v1(r)
        link = r.var16()
        return replace(invite, link_queue=QueueCredentials.from_bytes(link) if link else None)

    @classmethod
    def older_layouts(cls) -> dict[int, Callable[[Reader], Invite]]:  # noqa: D102
        return {_V1: cls._read_v1}

    @classmethod
    def _read_v1(cls, r: Reader) -> Invite:
        return cls(
            invite_id=r.take(16),
            alias=_r_str(r),
            created_at=r.u64(),
            expires_at=r.u64(),
            queue_relay=_r_str(r),
            queue=QueueCredentials.from_bytes(r.var16()),
            pending=r.var32(),
            verified=_r_bool(r),
        )


@dataclass(frozen=True, slots=True)
class StoredMessage(_Record):
    """A message of a conversation, either direction.

    ``sent_at`` is the sender's clock in milliseconds (not trusted, shown as is);
    ``expires_at`` (seconds, 0: never) comes from the disappearing timer; ``shown``
    marks an incoming message the inbox has already displayed, so it never shows twice.
    """

    message_id: bytes
    contact_id: bytes
    outgoing: bool
    seq: int
    sent_at: int
    received_at: int
    text: str = field(repr=False)
    expires_at: int = 0
    burn_on_read: bool = False
    shown: bool = False
    delivered: bool = False

    def __post_init__(self) -> None:
        _check_size("message_id", self.message_id, _MESSAGE_ID_SIZE)
        _check_size("contact_id", self.contact_id, CONTACT_ID_SIZE)

    @property
    def key(self) -> bytes:
        """The vault key: contact id ‖ message id."""
        return self.contact_id + self.message_id

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.message_id).raw(self.contact_id).u8(self.outgoing).u64(self.seq)
        w.u64(self.sent_at).u64(self.received_at)
        w.var32(self.text.encode())
        w.u64(self.expires_at).u8(self.burn_on_read).u8(self.shown).u8(self.delivered)

    @classmethod
    def read(cls, r: Reader) -> StoredMessage:  # noqa: D102
        return cls(
            message_id=r.take(8),
            contact_id=r.take(CONTACT_ID_SIZE),
            outgoing=_r_bool(r),
            seq=r.u64(),
            sent_at=r.u64(),
            received_at=r.u64(),
            text=r.var32().decode(),
            expires_at=r.u64(),
            burn_on_read=_r_bool(r),
            shown=_r_bool(r),
            delivered=_r_bool(r),
        )


@dataclass(frozen=True, slots=True)
class OutboxEntry(_Record):
    """An envelope sealed and stored but not yet acknowledged by the peer's relay.

    ``send_id`` is the relay's idempotency key, kept across retries and restarts so a
    retry never stores the message twice.
    """

    send_id: bytes
    contact_id: bytes
    peer: QueueAddress
    envelope: bytes = field(repr=False)
    created_at: int  #: milliseconds, so entries of one second keep their order
    message_key: bytes

    def __post_init__(self) -> None:
        _check_size("send_id", self.send_id, _ID16)
        _check_size("contact_id", self.contact_id, CONTACT_ID_SIZE)

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.send_id).raw(self.contact_id).var16(self.peer.to_bytes()).var32(self.envelope)
        w.u64(self.created_at).var16(self.message_key)

    @classmethod
    def read(cls, r: Reader) -> OutboxEntry:  # noqa: D102
        return cls(
            send_id=r.take(16),
            contact_id=r.take(CONTACT_ID_SIZE),
            peer=QueueAddress.from_bytes(r.var16()),
            envelope=r.var32(),
            created_at=r.u64(),
            message_key=r.var16(),
        )


class EventKind(enum.Enum):
    """Anomalies kept for the debrief: facts about messages, never their content."""

    GAP = "gap"  #: messages missing in the sequence
    REORDERED = "reordered"  #: a message arrived after a later one
    FORK = "fork"  #: the hash chain forked: two devices share one state (a clone)
    REPLAY = "replay"  #: a message already processed arrived again
    UNDECRYPTABLE = "undecryptable"  #: a delivery did not authenticate
    MALFORMED = "malformed"  #: an authentic message of no known kind
    COUNTER_BOMB = "counter-bomb"  #: a counter jump beyond the skip limit
    DISPLACED = "displaced"  #: another connection subscribed to our queue (clone alert)
    UNREADABLE_DELIVERY = "unreadable-delivery"  #: the relay's queue layer did not open
    KEY_CHANGED = "key-changed"  #: a contact re-paired with another identity key
    SECOND_ACCEPTANCE = "second-acceptance"  #: a one-time invitation was accepted again
    UNDELIVERABLE = "undeliverable"  #: the peer's relay no longer has their queue
    CODE_MISMATCH = "code-mismatch"  #: a safety code compared by the user did not match
    SENDER_REFUSED = "sender-refused"  #: the relay refused another sender on our queue
    INVITATION_USED = "invitation-used"  #: our acceptance was refused: someone accepted first
    ABANDONED = "abandoned"  #: a delivery kept for an invitation that expired unaccepted
    BURNED = "burned"  #: a contact burned its burner (a verified burn notice)
    EXPIRED_PEER = "expired-peer"  #: a message from a contact past its expiry, refused
    SILENT = "silent"  #: a contact with a dead-man switch sent no heartbeat within its window (§17.8)
    FORGED_ORDER = "forged-order"  #: a burn order forged, replayed, stale or misaddressed: ignored (§17.9)
    DURESS = "duress"  #: a contact unlocked its burner with its duress passphrase (§17.11)
    HELD_KEY = "held-key"  #: a contact left its vault key with us for a border crossing (§17.12)


#: The anomalies that put a contact on alert (shown by ``contacts``, ``history`` and
#: ``inbox``, and no longer verified) until the user clears it; in this order on disk.
ALERT_KINDS: Final = (
    EventKind.FORK,
    EventKind.DISPLACED,
    EventKind.REPLAY,
    EventKind.UNDECRYPTABLE,
    EventKind.KEY_CHANGED,
    EventKind.SECOND_ACCEPTANCE,
    EventKind.CODE_MISMATCH,
    EventKind.SENDER_REFUSED,
    EventKind.INVITATION_USED,
    EventKind.COUNTER_BOMB,
    EventKind.DURESS,
)


@dataclass(frozen=True, slots=True)
class EventRecord(_Record):
    """One anomaly: when, which contact (empty if none), what, and a short detail."""

    event_id: bytes
    contact_id: bytes
    at: int
    kind: EventKind
    detail: str

    def __post_init__(self) -> None:
        _check_size("event_id", self.event_id, _ID16)

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.event_id).var16(self.contact_id).u64(self.at)
        _w_str(w, self.kind.value)
        _w_str(w, self.detail)

    @classmethod
    def read(cls, r: Reader) -> EventRecord:  # noqa: D102
        return cls(r.take(16), r.var16(), r.u64(), EventKind(_r_str(r)), _r_str(r))


@dataclass(frozen=True, slots=True)
class Orphan(_Record):
    """A queue of ours nobody uses any more (a re-paired contact, an expired invitation).

    Kept until its relay confirms the deletion, so a relay that is down now loses it later.
    ``contact_id`` (layout 2) names the contact a relay move retired it from: what that
    contact sent to it before switching is still theirs until the queue is deleted
    (docs/protocol.md §17.6, relay moves); empty for every other orphan. ``keep_until``
    (layout 3, seconds since the epoch; 0: delete at once): a used short link's queue stays
    until its invitation expires, so a second use of the link is refused where it alerts
    us (docs/protocol.md §17.2); a burn deletes it all the same.
    """

    VERSION: ClassVar[int] = 3

    relay_url: str
    queue: QueueCredentials = field(repr=False)
    contact_id: bytes = b""
    keep_until: int = 0

    def __post_init__(self) -> None:
        if self.contact_id:
            _check_size("contact_id", self.contact_id, CONTACT_ID_SIZE)

    def write(self, w: Writer) -> None:  # noqa: D102
        _w_str(w, self.relay_url)
        w.var16(self.queue.to_bytes())
        w.var16(self.contact_id)
        w.u64(self.keep_until)

    @classmethod
    def read(cls, r: Reader) -> Orphan:  # noqa: D102
        return replace(cls._read_v2(r), keep_until=r.u64())

    @classmethod
    def older_layouts(cls) -> dict[int, Callable[[Reader], Orphan]]:  # noqa: D102
        return {_V1: cls._read_v1, _V2: cls._read_v2}

    @classmethod
    def _read_v2(cls, r: Reader) -> Orphan:
        return replace(cls._read_v1(r), contact_id=r.var16())

    @classmethod
    def _read_v1(cls, r: Reader) -> Orphan:
        return cls(_r_str(r), QueueCredentials.from_bytes(r.var16()))


@dataclass(frozen=True, slots=True)
class Alert(_Record):
    """A contact's alerts not yet cleared: which kinds, first and last seen.

    Kept apart from the :class:`Contact` so that recording an alert never races with
    the transaction that advances the contact's session.
    """

    kinds: frozenset[EventKind]
    first_at: int
    last_at: int

    def __post_init__(self) -> None:
        if not self.kinds or not self.kinds <= set(ALERT_KINDS):
            raise ValueError("an alert names one or more alert kinds")

    def write(self, w: Writer) -> None:  # noqa: D102
        w.u16(sum(1 << i for i, kind in enumerate(ALERT_KINDS) if kind in self.kinds))
        w.u64(self.first_at).u64(self.last_at)

    @classmethod
    def read(cls, r: Reader) -> Alert:  # noqa: D102
        bits = r.u16()
        if bits >> len(ALERT_KINDS) or not bits:
            raise CodecError("bad alert kinds")
        kinds = frozenset(kind for i, kind in enumerate(ALERT_KINDS) if bits >> i & 1)
        return cls(kinds, r.u64(), r.u64())

    def with_kind(self, kind: EventKind, at: int) -> Alert:
        """This alert with ``kind`` added, seen at ``at``."""
        return Alert(self.kinds | {kind}, self.first_at, max(self.last_at, at))

    def sorted_kinds(self) -> list[str]:
        """The kinds' names, in :data:`ALERT_KINDS` order."""
        return [kind.value for kind in ALERT_KINDS if kind in self.kinds]


@dataclass(frozen=True, slots=True)
class PendingDelivery(_Record):
    """A delivery that arrived on an invitation's queue before the acceptance it follows.

    It was acknowledged to the relay once stored here; the acceptance's transaction
    opens it with the new session (docs/protocol.md §17.6). ``order`` keeps arrival order.
    """

    recipient_id: bytes
    order: int
    received_at: int
    envelope: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_size("recipient_id", self.recipient_id, _RECIPIENT_ID_SIZE)

    @property
    def key(self) -> bytes:
        """The vault key: recipient id ‖ u64(order), so a queue's entries sort in order."""
        return self.recipient_id + self.order.to_bytes(8, "big")

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.recipient_id).u64(self.order).u64(self.received_at).var32(self.envelope)

    @classmethod
    def read(cls, r: Reader) -> PendingDelivery:  # noqa: D102
        return cls(r.take(_RECIPIENT_ID_SIZE), r.u64(), r.u64(), r.var32())


@dataclass(frozen=True, slots=True)
class LastDelivery(_Record):
    """The relay's id of the last delivery stored from one of our queues.

    Written in the transaction that stores the delivery, so that the relay delivering
    the same message again (our ACK was lost to a crash) is recognised as ours and
    acknowledged without a replay alert.
    """

    msg_id: bytes

    def __post_init__(self) -> None:
        _check_size("msg_id", self.msg_id, _MSG_ID_SIZE)

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.msg_id)

    @classmethod
    def read(cls, r: Reader) -> LastDelivery:  # noqa: D102
        return cls(r.take(_MSG_ID_SIZE))
