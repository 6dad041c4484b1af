"""The duress records fuzzed with hypothesis (docs/protocol.md §17.11).

Round trips: a ``Decoy`` and a ``Guard`` decode to what was encoded. Their bytes come from
a vault: any bytes decode to a record or raise ``VaultCorruptedError``, nothing else.
"""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from burnerkit.app.duress import Decoy, Guard
from burnerkit.errors import VaultCorruptedError

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
