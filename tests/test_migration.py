"""Old saved states keep loading: session state v1 embedding ratchet state v1.

``tests/migration_data/session_v1_ratchet_v1.json`` holds two ``Session.to_bytes()``
outputs written before the ratchet state moved to version 2 (the retired-chains section,
docs/protocol.md §8.2): Alice is the inviter right after ``complete``, Bob the acceptor
right after ``accept_invitation`` (he has not heard back yet). They must load, be written
back with a ratchet state v2 (and nothing else changed), reload identically, and still
carry the conversation both ways.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import NotFoundError, VaultLockedError
from burnerkit.protocol.events import MessageReceived
from burnerkit.protocol.ratchet import DoubleRatchet
from burnerkit.protocol.session import Role, Session
from tests.helpers import session_ratchet_state

DATA = json.loads(
    (Path(__file__).parent / "migration_data" / "session_v1_ratchet_v1.json").read_text(encoding="utf-8")
)
ALICE_V1 = bytes.fromhex(DATA["alice_state"])
BOB_V1 = bytes.fromhex(DATA["bob_state"])
NOW = 1_800_000_100.0  # the states were written at 1,800,000,000


def load(state: bytes) -> Session:
    return Session.from_bytes(state, rng=SystemRandom())


@pytest.mark.parametrize("old", [ALICE_V1, BOB_V1], ids=["inviter", "acceptor"])
def test_old_state_is_session_v1_with_ratchet_v1(old):
    assert old[0] == 1  # session state version
    _, ratchet = session_ratchet_state(old)
    assert ratchet[0] == 1  # ratchet state version, before the retired chains
    # The ratchet state alone loads too, and is written back as v2 with no retired chains.
    loaded = DoubleRatchet.from_bytes(ratchet, rng=SystemRandom())
    assert loaded.to_bytes() == b"\x02" + ratchet[1:] + bytes(4)


@pytest.mark.parametrize(("old", "role"), [(ALICE_V1, Role.INVITER), (BOB_V1, Role.ACCEPTOR)])
def test_old_state_loads_and_writes_back_ratchet_v2(old, role):
    session = load(old)
    assert session.role is role
    new = session.to_bytes()
    at, ratchet = session_ratchet_state(new)
    old_at, old_ratchet = session_ratchet_state(old)
    assert at == old_at
    # Version 2, with an empty retired-chains section (u32 count 0) appended; nothing
    # else in the session changes but the ratchet state's var32 length.
    assert ratchet == b"\x02" + old_ratchet[1:] + bytes(4)
    assert new[: at - 4] == old[: at - 4]
    assert new[at - 4 : at] == (len(old_ratchet) + 4).to_bytes(4, "big")
    assert new[0] == 1  # the session state version is unchanged
    # The v2 state reloads identically.
    assert load(new).to_bytes() == new


def test_old_states_still_talk_to_each_other():
    alice, bob = load(ALICE_V1), load(BOB_V1)
    assert alice.transcript_hash == bob.transcript_hash
    assert alice.safety_code == bob.safety_code
    assert (alice.next_seq, bob.next_seq) == (1, 2)  # Bob's first message went with the handshake
    now = NOW

    def exchange(sender: Session, receiver: Session, content: bytes) -> bytes:
        nonlocal now
        now += 1
        seq = sender.next_seq
        envelope = sender.send(content, now=now)
        assert receiver.receive(envelope, now=now) == [MessageReceived(seq, int(now * 1000), content)]
        return envelope

    # Bob has not heard back: his envelope is still an ACCEPT envelope, on his first chain.
    assert exchange(bob, alice, b"bob, still waiting")[:2] == b"\x01\x11"
    # Alice's first message: Bob takes her first chain (a DH step on his side).
    exchange(alice, bob, b"alice's first reply")
    # Bob answers on a new chain: Alice steps and closes Bob's first chain.
    assert exchange(bob, alice, b"bob on a new chain")[:2] == b"\x01\x12"
    assert len(alice._ratchet._retired) == 1
    # Alice answers on a new chain: Bob steps and closes Alice's first chain.
    exchange(alice, bob, b"alice on a new chain")
    assert len(bob._ratchet._retired) == 1
    exchange(bob, alice, b"and once more")
    exchange(alice, bob, b"both ways")
    assert len(alice._ratchet._retired) == len(bob._ratchet._retired) == 2
    # The migrated sessions are ordinary v2 states now, retired chains included.
    for session in (alice, bob):
        data = session.to_bytes()
        _, ratchet = session_ratchet_state(data)
        assert ratchet[0] == 2
        assert load(data).to_bytes() == data


# -- a home of the previous version: directories named after their burners (docs/protocol.md §15.1) --

HOME_V1 = json.loads((Path(__file__).parent / "migration_data" / "home_v1.json").read_text(encoding="utf-8"))
ALICE_PASS, BOB_PASS = "the passphrase of alice", "the passphrase of bob"  # carol's is alice's


def _home_v1(root: Path) -> Home:
    for relative, data in HOME_V1["files"].items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes.fromhex(data))
    return Home(root)


def test_home_v1_opens_by_name_and_its_directories_become_random_ids(tmp_path):
    home = _home_v1(tmp_path / "home")
    assert sorted(path.name for path in home.root.iterdir()) == ["alice", "bob", "carol"]
    with Messenger.open(home, "alice", ALICE_PASS) as alice:
        assert alice.info().name == "alice"
    # The first unlock renamed every directory; no name is left in a path.
    left = sorted(path.name for path in home.root.iterdir())
    assert len(left) == 3
    assert all(re.fullmatch(r"[a-z2-7]{26}", name) for name in left)
    with Messenger.open(home, "bob", BOB_PASS) as bob:
        assert bob.info().name == "bob"
    with Messenger.open(home, "alice", ALICE_PASS) as alice:
        assert alice.info().name == "alice"
    with pytest.raises(VaultLockedError):
        Messenger.open(home, "alice", BOB_PASS)


def test_home_v1_interrupted_burn_under_its_old_marker_completes(tmp_path):
    home = _home_v1(tmp_path / "home")
    assert (home.root / "carol" / "BURNING").is_file()
    with pytest.raises(NotFoundError, match="burner 'carol' was being burned; the burn is now complete"):
        Messenger.open(home, "carol", ALICE_PASS)
    assert home.count() == 2
    assert sorted(info.name for info in Messenger.survey(home, ALICE_PASS)) == ["alice"]
    assert sorted(info.name for info in Messenger.survey(home, BOB_PASS)) == ["bob"]


def test_home_v1_directory_renamed_by_hand_keeps_the_name_it_went_by(tmp_path):
    home = _home_v1(tmp_path / "home")
    (home.root / "alice").rename(home.root / "trip")  # the old version called a burner by its directory
    with Messenger.open(home, "trip", ALICE_PASS) as trip:
        assert trip.info().name == "trip"  # moved into the sealed profile
    with Messenger.open(home, "trip", ALICE_PASS) as trip:
        assert trip.info().name == "trip"
    with pytest.raises(VaultLockedError, match="no burner named 'alice'"):
        Messenger.open(home, "alice", ALICE_PASS)
