"""What one vault transaction does with the app's records: contacts, deliveries, anomalies.

No relay I/O here: the :class:`~burnerkit.app.messenger.Messenger` opens the transaction,
calls these functions inside it and talks to relays only before or after. Keeping them
apart makes the rule of the Messenger's theory of operation visible in the imports: what
decrypts and stores a delivery cannot acknowledge it.

The rule the Messenger relies on (docs/protocol.md §17.6): :func:`process_delivery`
always leaves the delivery accounted for in the transaction, as a stored message, as a
typed event with its reason, or as a :class:`PendingDelivery` kept for a contact whose
acceptance has not been processed yet; so acknowledging it after the commit never
loses it. Which record owns a queue is looked up inside the transaction, never taken
from before it: an acceptance processed a moment ago turns an invitation's queue into
its contact's.
"""

from __future__ import annotations

import hmac
from typing import Final, Protocol

from burnerkit.app import duress
from burnerkit.app.addresses import QueueAddress
from burnerkit.app.content import (
    BurnNotice,
    DuressKey,
    Escrow,
    Heartbeat,
    Hello,
    Move,
    MoveDone,
    Text,
    decode_content,
)
from burnerkit.app.escrow import drop_escrows, hold, note_back
from burnerkit.app.liveness import forget_peer, note_heard
from burnerkit.app.queues import QueueOwner, orphan_bytes, owners
from burnerkit.app.records import (
    ALERT_KINDS,
    CONTACT_ID_SIZE,
    PROFILE_KEY,
    SENDER_KEY_SIZE,
    Alert,
    Contact,
    EventKind,
    EventRecord,
    Invite,
    LastDelivery,
    Orphan,
    OutboxEntry,
    PendingDelivery,
    Profile,
    StoredMessage,
    replace,
)
from burnerkit.app.views import InboxMessage
from burnerkit.crypto.rng import Random
from burnerkit.errors import (
    DecryptionError,
    DuplicateMessageError,
    ForkDetectedError,
    HandshakeError,
    InvitationConsumedError,
    NotFoundError,
    RemoteProtocolError,
    TooManySkippedMessagesError,
    UsageError,
)
from burnerkit.protocol.envelope import EnvelopeType, envelope_type
from burnerkit.protocol.events import Event, ForkDetected, GapDetected, MessageReceived, MessageReordered
from burnerkit.protocol.handshake import PendingInvitation
from burnerkit.protocol.session import Session
from burnerkit.relay.client import QueueCredentials
from burnerkit.relay.url import check_relay_url
from burnerkit.vault import VaultTransaction

__all__ = [
    "IDENTITY_ALERTS",
    "MAX_PENDING",
    "SEND_ID_SIZE",
    "RecordReader",
    "alert_of",
    "all_contacts",
    "clear_alerts",
    "disown_retired",
    "drop_pending",
    "find_contact",
    "owner_of",
    "process_delivery",
    "raise_clock_floor",
    "record_event",
    "store_contact",
    "take_unshown",
]

#: Deliveries kept for one invitation's queue before its acceptance (the relay's quota).
MAX_PENDING: Final = 128
#: The relay's SEND idempotency key of an outbox entry (§14.4).
SEND_ID_SIZE: Final = 16
#: The alerts a matching safety code answers: it proves who holds the contact's keys.
#: Clone, replay and forgery alerts stay until the user clears them: a clone has the
#: same keys, so the code cannot tell it apart.
IDENTITY_ALERTS: Final = frozenset(
    {EventKind.KEY_CHANGED, EventKind.SECOND_ACCEPTANCE, EventKind.SENDER_REFUSED, EventKind.CODE_MISMATCH}
)


