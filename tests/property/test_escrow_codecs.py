"""A contact holder's codecs fuzzed with hypothesis (docs/protocol.md §17.12).

The Escrow content (0x09) a traveller sends its holder, the holder's ``escrow`` record, the
contact's return request (no escrow inside) and a border state whose holder is a contact:
each round-trips; peer bytes of kind 0x09 decode to an Escrow or raise
``RemoteProtocolError`` and what decodes is canonical; vault bytes decode or are corruption.
"""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from burnerkit.app.border import CONTACT_REQUEST_SIZE, HOLDER_CONTACT, BorderState, ReturnRequest
from burnerkit.app.content import Escrow, decode_content
from burnerkit.app.escrow import HeldEscrow
from burnerkit.crypto.keys import X25519PrivateKey
from burnerkit.errors import RemoteProtocolError, VaultCorruptedError, VaultLockedError

ids = st.binary(min_size=16, max_size=16)
keys = st.binary(min_size=32, max_size=32)
u64 = st.integers(0, 2**64 - 1)


@given(ids, keys)
def test_escrow_round_trip(escrow_id: bytes, vault_key: bytes) -> None:
    data = Escrow(escrow_id, vault_key).encode()
    assert data == b"\x09" + escrow_id + vault_key
    assert decode_content(data) == Escrow(escrow_id, vault_key)


@given(st.binary(max_size=64))
def test_escrow_kind_with_any_bytes_decodes_canonically_or_is_refused(rest: bytes) -> None:
    data = b"\x09" + rest
    try:
        content = decode_content(data)
    except RemoteProtocolError:
        return
    assert isinstance(content, Escrow)
    assert content.encode() == data


def test_escrow_repr_hides_the_key() -> None:
    assert "\\xab" not in repr(Escrow(bytes(16), b"\xab" * 32))


@given(ids, ids, u64, u64, keys)
def test_held_escrow_record_round_trip(
    escrow_id: bytes, contact_id: bytes, seq: int, received_at: int, vault_key: bytes
) -> None:
    record = HeldEscrow(escrow_id, contact_id, seq, received_at, vault_key)
    data = record.to_bytes()
    assert len(data) == 1 + 16 + 16 + 8 + 8 + 32
    assert HeldEscrow.from_bytes(data) == record
    assert vault_key.hex() not in repr(record)


@given(st.binary(max_size=100))
def test_held_escrow_from_any_bytes_parses_or_is_corruption(data: bytes) -> None:
    try:
        record = HeldEscrow.from_bytes(data)
    except VaultCorruptedError:
        return
    assert record.to_bytes() == data


@given(ids, keys)
def test_contact_return_request_round_trips_without_an_escrow(escrow_id: bytes, one_time: bytes) -> None:
    request = ReturnRequest(escrow_id, X25519PrivateKey.from_bytes(one_time).public_key, b"")
    assert len(request.to_bytes()) == CONTACT_REQUEST_SIZE
    assert ReturnRequest.from_text(request.to_text()) == request


@given(ids, keys, st.booleans())
def test_contact_border_state_round_trips(escrow_id: bytes, one_time: bytes, has_key: bool) -> None:
    key = X25519PrivateKey.from_bytes(one_time) if has_key else None
    state = BorderState(HOLDER_CONTACT, escrow_id, "alice", b"", key)
    back = BorderState.from_bytes(state.to_bytes())
    assert (back.holder, back.escrow_id, back.name, back.escrow) == (HOLDER_CONTACT, escrow_id, "alice", b"")
    assert back.to_bytes() == state.to_bytes()


@given(ids, st.binary(min_size=1, max_size=128))
def test_contact_border_state_with_an_escrow_is_refused(escrow_id: bytes, escrow: bytes) -> None:
    data = BorderState(1, escrow_id, "alice", escrow).to_bytes()
    forged = data[:1] + bytes([HOLDER_CONTACT]) + data[2:]
    with contextlib.suppress(VaultLockedError):
        BorderState.from_bytes(forged)
        raise AssertionError("a contact holder's state carries no escrow")
