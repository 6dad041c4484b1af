"""Vault keys our contacts left with us while they cross a border (docs/protocol.md §17.12.7).

A contact crossing with ``burner border cross --holder`` sends its vault key in a message
of content 0x09 (:class:`~burnerkit.app.content.Escrow`). We keep it in a record of its own,
``escrow`` keyed by the escrow id and tied to the contact, show one line in the inbox, and
hand it back only through ``burner border release`` (:func:`burnerkit.app.border.contact_release`),
sealed to the traveller's one-time key once the code they read to us matches.

The record goes when the contact is removed or burns, and when the contact's first message
after the escrow arrives: its burner sends only once its key is back, so that message says
the escrow has done its work, and we should not keep a key that opens the contact's vault.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from burnerkit.app.content import Escrow
from burnerkit.app.records import CONTACT_ID_SIZE, _Record
from burnerkit.vault import VaultTransaction
from burnerkit.wire import Reader, Writer

__all__ = ["ESCROW_KIND", "HeldEscrow", "drop_escrows", "held_escrow", "hold", "note_back"]

#: The vault record kind of a key held for a contact.
ESCROW_KIND: Final = "escrow"
_ESCROW_ID_SIZE: Final = 16
_KEY_SIZE: Final = 32


@dataclass(frozen=True, slots=True)
class HeldEscrow(_Record):
    """A contact's vault key held for its border crossing (key: the escrow id).

    ``seq`` is the number of the message that carried it; ``received_at`` in seconds.
    """

    escrow_id: bytes
    contact_id: bytes
    seq: int
    received_at: int
    vault_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if (
            len(self.escrow_id) != _ESCROW_ID_SIZE
            or len(self.contact_id) != CONTACT_ID_SIZE
            or len(self.vault_key) != _KEY_SIZE
        ):
            raise ValueError("a held escrow is a 16-byte id, a 16-byte contact id and a 32-byte key")

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.escrow_id).raw(self.contact_id).u64(self.seq).u64(self.received_at).raw(self.vault_key)

    @classmethod
    def read(cls, r: Reader) -> HeldEscrow:  # noqa: D102
        return cls(r.take(_ESCROW_ID_SIZE), r.take(CONTACT_ID_SIZE), r.u64(), r.u64(), r.take(_KEY_SIZE))


def hold(tx: VaultTransaction, contact_id: bytes, escrow: Escrow, seq: int, now: float) -> None:
    """Keep the key ``contact_id`` sent in message ``seq`` (an escrow id sent again replaces nothing)."""
    if tx.get(ESCROW_KIND, escrow.escrow_id) is not None:
        return  # an escrow id is the sender's random draw: the first one stands
    record = HeldEscrow(escrow.escrow_id, contact_id, seq, int(now), escrow.vault_key)
    tx.put(ESCROW_KIND, record.escrow_id, record.to_bytes())


def held_escrow(
    get: Callable[[str, bytes], bytes | None], escrow_id: bytes, contact_id: bytes
) -> HeldEscrow | None:
    """The key under ``escrow_id`` (read with a vault or transaction ``get``) if ``contact_id`` left it."""
    data = get(ESCROW_KIND, escrow_id)
    if data is None:
        return None
    record = HeldEscrow.from_bytes(data)
    return record if hmac.compare_digest(record.contact_id, contact_id) else None


def _held_for(tx: VaultTransaction, contact_id: bytes) -> list[HeldEscrow]:
    held = (HeldEscrow.from_bytes(data) for _, data in tx.items(ESCROW_KIND))
    return [record for record in held if hmac.compare_digest(record.contact_id, contact_id)]


def note_back(tx: VaultTransaction, contact_id: bytes, seq: int) -> None:
    """The contact sent message ``seq``: drop the keys it left before it (it has its key back)."""
    for record in _held_for(tx, contact_id):
        if record.seq < seq:
            tx.delete(ESCROW_KIND, record.escrow_id)


def drop_escrows(tx: VaultTransaction, contact_id: bytes) -> None:
    """The contact is removed or burned: its keys go with it."""
    for record in _held_for(tx, contact_id):
        tx.delete(ESCROW_KIND, record.escrow_id)