class RecordReader(Protocol):
    """The read side shared by a vault and one of its transactions."""

    def get(self, kind: str, key: bytes) -> bytes | None:
        """One record's value, or None."""
        ...

    def items(self, kind: str) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of a kind."""
        ...


def all_contacts(reader: RecordReader) -> list[Contact]:
    """Every contact, in no particular order."""
    return [Contact.from_bytes(data) for _, data in reader.items("contact")]


def find_contact(reader: RecordReader, alias: str) -> Contact:
    """The contact called ``alias``.

    Raises:
        NotFoundError: there is none.
    """
    for contact in all_contacts(reader):
        if hmac.compare_digest(contact.alias.encode(), alias.encode()):
            return contact
    raise NotFoundError(f"no contact named {alias!r} (see 'burner contacts')")


def record_event(
    tx: VaultTransaction, rng: Random, contact_id: bytes, kind: EventKind, detail: str, now: float
) -> None:
    """Keep one anomaly for the debrief (``contact_id`` empty when there is no contact).

    An alert kind (:data:`~burnerkit.app.records.ALERT_KINDS`) about a contact also puts
    that contact on alert until the user clears it.
    """
    record = EventRecord(rng.random_bytes(16), contact_id, int(now), kind, detail)
    tx.put("event", record.event_id, record.to_bytes())
    if contact_id and kind in ALERT_KINDS:
        old = alert_of(tx, contact_id)
        alert = Alert(frozenset({kind}), int(now), int(now)) if old is None else old.with_kind(kind, int(now))
        tx.put("alert", contact_id, alert.to_bytes())


def alert_of(reader: RecordReader, contact_id: bytes) -> Alert | None:
    """The contact's alerts not yet cleared, if any."""
    data = reader.get("alert", contact_id)
    return None if data is None else Alert.from_bytes(data)


def clear_alerts(tx: VaultTransaction, contact_id: bytes, kinds: frozenset[EventKind] | None = None) -> None:
    """Clear the contact's alerts of ``kinds`` (all when None)."""
    old = alert_of(tx, contact_id)
    if old is None:
        return
    left = frozenset() if kinds is None else old.kinds - kinds
    if left:
        tx.put("alert", contact_id, Alert(left, old.first_at, old.last_at).to_bytes())
    else:
        tx.delete("alert", contact_id)


def owner_of(reader: RecordReader, recipient_id: bytes) -> QueueOwner | None:
    """Who owns our queue ``recipient_id`` now: a contact, an open invitation, or nobody."""
    return owners(all_contacts(reader), reader.items("invite"), reader.items("orphan")).get(recipient_id)


def store_contact(
    tx: VaultTransaction,
    rng: Random,
    alias: str,
    session: Session,
    relay_url: str,
    creds: QueueCredentials,
    peer: QueueAddress,
    *,
    verified: bool,
    now: float,
    via: str,
) -> Contact:
    """Add a contact, or re-pair an existing alias (which flags a changed identity key).

    A re-paired alias keeps its contact id (and so its history); its old queue becomes an
    orphan, deleted from its relay by a later run. Either way the contact gets a fresh
    sender key: its first SEND to ``peer`` locks that sender-secured queue to it.
    """
    identity = session.their_identity.to_bytes()
    sender_key = rng.random_bytes(SENDER_KEY_SIZE)
    try:
        old: Contact | None = find_contact(tx, alias)
    except NotFoundError:
        old = None
    if old is None:
        contact = Contact(
            contact_id=rng.random_bytes(CONTACT_ID_SIZE),
            alias=alias,
            created_at=int(now),
            queue_relay=relay_url,
            queue=creds,
            peer=peer,
            session=session.to_bytes(),
            identity=identity,
            verified=verified,
            sender_key=sender_key,
        )
    else:
        changed = not hmac.compare_digest(old.identity, identity)
        contact = replace(
            old,
            queue_relay=relay_url,
            queue=creds,
            peer=peer,
            session=session.to_bytes(),
            identity=identity,
            verified=verified,
            key_changed=(old.key_changed or changed) and not verified,
            sender_key=sender_key,
        )
        if changed:
            record_event(tx, rng, old.contact_id, EventKind.KEY_CHANGED, f"re-paired by {via}", now)
        if verified:
            # Paired over a code-authenticated channel: as good as a matching safety code,
            # which answers the identity alerts (the events stay for the debrief).
            clear_alerts(tx, old.contact_id, IDENTITY_ALERTS)
        tx.put("orphan", old.queue.recipient_id, orphan_bytes(old.queue_relay, old.queue))
        # The old session's queues go with it: what arrives on them now cannot be the new
        # session's, so they are nobody's (a move under way, queues a move retired).
        if old.next_queue is not None:
            tx.put("orphan", old.next_queue.recipient_id, orphan_bytes(old.next_queue_relay, old.next_queue))
        disown_retired(tx, old.contact_id)
        contact = replace(contact, next_queue_relay="", next_queue=None)
    tx.put("contact", contact.contact_id, contact.to_bytes())
    return contact


