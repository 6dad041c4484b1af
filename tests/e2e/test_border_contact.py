"""Border mode with a contact as the holder, through the real ``burner`` command (§17.12).

Alice leaves her vault key with Bob (content 0x09 over their session), crosses with a device
that opens nothing, reads Bob a code, and takes the key back from his release. The attacks
(another contact's escrow, another one-time key, an image's replay, an unreachable relay)
are set up directly in tests/integration/test_border_contact.py.
"""

from __future__ import annotations

import os
import shutil

import pytest

from burnerkit.app.border import BORDER_FILE, CONTACT_REQUEST_SIZE, ReturnRequest
from burnerkit.errors import VaultLockedError
from burnerkit.vault import Vault
from tests.e2e.helpers import files_containing, pair_by_link, together

AT_BORDER = "is at the border: its vault key is with the contact who holds it"


def test_contact_holder_releases_and_the_burner_carries_on_its_conversations(relay, people):
    alice, bob, examiner = people("alice", "bob", "examiner")
    together(alice.mint(relay.url), bob.mint(relay.url))
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    canary = f"canary-{os.urandom(8).hex()}"
    bob.run("send", "alice", canary)
    assert alice.texts() == [canary]

    crossed = alice.json("border", "cross", "--holder", "bob", "--yes")
    assert crossed == {"burner": "alice", "at_border": True, "holder": "bob"}
    directory = alice.directory
    # The sealed home opens nothing with the passphrase; nothing in it says the canary.
    with pytest.raises(VaultLockedError):
        Vault.open(directory, alice.passphrase)
    assert AT_BORDER in alice.run("inbox", expect=4).error
    assert list(files_containing(directory, [canary])) == []
    shutil.copytree(alice.home, examiner.home)  # an image taken at the border
    examiner.passphrase = alice.passphrase  # and the passphrase, coerced

    # Bob sees one line, no message.
    shown = bob.run("inbox")
    assert "alice left their key with you for a border crossing" in shown.stdout
    assert "no new messages" in shown.stdout
    bob.run("send", "alice", "while you cross")  # waits on the relay

    shown = alice.json("border", "return")
    request, code = shown["request"], shown["code"]
    assert len(ReturnRequest.from_text(request).to_bytes()) == CONTACT_REQUEST_SIZE
    wrong = f"{(int(code.replace(' ', '')) + 1) % 10**12:012d}"
    refused = bob.run("border", "release", "alice", "--request", request, "--code", wrong, expect=7)
    assert "the code does not match" in refused.error
    release = bob.json("border", "release", "alice", "--request", request, "--code", code)["release"]
    # The image's own one-time key is not the one the release is sealed to.
    examiner.run("border", "return", "alice")
    assert "does not open" in examiner.run("border", "return", "alice", "--release", release, expect=7).error

    assert alice.json("border", "return", "--release", release) == {"burner": "alice", "at_border": False}
    assert not (directory / BORDER_FILE).exists()
    assert alice.texts() == ["while you cross"]
    alice.run("send", "bob", "across")
    assert bob.texts() == ["across"]
    said = [e["text"] for e in alice.json("history", "bob") if "text" in e]
    assert said == [canary, "while you cross", "across"]
    # Alice spoke again, so Bob holds her key no longer: a release cannot be made twice.
    again = bob.run("border", "release", "alice", "--request", request, "--code", code, expect=7)
    assert "alice left no key with this burner" in again.error
