"""What one vault transaction does with the app's records: contacts, deliveries, anomalies.

No relay I/O here: the :class:`~burnerkit.app.messenger.Messenger` opens the transaction,
calls these functions inside it and talks to relays only before or after. Keeping them
apart makes the rule of the Messenger's theory of operation visible in the imports: what
decrypts and stores a delivery cannot acknowledge it.
"""

from __future__ import annotations

import hmac
from typing import Protocol

from burnerkit.app.addresses import QueueAddress
from burnerkit.app.content import Hello, Text, decode_content
from burnerkit.app.queues import QueueOwner, orphan_bytes
from burnerkit.app.records import (
    CONTACT_ID_SIZE,
    Contact,
    EventKind,
    EventRecord,
    Invite,
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
)
from burnerkit.protocol.events import Event, ForkDetected, GapDetected, MessageReceived, MessageReordered
from burnerkit.protocol.handshake import PendingInvitation
from burnerkit.protocol.session import Session
from burnerkit.relay.client import QueueCredentials
from burnerkit.vault import VaultTransaction

__all__ = [
    "RecordReader",
    "all_contacts",
    "find_contact",
    "process_delivery",
    "record_event",
    "store_contact",
    "take_unshown",
]


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
    """Keep one anomaly for the debrief (``contact_id`` empty when there is no contact)."""
    record = EventRecord(rng.random_bytes(16), contact_id, int(now), kind, detail)
    tx.put("event", record.event_id, record.to_bytes())


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
    orphan, deleted from its relay by a later run.
    """
    identity = session.their_identity.to_bytes()
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
        )
        if changed:
            record_event(tx, rng, old.contact_id, EventKind.KEY_CHANGED, f"re-paired by {via}", now)
        tx.put("orphan", old.queue.recipient_id, orphan_bytes(old.queue_relay, old.queue))
    tx.put("contact", contact.contact_id, contact.to_bytes())
    return contact


def process_delivery(
    tx: VaultTransaction, rng: Random, owner: QueueOwner, envelope: bytes, now: float
) -> None:
    """Decrypt one delivery and store what it carries, or record why not.

    The session is read from ``tx`` and written back to it, so the ratchet advances in
    the same transaction that stores the plaintext. A delivery that is refused (a replay,
    a fork, a forgery) leaves every record as it was but one anomaly event.
    """
    contact_id = owner.key if owner.kind == "contact" else b""
    try:
        if owner.kind == "invite":
            data = tx.get("invite", owner.key)
            if data is None:
                return
            contact, events = _complete_invite(tx, rng, Invite.from_bytes(data), envelope, now)
        else:
            data = tx.get("contact", owner.key)
            if data is None:
                return
            contact = Contact.from_bytes(data)
            session = Session.from_bytes(contact.session, rng=rng)
            events = session.receive(envelope, now=now)
            session.purge_expired(now=now)
            contact = replace(contact, session=session.to_bytes())
        contact_id = contact.contact_id
        contact = _record_session_events(tx, rng, contact, events, now)
        tx.put("contact", contact.contact_id, contact.to_bytes())
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


def _complete_invite(
    tx: VaultTransaction, rng: Random, invite: Invite, envelope: bytes, now: float
) -> tuple[Contact, list[Event]]:
    pending = PendingInvitation.from_bytes(invite.pending, rng=rng)
    session, events = pending.complete(envelope, now=now)
    first = next((e for e in events if isinstance(e, MessageReceived)), None)
    content = decode_content(first.content) if first is not None else None
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
    # The Hello is not a chat message: keep only the anomaly events.
    return contact, [e for e in events if not isinstance(e, MessageReceived)]


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
    if not isinstance(content, Text):
        return contact  # a repeated Hello carries nothing new
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