def disown_retired(tx: VaultTransaction, contact_id: bytes) -> None:
    """Make the queues a relay move retired from ``contact_id`` nobody's (still deleted later)."""
    for key, data in tx.items("orphan"):
        orphan = Orphan.from_bytes(data)
        if orphan.contact_id and hmac.compare_digest(orphan.contact_id, contact_id):
            tx.put("orphan", key, replace(orphan, contact_id=b"").to_bytes())


def process_delivery(
    tx: VaultTransaction,
    rng: Random,
    recipient_id: bytes,
    envelope: bytes,
    now: float,
    *,
    msg_id: bytes = b"",
    sender_refused: bool = False,
) -> None:
    """Decrypt one delivery on our queue ``recipient_id`` and store what it carries.

    The session is read from ``tx`` and written back to it, so the ratchet advances in
    the same transaction that stores the plaintext. A delivery that is refused (a replay,
    a fork, a forgery) leaves every record as it was but one anomaly event; one that
    comes before the acceptance it follows is kept as a :class:`PendingDelivery`.
    ``sender_refused``: the relay says it refused another sender on this queue since
    the last delivery (an empty ``envelope`` is such a notice alone). ``msg_id``: the
    relay's id of the delivery; the same id as the queue's last delivery means the relay
    delivers again what we stored but had not acknowledged (we crashed in between): it
    is accounted for already, so nothing more is recorded, not even a replay.
    """
    if msg_id:
        last = tx.get("delivery", recipient_id)
        if last is not None and hmac.compare_digest(LastDelivery.from_bytes(last).msg_id, msg_id):
            return
        tx.put("delivery", recipient_id, LastDelivery(msg_id).to_bytes())
    owner = owner_of(tx, recipient_id)
    contact_id = owner.key if owner is not None and owner.kind == "contact" else b""
    if sender_refused:
        record_event(
            tx,
            rng,
            contact_id,
            EventKind.SENDER_REFUSED,
            "the relay refused another sender on this contact's queue: the invitation was accepted "
            "twice or its address leaked; compare safety codes",
            now,
        )
        if not envelope:
            return
    if owner is None:
        record_event(tx, rng, b"", EventKind.ABANDONED, "a delivery on a queue no longer in use", now)
        return
    if owner.kind == "invite" and envelope_type(envelope) is not EnvelopeType.ACCEPT:
        _keep_pending(tx, rng, recipient_id, envelope, now)
        return
    _open(tx, rng, owner, envelope, now)


_DURESS_DETAIL: Final = (
    "the contact unlocked its burner with its duress passphrase: it is under coercion, its burner "
    "is destroyed, and whatever comes from it now comes from whoever holds the device"
)


