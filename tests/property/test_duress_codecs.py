"""The duress records fuzzed with hypothesis (docs/protocol.md §17.11).

Round trips: a ``Decoy``, a ``Guard`` and the ``DuressKey`` content decode to what was
encoded. Records come from a vault: any bytes decode to a record or raise
``VaultCorruptedError``; content comes from a peer: a value or ``RemoteProtocolError``.
"""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from burnerkit.app.content import DuressKey, decode_content
from burnerkit.app.duress import Decoy, Guard, HeldKey, Kit
from burnerkit.errors import RemoteProtocolError, VaultCorruptedError

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567", min_size=26, max_size=26)


@given(ids, st.sampled_from([0, 1]))
def test_decoy_round_trips(directory: str, slot: int) -> None:
    assert Decoy.from_bytes(Decoy(directory, slot).to_bytes()) == Decoy(directory, slot)


@given(ids)
def test_guard_round_trips(directory: str) -> None:
    assert Guard.from_bytes(Guard(directory).to_bytes()) == Guard(directory)


@given(st.binary(max_size=64))
def test_any_bytes_are_a_duress_record_or_a_typed_error(data: bytes) -> None:
    for record in (Decoy, Guard):
        with contextlib.suppress(VaultCorruptedError):
            assert record.from_bytes(data).to_bytes() == data


@given(st.binary(max_size=200))
def test_any_bytes_are_a_kit_or_held_key_or_a_typed_error(data: bytes) -> None:
    for record in (Kit, HeldKey):
        with contextlib.suppress(VaultCorruptedError):
            assert record.from_bytes(data).to_bytes() == data


@given(st.binary(min_size=32, max_size=32))
def test_duress_key_content_round_trips(key: bytes) -> None:
    assert decode_content(DuressKey(key).encode()) == DuressKey(key)


@given(st.binary(max_size=40))
def test_any_bytes_after_tag_8_are_a_duress_key_or_malformed(tail: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        assert decode_content(b"\x08" + tail) == DuressKey(tail)
