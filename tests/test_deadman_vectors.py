"""The frozen dead-man switch vectors (tests/vectors/deadman_v1.json, docs/protocol.md §17.8).

Each value is rebuilt from its fields byte for byte, decoded back to its fields, and
re-encoded with ``struct`` alone, so the layout in the spec, not only our encoder, is
what is checked.
"""

from __future__ import annotations

import struct

import pytest

from burnerkit.app.checkin import CheckIn
from burnerkit.app.content import Heartbeat, decode_content
from burnerkit.app.liveness import PeerLiveness
from burnerkit.errors import RemoteProtocolError
from tests import vectorio
from tests.vectors.generate_deadman import build

VECTORS = vectorio.load("deadman_v1")


def test_vectors_are_what_the_generator_writes() -> None:
    assert build() == VECTORS


@pytest.mark.parametrize("vector", VECTORS["heartbeats"], ids=lambda v: str(v["window"]))
def test_heartbeat_vector(vector: dict[str, object]) -> None:
    data = bytes.fromhex(str(vector["bytes"]))
    window = vector["window"]
    assert isinstance(window, int)
    assert Heartbeat(window).encode() == data
    assert decode_content(data) == Heartbeat(window)
    assert struct.pack(">BI", 0x07, window) == data


@pytest.mark.parametrize("name", sorted(VECTORS["refused"]))
def test_refused_heartbeat_vector(name: str) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed message content"):
        decode_content(bytes.fromhex(VECTORS["refused"][name]))


@pytest.mark.parametrize("vector", VECTORS["checkin"], ids=lambda v: str(v["window"]))
def test_checkin_record_vector(vector: dict[str, int | str]) -> None:
    data = bytes.fromhex(str(vector["bytes"]))
    fields = (int(vector["window"]), int(vector["checked_in_at"]), int(vector["heartbeat_at"]))
    assert CheckIn(*fields).to_bytes() == data
    record = CheckIn.from_bytes(data)
    assert (record.window, record.checked_in_at, record.heartbeat_at) == fields
    assert struct.pack(">BIQQ", 1, *fields) == data


@pytest.mark.parametrize("vector", VECTORS["liveness"], ids=lambda v: str(v["window"]))
def test_liveness_record_vector(vector: dict[str, int | str]) -> None:
    data = bytes.fromhex(str(vector["bytes"]))
    contact_id = bytes.fromhex(str(vector["contact_id"]))
    fields = (int(vector["window"]), int(vector["heard_at"]), int(vector["silent_at"]))
    assert PeerLiveness(contact_id, *fields).to_bytes() == data
    record = PeerLiveness.from_bytes(data)
    assert (record.contact_id, record.window, record.heard_at, record.silent_at) == (contact_id, *fields)
    assert struct.pack(">B16sIQQ", 1, contact_id, *fields) == data