def _open(tx: VaultTransaction, rng: Random, owner: QueueOwner, envelope: bytes, now: float) -> None:
    """Decrypt ``envelope`` for ``owner`` (an open invitation or a contact) and store it."""
    contact_id = owner.key if owner.kind == "contact" else b""
    try:
        if owner.kind == "invite":
            data = tx.get("invite", owner.key)
            assert data is not None, "owner_of found it in this transaction"
            contact, events = _complete_invite(tx, rng, Invite.from_bytes(data), envelope, now)
        else:
            data = tx.get("contact", owner.key)
            assert data is not None, "owner_of found it in this transaction"
            contact = Contact.from_bytes(data)
            if contact.burned:
                # Its session keys are gone (§17.7): nothing of it can be opened any more.
                record_event(
                    tx, rng, contact_id, EventKind.ABANDONED, "a delivery from a contact that burned", now
                )
                return
            alert = duress.take_alert(tx, contact.contact_id, envelope)  # before the session (§17.11)
            if alert is not None:
                if alert:
                    record_event(tx, rng, contact_id, EventKind.DURESS, _DURESS_DETAIL, now)
                return
            session = Session.from_bytes(contact.session, rng=rng)
            events = session.receive(envelope, now=now)
            session.purge_expired(now=now)
            contact = replace(contact, session=session.to_bytes())
            next_queue = contact.next_queue
            if next_queue is not None and hmac.compare_digest(
                owner.creds.recipient_id, next_queue.recipient_id
            ):
                contact = _switch_queue(tx, contact, next_queue)
        contact_id = contact.contact_id
        contact = _record_session_events(tx, rng, contact, events, now)
        tx.put("contact", contact.contact_id, contact.to_bytes())
    except _AheadOfAcceptance:
        # The acceptor's later message came first (its messages are acceptances until it
        # hears back): keep it for the acceptance that carries the Hello.
        _keep_pending(tx, rng, owner.creds.recipient_id, envelope, now)
    except DuplicateMessageError:
        record_event(tx, rng, contact_id, EventKind.REPLAY, "a message already received arrived again", now)
    except ForkDetectedError:
        record_event(
            tx, rng, contact_id, EventKind.FORK, "a conflicting message: the sender may be cloned", now
        )
    except InvitationConsumedError:
        record_event(
            tx, rng, contact_id, EventKind.SECOND_ACCEPTANCE, "an invitation was accepted again", now
        )
    except TooManySkippedMessagesError:
        record_event(tx, rng, contact_id, EventKind.COUNTER_BOMB, "a message jumped too far ahead", now)
    except (DecryptionError, HandshakeError):
        record_event(tx, rng, contact_id, EventKind.UNDECRYPTABLE, "a delivery did not decrypt", now)
    except RemoteProtocolError:
        record_event(tx, rng, contact_id, EventKind.MALFORMED, "a delivery that does not parse", now)
    else:
        if owner.kind == "invite":
            _open_pending(tx, rng, contact, now)


def _switch_queue(tx: VaultTransaction, contact: Contact, next_queue: QueueCredentials) -> Contact:
    """An authentic delivery came on the contact's next queue: the move is confirmed.

    The old queue is retired: an orphan still owned by the contact, so what they sent to
    it before switching is still received, until the orphan sweep deletes it.
    """
    tx.put(
        "orphan",
        contact.queue.recipient_id,
        orphan_bytes(contact.queue_relay, contact.queue, contact.contact_id),
    )
    return replace(
        contact, queue_relay=contact.next_queue_relay, queue=next_queue, next_queue_relay="", next_queue=None
    )


def _pending_of(tx: VaultTransaction, recipient_id: bytes) -> list[tuple[bytes, PendingDelivery]]:
    """The deliveries kept for queue ``recipient_id``, in arrival order."""
    kept = [
        (key, PendingDelivery.from_bytes(data))
        for key, data in tx.items("pending")
        if hmac.compare_digest(key[: len(recipient_id)], recipient_id)
    ]
    return sorted(kept, key=lambda item: item[1].order)


