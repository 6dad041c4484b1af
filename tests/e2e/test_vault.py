"""The vault on disk: a wrong passphrase, a tampered record and a tampered header, seen from the CLI."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from burnerkit.vault.format import open_header
from tests.e2e.helpers import Person, mint, pair_by_link, together

WRONG_PASSPHRASE = "burner: wrong passphrase, or the vault header is damaged"


def _copy(person: Person, root: Path) -> Person:
    """Another home holding a byte-for-byte copy of ``person``'s burner (same name and passphrase)."""
    twin = Person(root, person.name)
    shutil.copytree(person.home, twin.home)
    return twin


def test_wrong_passphrase_is_refused_without_a_traceback(relay, people):
    (alice,) = people("alice")
    mint(relay.url, alice)
    refused = together(
        alice.start("contacts", env={"BURNER_PASSPHRASE": "not the passphrase"}),
        alice.start("send", "bob", "hi", env={"BURNER_PASSPHRASE": ""}),
        alice.start("burn", "--yes", env={"BURNER_PASSPHRASE": alice.passphrase.upper()}),
        expect=4,
    )
    for outcome in refused:
        assert outcome.stdout == ""
        assert outcome.stderr == WRONG_PASSPHRASE + "\n"
    # Nothing was damaged or burned: the right passphrase still opens it.
    assert alice.run("contacts").stdout.startswith("no contacts yet")
    assert alice.directory.is_dir()


def test_tampered_vault_record_is_detected(relay, people, tmp_path):
    alice, bob = people("alice", "bob")
    mint(relay.url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    alice.run("send", "bob", "a record worth tampering with")
    twins = [_copy(alice, tmp_path / f"twin{n}") for n in range(2)]

    # Every record: one bit flipped in the middle of its sealed blob.
    db = sqlite3.connect(alice.directory / "vault.sqlite")
    try:
        rows = db.execute("SELECT row_id, sealed FROM records").fetchall()
        assert len(rows) >= 3  # profile, contact, message at least
        for row_id, sealed in rows:
            flipped = bytearray(sealed)
            flipped[len(flipped) // 2] ^= 0x01
            db.execute("UPDATE records SET sealed = ? WHERE row_id = ?", (bytes(flipped), row_id))
        db.commit()
    finally:
        db.close()
    # In a copy, only the last byte of each record (its tag). Each record, not one: row ids
    # hide the kind, and a command reads only the kinds it needs (an inbox with nothing new
    # never reads the queues' last-delivery records), so one record picked blindly may be
    # one this inbox does not read.
    db = sqlite3.connect(twins[0].directory / "vault.sqlite")
    try:
        for row_id, sealed in db.execute("SELECT row_id, sealed FROM records").fetchall():
            db.execute(
                "UPDATE records SET sealed = ? WHERE row_id = ?",
                (sealed[:-1] + bytes([sealed[-1] ^ 0x80]), row_id),
            )
        db.commit()
    finally:
        db.close()

    outcomes = together(
        alice.start("contacts"),
        alice.start("history", "bob"),
        twins[0].start("inbox"),
        expect=None,
    )
    for outcome in outcomes:
        assert outcome.returncode == 4, outcome.describe()
        assert outcome.stdout == ""
        # Not "wrong passphrase": the key was right, a record was damaged.
        assert outcome.error == "burner: a vault record failed authentication", outcome.describe()
    # The untouched copy still works: the detection is the tampering, not the copying.
    assert [c["alias"] for c in twins[1].json("contacts")] == ["bob"]


def test_tampered_vault_header_looks_like_a_wrong_passphrase(relay, people, tmp_path):
    (alice,) = people("alice")
    mint(relay.url, alice)
    header = (alice.directory / "vault.key").read_bytes()
    assert len(header) == 154
    # The slot holding the current key (the other holds random bytes until the next rotation).
    (slot,) = (i for i, key in enumerate(open_header(header, alice.passphrase).keys) if key is not None)
    at = 34 + 60 * slot
    # salt, the slot's nonce, wrapped key, tag: one byte flipped in each part, each in its own copy.
    offsets = (30, at + 5, at + 30, at + 59)
    twins = [_copy(alice, tmp_path / f"twin{offset}") for offset in offsets]
    for twin, offset in zip(twins, offsets, strict=True):
        damaged = bytearray(header)
        damaged[offset] ^= 0x01
        (twin.directory / "vault.key").write_bytes(bytes(damaged))

    wrong, *tampered = together(
        alice.start("contacts", env={"BURNER_PASSPHRASE": "not the passphrase"}),
        *(twin.start("contacts") for twin in twins),
        expect=4,
    )
    assert wrong.stderr == WRONG_PASSPHRASE + "\n"
    for outcome in tampered:
        assert outcome.stdout == ""
        assert outcome.stderr == wrong.stderr  # the same exit code and the very same words
