"""Border mode with a contact as the holder, in one process against a real relay (§17.12).

The traveller's key travels to the contact as content 0x09 over the session; the contact
releases it with ``burner border release``. The CLI's end-to-end run is in
tests/e2e/test_border.py; here each attack is set up directly and asserts the exact defence.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from burnerkit.app import border
from burnerkit.app.border import BORDER_FILE, CONTACT_REQUEST_SIZE, ReturnRequest
from burnerkit.app.content import Escrow
from burnerkit.app.escrow import ESCROW_KIND, HeldEscrow
from burnerkit.app.home import Home
from burnerkit.app.ledger import find_contact
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.keys import X25519PrivateKey
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import (
    BorderReleaseError,
    BurnerAtBorderError,
    ContactBurnedError,
    NotFoundError,
    RelayError,
    VaultLockedError,
)
from burnerkit.protocol.session import Session
from burnerkit.vault import Vault
from burnerkit.vault.format import open_border_state
from tests.integration.harness import RelayProcess, Relays

PASS = "correct horse battery"
NOW = 1_900_000_000.0
RNG = SystemRandom()


def mint(tmp_path: Path, name: str, url: str) -> Messenger:
    return Messenger.create(
        Home(tmp_path / name),
        name,
        PASS,
        relay_url=url,
        lifetime=30 * 86400,
        kdf=FAST_TEST_KDF,
        clock=lambda: NOW,
    )


def reopen(tmp_path: Path, name: str) -> Messenger:
    return Messenger.open(Home(tmp_path / name), name, PASS, clock=lambda: NOW)


def pair(inviter: Messenger, acceptor: Messenger, inviter_calls: str, acceptor_calls: str) -> None:
    link = asyncio.run(inviter.invite(inviter_calls)).link
    asyncio.run(acceptor.accept(link, acceptor_calls))
    assert asyncio.run(inviter.receive()).new_contacts == [inviter_calls]
    asyncio.run(acceptor.receive())


def held(messenger: Messenger) -> list[HeldEscrow]:
    return [HeldEscrow.from_bytes(data) for _, data in messenger._vault.items(ESCROW_KIND)]


def files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


@pytest.fixture
def url(shared_relay: RelayProcess) -> str:
    return shared_relay.url


@pytest.fixture
def pair_ab(tmp_path: Path, url: str) -> tuple[Messenger, Messenger]:
    """Alice (the traveller) and Bob (her holder), paired and talking."""
    alice, bob = mint(tmp_path, "alice", url), mint(tmp_path, "bob", url)
    pair(bob, alice, "alice", "bob")
    asyncio.run(alice.send("bob", "before the border"))
    assert [m.text for m in asyncio.run(bob.receive()).messages] == ["before the border"]
    return alice, bob


def cross(alice: Messenger) -> Path:
    directory = alice._directory
    asyncio.run(alice.cross_border_to("bob"))
    alice.close()
    return directory


def test_contact_border_sealed_home_opens_nothing_with_the_passphrase(
    tmp_path: Path, pair_ab: tuple[Messenger, Messenger]
) -> None:
    alice, bob = pair_ab
    vault_key = alice._vault.border_key()
    directory = cross(alice)
    with pytest.raises(VaultLockedError):
        Vault.open(directory, PASS)
    told = r"with the contact who holds it\. .*burner border return alice"
    with pytest.raises(BurnerAtBorderError, match=told):
        reopen(tmp_path, "alice")
    sealed = (directory / BORDER_FILE).read_bytes()
    state = border.BorderState.from_bytes(open_border_state(sealed, PASS).body)
    # The state keeps no escrow for a contact holder: only who holds it (a kind, not a name).
    assert (state.holder, state.escrow, state.name) == (border.HOLDER_CONTACT, b"", "alice")
    assert not any(vault_key in data for data in files(directory).values())

    result = asyncio.run(bob.receive())
    assert result.messages == []  # never shown as a message
    assert [(e.alias, e.kind, e.detail) for e in result.events] == [
        ("alice", "held-key", "left their key with you for a border crossing")
    ]
    assert not result.alerts
    [record] = held(bob)
    assert record.escrow_id == state.escrow_id
    assert record.contact_id == find_contact(bob._vault, "alice").contact_id
    assert [e.text for e in bob.history("alice")] == ["before the border"]


def test_released_burner_carries_on_its_conversations(
    tmp_path: Path, pair_ab: tuple[Messenger, Messenger]
) -> None:
    alice, bob = pair_ab
    cross(alice)
    asyncio.run(bob.receive())
    asyncio.run(bob.send("alice", "while you were away"))
    _, request = border.begin_return(Home(tmp_path / "alice"), "alice", PASS, RNG)
    assert len(request.to_bytes()) == CONTACT_REQUEST_SIZE
    release = bob.release_border_key("alice", ReturnRequest.from_text(request.to_text()), request.code)
    assert border.finish_return(Home(tmp_path / "alice"), "alice", PASS, release, RNG) == "alice"

    alice = reopen(tmp_path, "alice")
    assert [m.text for m in asyncio.run(alice.receive()).messages] == ["while you were away"]
    asyncio.run(alice.send("bob", "back"))
    assert [m.text for m in asyncio.run(bob.receive()).messages] == ["back"]
    # Her first message after the escrow says the key is back: Bob keeps it no longer.
    assert held(bob) == []
    # (One fixed clock: the history's order among equal times is not the point.)
    texts = sorted(e.text for e in alice.history("bob"))
    assert texts == ["back", "before the border", "while you were away"]


def test_crossing_with_an_unreachable_relay_refuses_and_changes_nothing(
    tmp_path: Path, relays: Relays
) -> None:
    relay = relays.start()
    alice, bob = mint(tmp_path, "alice", relay.url), mint(tmp_path, "bob", relay.url)
    pair(bob, alice, "alice", "bob")
    directory = alice._directory
    relay.stop()
    with pytest.raises(RelayError, match=r"did not take your key.*you have not crossed"):
        asyncio.run(alice.cross_border_to("bob"))
    alice.close()
    assert not (directory / BORDER_FILE).exists()
    alice = reopen(tmp_path, "alice")  # the key is still here, under the passphrase
    assert [c.alias for c in alice.contacts()] == ["bob"]
    alice.close()
    bob.close()


def test_release_to_a_wrong_code_or_another_one_time_key_is_refused(
    tmp_path: Path, pair_ab: tuple[Messenger, Messenger]
) -> None:
    alice, bob = pair_ab
    cross(alice)
    asyncio.run(bob.receive())
    _, request = border.begin_return(Home(tmp_path / "alice"), "alice", PASS, RNG)
    for wrong in ("0000 0000 0000", request.code[:-1], ""):
        with pytest.raises(BorderReleaseError, match="the code does not match"):
            bob.release_border_key("alice", request, wrong)
    # An attacker's one-time key with the traveller's code: the code binds the key.
    theirs = ReturnRequest(request.escrow_id, X25519PrivateKey.generate(RNG).public_key, b"")
    with pytest.raises(BorderReleaseError, match="the code does not match"):
        bob.release_border_key("alice", theirs, request.code)
    # A release for another one-time key does not open on the device.
    stolen = bob.release_border_key("alice", theirs, theirs.code)
    with pytest.raises(BorderReleaseError, match="does not open"):
        border.finish_return(Home(tmp_path / "alice"), "alice", PASS, stolen, RNG)
    assert (alice._directory / BORDER_FILE).exists()


def test_escrow_from_another_contact_is_refused(
    tmp_path: Path, url: str, pair_ab: tuple[Messenger, Messenger]
) -> None:
    alice, bob = pair_ab
    carol = mint(tmp_path, "carol", url)
    pair(bob, carol, "carol", "bob")
    cross(alice)
    asyncio.run(bob.receive())
    _, request = border.begin_return(Home(tmp_path / "alice"), "alice", PASS, RNG)
    # Alice's escrow asked for under Carol's name (or Carol's request naming Alice's escrow).
    with pytest.raises(BorderReleaseError, match="carol left no key with this burner"):
        bob.release_border_key("carol", request, request.code)
    # An escrow id Bob never got.
    other = ReturnRequest(RNG.random_bytes(16), request.one_time, b"")
    with pytest.raises(BorderReleaseError, match="alice left no key with this burner"):
        bob.release_border_key("alice", other, other.code)
    carol.close()


def test_border_image_cannot_replay_the_contact_release(
    tmp_path: Path, pair_ab: tuple[Messenger, Messenger]
) -> None:
    alice, bob = pair_ab
    directory = cross(alice)
    asyncio.run(bob.receive())
    image = Home(tmp_path / "image")
    shutil.copytree(Home(tmp_path / "alice").root, image.root)
    assert files(image.slots()[0]) == files(directory)

    _, request = border.begin_return(Home(tmp_path / "alice"), "alice", PASS, RNG)
    release = bob.release_border_key("alice", request, request.code)
    # The image, with the coerced passphrase, makes its own one-time key: the release is not for it.
    _, imaged = border.begin_return(image, "alice", PASS, RNG)
    with pytest.raises(BorderReleaseError, match="does not open"):
        border.finish_return(image, "alice", PASS, release, RNG)
    # Its request, read to Bob with the traveller's code, is refused.
    with pytest.raises(BorderReleaseError, match="the code does not match"):
        bob.release_border_key("alice", imaged, request.code)
    border.finish_return(Home(tmp_path / "alice"), "alice", PASS, release, RNG)
    with pytest.raises(BurnerAtBorderError):
        Messenger.open(image, "alice", PASS)


def test_removed_or_burned_contact_takes_its_escrows_with_it(
    tmp_path: Path, url: str, pair_ab: tuple[Messenger, Messenger]
) -> None:
    alice, bob = pair_ab
    carol = mint(tmp_path, "carol", url)
    pair(bob, carol, "carol", "bob")
    cross(alice)
    # Carol's escrow, sent as her last message before she burns.
    real = Session.send

    def send(self: Session, _content: bytes, *, now: float) -> bytes:
        return real(self, Escrow(RNG.random_bytes(16), RNG.random_bytes(32)).encode(), now=now)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "send", send)
        asyncio.run(carol.send("bob", "placeholder"))
    asyncio.run(bob.receive())
    assert len(held(bob)) == 2
    asyncio.run(carol.burn())
    asyncio.run(bob.receive())
    assert [r.contact_id for r in held(bob)] == [find_contact(bob._vault, "alice").contact_id]
    asyncio.run(bob.remove_contact("alice"))
    assert held(bob) == []


def test_crossing_to_a_burned_contact_is_refused_and_changes_nothing(
    tmp_path: Path, pair_ab: tuple[Messenger, Messenger]
) -> None:
    alice, bob = pair_ab
    asyncio.run(bob.burn())
    asyncio.run(alice.receive())  # his burn notice
    directory = alice._directory
    with pytest.raises(ContactBurnedError, match="bob burned their burner"):
        asyncio.run(alice.cross_border_to("bob"))
    with pytest.raises(NotFoundError, match="no contact named 'carol'"):
        asyncio.run(alice.cross_border_to("carol"))
    alice.close()
    assert not (directory / BORDER_FILE).exists()
    reopen(tmp_path, "alice").close()  # the key is still here