def _keep_pending(
    tx: VaultTransaction, rng: Random, recipient_id: bytes, envelope: bytes, now: float
) -> None:
    kept = _pending_of(tx, recipient_id)
    if len(kept) >= MAX_PENDING:
        record_event(
            tx, rng, b"", EventKind.MALFORMED, "too many deliveries before an invitation's acceptance", now
        )
        return
    order = kept[-1][1].order + 1 if kept else 0
    pending = PendingDelivery(recipient_id, order, int(now), envelope)
    tx.put("pending", pending.key, pending.to_bytes())


def _open_pending(tx: VaultTransaction, rng: Random, contact: Contact, now: float) -> None:
    """Open what arrived on the contact's queue before its acceptance, in arrival order."""
    owner = QueueOwner("contact", contact.contact_id, contact.queue_relay, contact.queue)
    for key, pending in _pending_of(tx, contact.queue.recipient_id):
        tx.delete("pending", key)
        _open(tx, rng, owner, pending.envelope, now)


def drop_pending(tx: VaultTransaction, rng: Random, recipient_id: bytes, now: float) -> None:
    """Drop what was kept for an invitation that will never be accepted now, as events."""
    for key, _ in _pending_of(tx, recipient_id):
        tx.delete("pending", key)
        record_event(
            tx,
            rng,
            b"",
            EventKind.ABANDONED,
            "a delivery kept for an invitation that expired unaccepted",
            now,
        )


class _AheadOfAcceptance(Exception):
    """An authentic acceptance that carries a chat message, not the Hello that comes first."""


def _complete_invite(
    tx: VaultTransaction, rng: Random, invite: Invite, envelope: bytes, now: float
) -> tuple[Contact, list[Event]]:
    pending = PendingInvitation.from_bytes(invite.pending, rng=rng)
    session, events = pending.complete(envelope, now=now)
    first = next((e for e in events if isinstance(e, MessageReceived)), None)
    content = decode_content(first.content) if first is not None else None
    if isinstance(content, Text | Heartbeat | Escrow):
        raise _AheadOfAcceptance
    if not isinstance(content, Hello):
        raise RemoteProtocolError("an acceptance must start with the acceptor's address")
    contact = store_contact(
        tx,
        rng,
        invite.alias,
        session,
        invite.queue_relay,
        invite.queue,
        content.reply,
        verified=invite.verified,
        now=now,
        via="code" if invite.verified else "link",
    )
    tx.delete("invite", invite.invite_id)
    if content.expires_at:
        contact = replace(contact, peer_expires_at=content.expires_at)
    if invite.link_queue is not None:
        # The short link has done its work, but its queue stays until the invitation would
        # have expired: whoever uses the link again (the real acceptor, if this acceptance
        # was an interceptor's) then meets the sender-secured queue's refusal, which alerts
        # us (§17.2). A burn deletes it sooner.
        tx.put(
            "orphan",
            invite.link_queue.recipient_id,
            orphan_bytes(invite.queue_relay, invite.link_queue, keep_until=invite.expires_at),
        )
    # The Hello is not a chat message: keep only the anomaly events.
    return contact, [e for e in events if not isinstance(e, MessageReceived)]


def raise_clock_floor(tx: VaultTransaction, at: int) -> None:
    """Make ``at`` (seconds, an authenticated time) the burner's clock floor if it is later (§17.7)."""
    data = tx.get("profile", PROFILE_KEY)
    if data is None:
        return
    profile = Profile.from_bytes(data)
    if at > profile.clock_mark:
        tx.put("profile", PROFILE_KEY, replace(profile, clock_mark=at).to_bytes())


