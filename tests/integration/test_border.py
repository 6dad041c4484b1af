"""Border mode in one process against a real relay (docs/protocol.md §17.12): every refusal, every cut.

The CLI's end-to-end runs are in tests/e2e/test_border.py; here each attack and each crash
point is set up directly, and each asserts the exact defence and that nothing changed.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from burnerkit.app import border
from burnerkit.app.border import BORDER_FILE, ReturnRequest
from burnerkit.app.home import Home
from burnerkit.app.issuer import IssuerKeyPair
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.keys import X25519PrivateKey, X25519PublicKey
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import (
    AlreadyExistsError,
    BorderReleaseError,
    BurnerAtBorderError,
    NotFoundError,
    UsageError,
    VaultLockedError,
)
from burnerkit.vault import Vault
from burnerkit.vault.format import open_border_state
from tests.integration.harness import RelayProcess

PASS = "correct horse battery"
NOW = 1_900_000_000.0
RNG = SystemRandom()


def mint(home: Home, name: str, url: str) -> Messenger:
    return Messenger.create(
        home, name, PASS, relay_url=url, lifetime=30 * 86400, kdf=FAST_TEST_KDF, clock=lambda: NOW
    )


@pytest.fixture
def office() -> IssuerKeyPair:
    return IssuerKeyPair.generate(RNG)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


@pytest.fixture
def crossed(home: Home, shared_relay: RelayProcess, office: IssuerKeyPair) -> Path:
    """Alice's directory, at the border: her key sealed to ``office``."""
    alice = mint(home, "alice", shared_relay.url)
    asyncio.run(alice.carry_issuer(office.public))
    directory = alice._directory
    alice.cross_border()
    alice.close()
    return directory


def files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def released(home: Home, office: IssuerKeyPair) -> str:
    _, request = border.begin_return(home, "alice", PASS, RNG)
    return border.release(office, request, request.code, RNG)


def test_duress_unlock_at_the_border_destroys_the_way_back(
    home: Home, shared_relay: RelayProcess, office: IssuerKeyPair
) -> None:
    """Coerced at the border: the key is with the office, so the duress passphrase destroys the state."""
    alice = mint(home, "alice", shared_relay.url)
    asyncio.run(alice.carry_issuer(office.public))
    alice.arm_duress("the duress passphrase")
    directory = alice._directory
    alice.cross_border()
    alice.close()
    assert border.held_name(directory, PASS) == "alice"
    size = (directory / BORDER_FILE).stat().st_size
    Messenger.open(home, "alice", "the duress passphrase").close()
    assert border.held_name(directory, PASS) is None
    assert (directory / BORDER_FILE).stat().st_size == size  # overwritten in place, not removed
    with pytest.raises(NotFoundError):
        border.begin_return(home, "alice", PASS, RNG)


def test_border_opens_nothing_and_refuses_with_how_to_return(home: Home, crossed: Path) -> None:
    with pytest.raises(VaultLockedError):
        Vault.open(crossed, PASS)
    with pytest.raises(BurnerAtBorderError, match="burner border return alice"):
        Messenger.open(home, "alice", PASS)
    with pytest.raises(BurnerAtBorderError):
        Messenger.open(home, None, PASS)  # the home's only burner
    with pytest.raises(VaultLockedError) as wrong:
        Messenger.open(home, "alice", "not the passphrase")
    assert not isinstance(wrong.value, BurnerAtBorderError)
    # Its name stays taken while it is away.
    with pytest.raises(AlreadyExistsError, match="at the border"):
        Messenger.create(home, "alice", PASS, relay_url="ws://127.0.0.1:1", kdf=FAST_TEST_KDF)


def test_release_to_a_wrong_code_is_refused(home: Home, crossed: Path, office: IssuerKeyPair) -> None:
    _, request = border.begin_return(home, "alice", PASS, RNG)
    for wrong in ("0000 0000 0000", request.code[:-1], "", request.code + "1"):
        with pytest.raises(BorderReleaseError, match="the code does not match"):
            border.release(office, request, wrong, RNG)
    # Spaces and dashes do not matter; the digits do.
    assert border.release(office, request, request.code.replace(" ", "-"), RNG).startswith("burner:br1.")


def test_attackers_one_time_key_with_the_travellers_code_is_refused(
    home: Home, crossed: Path, office: IssuerKeyPair
) -> None:
    """The examiner swaps in their own one-time key; the code the traveller reads is over hers."""
    _, request = border.begin_return(home, "alice", PASS, RNG)
    theirs = ReturnRequest(request.escrow_id, X25519PrivateKey.generate(RNG).public_key, request.escrow)
    with pytest.raises(BorderReleaseError, match="the code does not match"):
        border.release(office, theirs, request.code, RNG)


def test_escrow_of_another_request_or_office_is_refused(
    home: Home, crossed: Path, office: IssuerKeyPair
) -> None:
    _, request = border.begin_return(home, "alice", PASS, RNG)
    relabelled = ReturnRequest(RNG.random_bytes(16), request.one_time, request.escrow)
    with pytest.raises(BorderReleaseError, match="names another escrow"):
        border.release(office, relabelled, relabelled.code, RNG)
    with pytest.raises(BorderReleaseError, match="not sealed to this issuer"):
        border.release(IssuerKeyPair.generate(RNG), request, request.code, RNG)
    small = ReturnRequest(request.escrow_id, X25519PublicKey.from_bytes(bytes(32)), request.escrow)
    with pytest.raises(BorderReleaseError, match="not a valid key"):
        border.release(office, small, small.code, RNG)


