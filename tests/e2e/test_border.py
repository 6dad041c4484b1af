"""Border mode through the real ``burner`` command: the key with the office, a code, a release (§17.12)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest

from burnerkit.app.border import BORDER_FILE, STATE_SIZE, BorderState
from burnerkit.errors import VaultLockedError
from burnerkit.vault import Vault
from burnerkit.vault.format import open_border_state, open_header
from tests.e2e.helpers import Person, files_containing, files_under, pair_by_link, spellings_of, together
from tests.e2e.test_remote_burn import office_and_burner
from tests.examiner.test_device_copy import record_keys
from tests.integration.harness import RelayProcess

AT_BORDER = "is at the border: its vault key is with its issuer"


def _paired(relay: RelayProcess, people: Callable[..., list[Person]]) -> tuple[Person, Person, Person, str]:
    """An office, Alice (who carries its key) and Bob, paired. (office, alice, bob, office key file)"""
    office, alice, bob = people("office", "alice", "bob")
    key, _ = office_and_burner(relay, office, alice)
    together(bob.mint(relay.url))
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    return office, alice, bob, key


def _return(alice: Person) -> tuple[str, str]:
    """Alice, across: her return request and the code she reads to the office."""
    shown = alice.json("border", "return")
    assert shown["burner"] == "alice"
    assert shown["request"].startswith("burner:bq1.")
    return shown["request"], shown["code"]


def _release(office: Person, key: str, request: str, code: str, *, expect: int = 0) -> str:
    out = office.run(
        "issuer", "release", "--key", key, "--request", request, "--code", code, "--json", expect=expect
    )
    return str(out.json()["release"]) if expect == 0 else out.error


# In `make soak` (CI runs it), to keep `make test` under 2 minutes; the same
# check in one process: tests/integration/test_border.py
# (test_border_opens_nothing_and_refuses_with_how_to_return).
@pytest.mark.slow
def test_border_sealed_home_opens_nothing_with_the_passphrase(relay, people):
    office, alice, bob, _ = _paired(relay, people)
    token = os.urandom(8).hex()
    canaries = [f"canary-{token}-{what}" for what in ("received", "sent")]
    bob.run("send", "alice", canaries[0])
    assert alice.texts() == [canaries[0]]
    alice.run("send", "bob", canaries[1])
    directory = alice.directory
    before = {path.name: path.read_bytes() for path in files_under(directory)}
    keys_before = record_keys(before["vault.key"], alice.passphrase)

    crossed = alice.json("border", "cross", "--issuer", "--yes")
    assert crossed == {"burner": "alice", "at_border": True, "holder": "issuer"}
    image = {path.name: path.read_bytes() for path in files_under(directory)}

    # The header's slots are overwritten in place: the passphrase opens no key in them.
    assert len(image["vault.key"]) == len(before["vault.key"])
    assert image["vault.key"][:34] == before["vault.key"][:34]
    with pytest.raises(VaultLockedError):
        open_header(image["vault.key"], alice.passphrase)
    with pytest.raises(VaultLockedError):
        Vault.open(directory, alice.passphrase)
    # The state is fixed in size, and what the passphrase opens of it holds no key to the records.
    state = image[BORDER_FILE]
    assert len(state) == 34 + 12 + STATE_SIZE + 16
    opened = open_border_state(state, alice.passphrase)
    parsed = BorderState.from_bytes(opened.body)
    assert (parsed.name, parsed.one_time) == ("alice", None)
    assert not any(key[:8] in opened.body for key in keys_before)
    assert list(files_containing(alice.home, canaries)) == []
    assert not any(s in data for data in image.values() for c in canaries for s in spellings_of(c))

    # Every command refuses the burner and says how to come back (the chat: tests/tui/test_border.py).
    for args in (("inbox",), ("send", "bob", "hello"), ("contacts",)):
        refused = alice.run(*args, expect=4)
        assert AT_BORDER in refused.error, args
        assert "burner border return alice" in refused.error
        assert "Traceback" not in refused.error
    # Another passphrase learns no more than at any locked vault.
    wrong = alice.run("inbox", expect=4, env={"BURNER_PASSPHRASE": "not the passphrase of alice"})
    assert wrong.error == "burner: wrong passphrase, or the vault header is damaged"
    # Nothing it refused touched the files.
    assert {path.name: path.read_bytes() for path in files_under(directory)} == image
    assert office.home.exists()


# In `make soak` (CI runs it), to keep `make test` under 2 minutes; the same
# check in one process: tests/integration/test_border.py.
@pytest.mark.slow
def test_border_image_cannot_replay_the_release(relay, people):
    office, alice, _, key = _paired(relay, people)
    alice.run("border", "cross", "--issuer", "--yes")
    # The examiner's image, taken at the border, in a home of its own.
    (examiner,) = people("examiner")
    shutil.copytree(alice.home, examiner.home)
    examiner.passphrase = alice.passphrase  # the worst case: the passphrase was coerced too

    request, code = _return(alice)
    assert _return(alice) == (request, code)  # shown again, not remade
    release = _release(office, key, request, code)

    # The image holds no one-time key: the release is for a key made after it was taken.
    early = examiner.run("border", "return", "alice", "--release", release, expect=2)
    assert "run 'burner border return alice' first" in early.error
    forged_request, forged_code = _return(examiner)
    assert forged_code != code
    refused = examiner.run("border", "return", "alice", "--release", release, expect=7)
    assert "does not open with this burner's one-time key" in refused.error
    assert AT_BORDER in examiner.run("inbox", expect=4).error
    # The examiner's own request, read with the traveller's code, gets nothing from the office.
    assert "the code does not match" in _release(office, key, forged_request, code, expect=7)

    alice.run("border", "return", "--release", release)
    assert not (alice.directory / BORDER_FILE).exists()
    assert alice.json("contacts")[0]["alias"] == "bob"
    # The release, now public, still opens nothing on the image.
    assert examiner.run("border", "return", "alice", "--release", release, expect=7)


# In `make soak` (CI runs it), to keep `make test` under 2 minutes; the same
# check in one process: tests/integration/test_border.py.
@pytest.mark.slow
def test_release_to_a_wrong_code_is_refused(relay, people):
    office, alice, _, key = _paired(relay, people)
    alice.run("border", "cross", "--issuer", "--yes")
    request, code = _return(alice)
    wrong = f"{(int(code.replace(' ', '')) + 1) % 10**12:012d}"
    assert "the code does not match" in _release(office, key, request, wrong, expect=7)
    # Another office's key cannot open the escrow at all.
    (rogue,) = people("rogue")
    rogue.home.mkdir(parents=True)
    rogue_key = str(rogue.home / "rogue.key")
    rogue.run("issuer", "new", "--out", rogue_key)
    assert "not sealed to this issuer" in _release(rogue, rogue_key, request, code, expect=7)
    assert AT_BORDER in alice.run("inbox", expect=4).error
    # The right code releases, and the burner is back.
    alice.run("border", "return", "--release", _release(office, key, request, code))
    alice.run("inbox")


def test_released_burner_carries_on_its_conversations(relay, people):
    office, alice, bob, key = _paired(relay, people)
    bob.run("send", "alice", "before the border")
    assert alice.texts() == ["before the border"]
    alice.run("border", "cross", "--issuer", "--yes")
    bob.run("send", "alice", "while you cross")  # waits on the relay
    request, code = _return(alice)
    done = alice.json("border", "return", "--release", _release(office, key, request, code))
    assert done == {"burner": "alice", "at_border": False}
    assert alice.texts() == ["while you cross"]
    alice.run("send", "bob", "across")
    assert bob.texts() == ["across"]
    said = [e["text"] for e in alice.json("history", "bob") if "text" in e]
    assert said == ["before the border", "while you cross", "across"]
    # A second crossing with the same burner works as the first.
    alice.run("border", "cross", "--issuer", "--yes")
    request2, code2 = _return(alice)
    assert request2 != request
    alice.run("border", "return", "--release", _release(office, key, request2, code2))
    bob.run("send", "alice", "welcome back again")
    assert alice.texts() == ["welcome back again"]


def test_border_refuses_without_issuer_or_contact(relay, people):
    (bob,) = people("bob")
    together(bob.mint(relay.url))
    directory = bob.directory
    files = {path.name: path.read_bytes() for path in files_under(directory)}
    refused = bob.run("border", "cross", "--issuer", "--yes", expect=2)
    assert "carries no issuer key, so the issuer cannot hold its vault key" in refused.error
    assert "leave it with a contact instead" in refused.error
    assert "nothing changed" in refused.error
    assert "say who holds the key" in bob.run("border", "cross", "--yes", expect=2).error
    # Nor a contact: there is nobody to leave it with.
    assert (
        "no contact named 'carol'" in bob.run("border", "cross", "--holder", "carol", "--yes", expect=3).error
    )
    assert not (directory / BORDER_FILE).exists()
    assert files["vault.key"] == (directory / "vault.key").read_bytes()
    bob.run("inbox")
    assert "no burner at the border opens" in bob.run("border", "return", expect=3).error