def _take_burn_notice(
    tx: VaultTransaction, rng: Random, contact: Contact, notice: BurnNotice, seq: int, now: float
) -> Contact:
    """A contact burned: check its signature, then stop everything we do for it (§17.7).

    A notice whose signature does not verify (made for another contact, or by anyone but
    the contact's identity) changes nothing but one ``malformed`` event.
    """
    session = Session.from_bytes(contact.session, rng=rng)
    if not session.burn_notice_signed(notice.signed_body(), notice.signature):
        record_event(
            tx, rng, contact.contact_id, EventKind.MALFORMED, f"message {seq}: a burn notice not signed", now
        )
        return contact
    cid = contact.contact_id
    for key, data in tx.items("outbox"):
        if hmac.compare_digest(OutboxEntry.from_bytes(data).contact_id, cid):
            tx.delete("outbox", key)
    erased = 0
    if notice.erase:
        for key, _ in tx.items("message"):
            if key.startswith(cid):
                tx.delete("message", key)
                erased += 1
    # Nobody sends to our queues for it any more: a later run deletes them from their relays.
    for owner in owners([contact], []).values():
        tx.put("orphan", owner.creds.recipient_id, orphan_bytes(owner.relay_url, owner.creds))
    detail = "the contact burned its burner" + (
        f"; the conversation was erased as it asked ({erased} messages)" if notice.erase else ""
    )
    record_event(tx, rng, cid, EventKind.BURNED, detail, now)
    forget_peer(tx, cid)  # a burned contact is gone, not silent (§17.8)
    drop_escrows(tx, cid)  # nobody will ask for its key back (§17.12)
    return replace(contact, burned=True, session=b"", next_queue_relay="", next_queue=None)


def _record_session_events(
    tx: VaultTransaction, rng: Random, contact: Contact, events: list[Event], now: float
) -> Contact:
    for event in events:
        match event:
            case MessageReceived():
                contact = _store_incoming(tx, rng, contact, event, now)
            case GapDetected(first, last):
                record_event(
                    tx, rng, contact.contact_id, EventKind.GAP, f"messages {first}-{last} missing", now
                )
            case MessageReordered(seq):
                record_event(
                    tx, rng, contact.contact_id, EventKind.REORDERED, f"message {seq} arrived late", now
                )
            case ForkDetected(seq, reason):
                record_event(tx, rng, contact.contact_id, EventKind.FORK, f"at {seq}: {reason.value}", now)
    return contact