def test_border_image_cannot_replay_the_release(
    home: Home, crossed: Path, office: IssuerKeyPair, tmp_path: Path
) -> None:
    image_home = Home(tmp_path / "image")
    shutil.copytree(home.root, image_home.root)
    release = released(home, office)
    with pytest.raises(UsageError, match="first"):
        border.finish_return(image_home, "alice", PASS, release, RNG)
    border.begin_return(image_home, "alice", PASS, RNG)  # the image's own one-time key
    before = files(next(iter(image_home.slots())))
    with pytest.raises(BorderReleaseError, match="does not open with this burner's one-time key"):
        border.finish_return(image_home, "alice", PASS, release, RNG)
    assert files(next(iter(image_home.slots()))) == before
    assert border.finish_return(home, "alice", PASS, release, RNG) == "alice"
    Messenger.open(home, "alice", PASS).close()


def test_damaged_release_changes_nothing(home: Home, crossed: Path, office: IssuerKeyPair) -> None:
    release = released(home, office)
    before = files(crossed)
    flipped = release[:-3] + ("A" if release[-3] != "A" else "B") + release[-2:]
    with pytest.raises((BorderReleaseError, UsageError)):
        border.finish_return(home, "alice", PASS, flipped, RNG)
    with pytest.raises(UsageError, match="not a border release"):
        border.finish_return(home, "alice", PASS, "burner:bq1.AAAA", RNG)
    assert files(crossed) == before


def test_release_of_another_vaults_key_is_refused(
    home: Home, crossed: Path, office: IssuerKeyPair, shared_relay: RelayProcess
) -> None:
    """A holder that releases some other key (its own, or another burner's) restores nothing."""
    _, request = border.begin_return(home, "alice", PASS, RNG)
    forged = border.seal_escrow(office.public.seal_key, request.escrow_id, RNG.random_bytes(32), RNG)
    other = ReturnRequest(request.escrow_id, request.one_time, forged)
    release = border.release(office, other, other.code, RNG)
    before = files(crossed)
    with pytest.raises(BorderReleaseError, match="not the key of this burner's records"):
        border.finish_return(home, "alice", PASS, release, RNG)
    assert files(crossed) == before


def test_crossing_cut_short_before_the_key_is_destroyed_finishes_on_the_next_open(
    home: Home, shared_relay: RelayProcess, office: IssuerKeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = mint(home, "alice", shared_relay.url)
    asyncio.run(alice.carry_issuer(office.public))
    directory = alice._directory
    monkeypatch.setattr(Vault, "destroy_key", Vault.close)  # killed right after the state is durable
    alice.cross_border()
    monkeypatch.undo()
    assert (directory / BORDER_FILE).exists()
    Vault.open(directory, PASS).close()  # the key is still here
    with pytest.raises(BurnerAtBorderError):
        Messenger.open(home, "alice", PASS)
    with pytest.raises(VaultLockedError):
        Vault.open(directory, PASS)  # and now it is not
    assert border.finish_return(home, "alice", PASS, released(home, office), RNG) == "alice"
    Messenger.open(home, "alice", PASS).close()


def test_return_cut_short_after_the_key_is_back_takes_the_same_release_again(
    home: Home, crossed: Path, office: IssuerKeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = released(home, office)
    monkeypatch.setattr(border, "_destroy_state", lambda directory: None)  # killed before the state goes
    border.finish_return(home, "alice", PASS, release, RNG)
    monkeypatch.undo()
    # While the state is there the burner is at the border: a start does not open it.
    with pytest.raises(BurnerAtBorderError):
        Messenger.open(home, "alice", PASS)
    border.finish_return(home, "alice", PASS, release, RNG)
    assert not (crossed / BORDER_FILE).exists()
    Messenger.open(home, "alice", PASS).close()


def test_one_time_key_is_made_once_after_the_crossing(home: Home, crossed: Path) -> None:
    sealed = (crossed / BORDER_FILE).read_bytes()
    assert border.BorderState.from_bytes(open_border_state(sealed, PASS).body).one_time is None
    _, first = border.begin_return(home, "alice", PASS, RNG)
    assert len((crossed / BORDER_FILE).read_bytes()) == len(sealed)  # re-sealed in place, same size
    _, again = border.begin_return(home, None, PASS, RNG)
    assert again == first
    with pytest.raises(NotFoundError, match="no burner named 'bob' at the border"):
        border.begin_return(home, "bob", PASS, RNG)
    with pytest.raises(NotFoundError):
        border.begin_return(home, "alice", "not the passphrase", RNG)


def test_border_refuses_without_issuer_or_contact(home: Home, shared_relay: RelayProcess) -> None:
    bob = mint(home, "bob", shared_relay.url)
    directory = bob._directory
    before = files(directory)
    with pytest.raises(UsageError, match="carries no issuer key"):
        bob.cross_border()
    assert bob.contacts() == []  # still open and usable
    bob.close()
    assert not (directory / BORDER_FILE).exists()
    assert files(directory)["vault.key"] == before["vault.key"]
    Messenger.open(home, "bob", PASS).close()


def test_crossing_that_cannot_write_its_state_changes_nothing(
    home: Home, shared_relay: RelayProcess, office: IssuerKeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state is never partial: one that failed to land leaves the burner as it was, not locked out."""
    alice = mint(home, "alice", shared_relay.url)
    asyncio.run(alice.carry_issuer(office.public))
    directory = alice._directory

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("burnerkit.app.border.os.replace", full)
    with pytest.raises(OSError, match="No space"):
        alice.cross_border()
    monkeypatch.undo()
    alice.close()
    assert sorted(p.name for p in directory.iterdir() if p.name.startswith("vault.held")) == []
    Messenger.open(home, "alice", PASS).close()
