"""The frozen duress vectors (tests/vectors/duress_v1.json, docs/protocol.md §17.11).

Each record is rebuilt from its fields byte for byte, decoded back to its fields, and
re-encoded with ``struct`` alone, so the layout in the spec, not only our encoder, is
what is checked.
"""

from __future__ import annotations

import struct

import pytest

from burnerkit.app.duress import Decoy, Guard
from burnerkit.errors import VaultCorruptedError
from tests import vectorio
from tests.vectors.generate_duress import build

VECTORS = vectorio.load("duress_v1")


def test_vectors_are_what_the_generator_writes() -> None:
    assert build() == VECTORS


@pytest.mark.parametrize("vector", VECTORS["decoy"], ids=lambda v: str(v["slot"]))
def test_decoy_record_vector(vector: dict[str, int | str]) -> None:
    data = bytes.fromhex(str(vector["bytes"]))
    directory, slot = str(vector["directory"]), int(vector["slot"])
    assert Decoy(directory, slot).to_bytes() == data
    assert Decoy.from_bytes(data) == Decoy(directory, slot)
    assert struct.pack(">B26sB", 1, directory.encode("ascii"), slot) == data


@pytest.mark.parametrize("vector", VECTORS["guard"])
def test_guard_record_vector(vector: dict[str, str]) -> None:
    data = bytes.fromhex(vector["bytes"])
    assert Guard(vector["directory"]).to_bytes() == data
    assert Guard.from_bytes(data) == Guard(vector["directory"])
    assert struct.pack(">B26s", 1, vector["directory"].encode("ascii")) == data


@pytest.mark.parametrize("name", sorted(VECTORS["refused"]))
def test_refused_duress_record_vector(name: str) -> None:
    record = Guard if name.startswith("guard") else Decoy
    with pytest.raises(VaultCorruptedError, match="does not parse"):
        record.from_bytes(bytes.fromhex(VECTORS["refused"][name]))