def _store_incoming(
    tx: VaultTransaction, rng: Random, contact: Contact, event: MessageReceived, now: float
) -> Contact:
    try:
        content = decode_content(event.content)
    except RemoteProtocolError:
        record_event(
            tx, rng, contact.contact_id, EventKind.MALFORMED, f"message {event.seq} of no known kind", now
        )
        return contact
    if isinstance(content, BurnNotice):
        # Taken even past the contact's expiry: an expired burner burns itself, then says so.
        return _take_burn_notice(tx, rng, contact, content, event.seq, now)
    raise_clock_floor(tx, event.sent_at // 1000)
    if isinstance(content, Text) and content.expires_at:
        contact = replace(contact, peer_expires_at=content.expires_at)
    if contact.peer_expires_at and now >= contact.peer_expires_at:
        record_event(
            tx,
            rng,
            contact.contact_id,
            EventKind.EXPIRED_PEER,
            f"message {event.seq} refused: the contact's burner expired",
            now,
        )
        return contact
    # Any authentic message is a sign of life for the dead-man switch (§17.8).
    note_heard(tx, contact.contact_id, content, event.sent_at, now)
    if isinstance(content, DuressKey):
        duress.keep_key(tx, contact.contact_id, content)
    # A later message means its key is back: a key it left before is not kept (§17.12).
    note_back(tx, contact.contact_id, event.seq)
    if isinstance(content, Escrow):
        hold(tx, contact.contact_id, content, event.seq, now)
        detail = "left their key with you for a border crossing"
        record_event(tx, rng, contact.contact_id, EventKind.HELD_KEY, detail, now)
        return contact
    if isinstance(content, Move):
        refusal = _move_refusal(contact.peer.relay_url, content.address.relay_url)
        if refusal:
            record_event(
                tx, rng, contact.contact_id, EventKind.MALFORMED, f"message {event.seq}: {refusal}", now
            )
            return contact
        return _take_move(tx, rng, contact, content.address, now)
    if not isinstance(content, Text):
        # A repeated Hello carries nothing new; a MoveDone did its work by the queue it
        # came on (_switch_queue); a Heartbeat did its work above and is never shown.
        return contact
    # The sender's timer is the conversation's timer from now on (as in Signal).
    contact = replace(contact, timer=content.timer, burn_on_read=content.burn_on_read)
    message = StoredMessage(
        message_id=rng.random_bytes(8),
        contact_id=contact.contact_id,
        outgoing=False,
        seq=event.seq,
        sent_at=event.sent_at,
        received_at=int(now),
        text=content.text,
        expires_at=int(now) + content.timer if content.timer else 0,
        burn_on_read=content.burn_on_read,
    )
    tx.put("message", message.key, message.to_bytes())
    return contact


def _move_refusal(current: str, moved: str) -> str:
    """Why we do not follow a Move from relay ``current`` to ``moved``, or "" if we do.

    A URL our rule refuses (§14.13) would make every later send fail. A move from an
    encrypted (or local) transport to ``ws://`` on another machine is refused as well: the
    contact must not take away a protection the user did not give up.
    """
    try:
        check_relay_url(moved, insecure=True)
    except UsageError:
        return "a relay move to a url we cannot use"
    try:
        check_relay_url(current, insecure=False)
    except UsageError:
        return ""  # already unencrypted to another machine: nothing to lose
    try:
        check_relay_url(moved, insecure=False)
    except UsageError:
        return "a relay move to unencrypted ws:// on another machine"
    return ""


def _take_move(
    tx: VaultTransaction, rng: Random, contact: Contact, address: QueueAddress, now: float
) -> Contact:
    """The contact moved its queue for us: send there from now on, and confirm it there.

    Our outbox entries for the contact follow (the old queue is deleted once the move is
    confirmed). A fresh sender key locks the new sender-secured queue to us (§14.8) and
    keeps it unlinkable to the old one by key. The MoveDone goes out with the next flush.
    """
    if address == contact.peer:
        return contact  # nothing moved
    contact = replace(contact, peer=address, sender_key=rng.random_bytes(SENDER_KEY_SIZE))
    for key, data in tx.items("outbox"):
        entry = OutboxEntry.from_bytes(data)
        if hmac.compare_digest(entry.contact_id, contact.contact_id):
            tx.put("outbox", key, replace(entry, peer=address).to_bytes())
    session = Session.from_bytes(contact.session, rng=rng)
    envelope = session.send(MoveDone().encode(), now=now)
    done = OutboxEntry(
        rng.random_bytes(SEND_ID_SIZE), contact.contact_id, address, envelope, int(now * 1000), b""
    )
    tx.put("outbox", done.send_id, done.to_bytes())
    return replace(contact, session=session.to_bytes())


def take_unshown(tx: VaultTransaction) -> list[InboxMessage]:
    """Incoming messages not shown yet, by contact and seq; marks them shown.

    Burn-on-read messages are deleted instead: the caller holds their only copy.
    """
    out: list[tuple[tuple[str, int], InboxMessage]] = []
    aliases = {c.contact_id: c.alias for c in all_contacts(tx)}
    for key, data in tx.items("message"):
        message = StoredMessage.from_bytes(data)
        if message.outgoing or message.shown:
            continue
        alias = aliases.get(message.contact_id, "?")
        view = InboxMessage(
            alias, message.text, message.sent_at, message.seq, message.burn_on_read, message.expires_at
        )
        out.append(((alias, message.seq), view))
        if message.burn_on_read:
            tx.delete("message", key)
        else:
            tx.put("message", key, replace(message, shown=True).to_bytes())
    return [view for _, view in sorted(out, key=lambda item: item[0])]
