"""The examiner holds a copy of a burner's files from the border (time T) and, later, its passphrase.

Issue 15, items 1 and 5 (the vault): whatever the examiner does with the copy taken at T, the
passphrase and every byte the burner's files held after T, nothing written after T opens; and
the second seizure's own key opens nothing that was deleted or burned before it.
docs/protocol.md §15.11.

Every byte the files ever held stands for the blocks a file system freed: the tests keep a
snapshot of every file after every ``burner`` command (and, through the Vault API, of the
journal just before it is zeroed and of the header just before a slot is overwritten). The
examiner tries *every offset* of every snapshot as the start of a sealed record (its nonce)
under every record key the copy and the passphrase yield: AES-GCM is AES-CTR underneath, so the
first block of a record decrypts without its tag or row id; any offset whose first block reads
as a record (``u8 len ‖ kind``) is decrypted further and searched for the canaries. Controls
prove the examiner is not blind: under the right key it finds what was there.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from burnerkit.crypto.kdf import LABEL_VAULT_RECORD, hkdf
from burnerkit.crypto.rng import SystemRandom
from burnerkit.vault import FAST_TEST_KDF, Vault
from burnerkit.vault import vault as vault_module
from burnerkit.vault.format import open_header
from tests.e2e.helpers import Person, files_under, mint, pair_by_link, spellings_of
from tests.integration.harness import RelayProcess

_PAGE = 4096
_KIND = re.compile(rb"[a-z0-9_-]+")
#: How much of a candidate record the examiner decrypts (our canaries sit near the start).
_WINDOW = 2048

Snapshot = dict[str, bytes]


@pytest.fixture
def relay(shared_relay: RelayProcess) -> RelayProcess:
    assert shared_relay.running, "an earlier test stopped the shared relay"
    return shared_relay


# -- the examiner's tools ---------------------------------------------------------------------------


def record_keys(header: bytes, passphrase: str) -> list[bytes]:
    """Every record key a ``vault.key`` and the passphrase yield (one per slot that opens)."""
    return [
        hkdf(key, salt=b"", info=LABEL_VAULT_RECORD, length=32)
        for key in open_header(header, passphrase).keys
        if key is not None
    ]


def _segments(data: bytes) -> list[tuple[int, int]]:
    """The stretches of ``data`` worth trying: all but its all-zero pages (no nonce is all zeros)."""
    spans: list[tuple[int, int]] = []
    zero = bytes(_PAGE)
    for start in range(0, len(data), _PAGE):
        if data[start : start + _PAGE] == zero[: len(data[start : start + _PAGE])]:
            continue
        begin, end = max(0, start - 64), min(len(data), start + _PAGE + 64)
        if spans and spans[-1][1] >= begin:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((begin, end))
    return spans


def decrypted_records(data: bytes, record_keys: list[bytes]) -> list[bytes]:
    """Every offset of ``data`` tried as a sealed record's nonce under each of ``record_keys``.

    Returns the decryption (first ``_WINDOW`` bytes, unauthenticated) of every offset whose
    first plaintext block reads as the start of a record: a length 1-15 and that many
    characters of ``[a-z0-9_-]``.
    """
    found = []
    for begin, end in _segments(data):
        offsets = range(begin, end - 28)
        if not offsets:
            continue
        counters = b"".join(data[i : i + 12] + b"\x00\x00\x00\x02" for i in offsets)
        blocks = int.from_bytes(b"".join(data[i + 12 : i + 28] for i in offsets), "big")
        for key in record_keys:
            stream = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(counters)
            first = (int.from_bytes(stream, "big") ^ blocks).to_bytes(len(stream), "big")
            for n, i in enumerate(offsets):
                length = first[16 * n]
                if 1 <= length <= 15 and _KIND.fullmatch(first[16 * n + 1 : 16 * n + 1 + length]):
                    ctr = Cipher(algorithms.AES(key), modes.CTR(data[i : i + 12] + b"\x00\x00\x00\x02"))
                    found.append(ctr.decryptor().update(data[i + 12 : i + 12 + _WINDOW]))
    return found


def opened_canaries(snapshots: Iterable[Snapshot], keys: list[bytes], canaries: list[str]) -> set[str]:
    """The canaries the examiner reads in any file of any snapshot under any of ``keys``."""
    seen: set[str] = set()
    done: set[bytes] = set()
    for snapshot in snapshots:
        for data in snapshot.values():
            digest = hashlib.sha256(data).digest()
            if digest in done:
                continue
            done.add(digest)
            for plaintext in decrypted_records(data, keys):
                seen |= {c for c in canaries if any(s in plaintext for s in spellings_of(c))}
    return seen


def grep(snapshots: Iterable[Snapshot], canaries: list[str]) -> set[str]:
    return {
        c
        for snapshot in snapshots
        for data in snapshot.values()
        for c in canaries
        if any(s in data for s in spellings_of(c))
    }


def take(directory: Path) -> Snapshot:
    """Every file under a burner's directory, as it is now."""
    return {str(path.relative_to(directory)): path.read_bytes() for path in files_under(directory)}


def times(directory: Path) -> dict[str, int]:
    """The modification times of the directory and every file in it."""
    out = {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in files_under(directory)}
    out["."] = directory.stat().st_mtime_ns
    return out


# -- real burners ---------------------------------------------------------------------------------


class Device:
    """A person's burner directory, with a snapshot of its files after every command."""

    def __init__(self, person: Person) -> None:
        self.person = person
        self.directory = person.directory
        self.snapshots: list[Snapshot] = []

    def run(self, *args: str) -> str:
        out = self.person.run(*args).stdout
        self.snapshots.append(take(self.directory) if self.directory.exists() else {})
        return out


def test_border_copy_and_later_passphrase_open_nothing_written_after_it(relay, tmp_path):
    alice_person, bob_person = Person(tmp_path, "alice"), Person(tmp_path, "bob")
    mint(relay.url, alice_person, bob_person)
    pair_by_link(alice_person, bob_person, inviter_calls="bob", acceptor_calls="alice")
    alice, bob = Device(alice_person), Device(bob_person)
    alice.run("send", "bob", "PRECOPY-note-before-the-border")
    bob.run("inbox")

    # T: the border copy of both phones.
    copies = {device: take(device.directory) for device in (alice, bob)}
    first = "CANARY-e1b2-burn-on-read-to-alice"
    second = "CANARY-77c4-burn-on-read-to-bob"
    kept = "CANARY-a9d0-kept-by-bob"
    canaries = [first, second, kept]

    bob.run("send", "alice", first, "--disappear", "read")
    assert first in alice.run("inbox")  # shown once, then burned
    alice.run("send", "bob", second, "--disappear", "read")
    assert second in bob.run("inbox")
    alice.run("send", "bob", kept, "--disappear", "off")
    assert kept in bob.run("inbox")

    # Read-only commands touch nothing: no file's bytes or mtime, not even the directory's.
    for device, args in ((alice, ("contacts",)), (alice, ("history", "bob")), (bob, ("inbox",))):
        before, stamps = take(device.directory), times(device.directory)
        device.run(*args)  # bob's inbox: nothing new
        assert (take(device.directory), times(device.directory)) == (before, stamps), args

    # Control: the examiner's tools see a live record under the key that sealed it.
    latest = bob.snapshots[-1]
    assert kept in opened_canaries([latest], record_keys(latest["vault.key"], bob.person.passphrase), [kept])
    # Control: the border copy opens what it held at T under its own key.
    assert opened_canaries(
        [copies[alice]],
        record_keys(copies[alice]["vault.key"], alice.person.passphrase),
        ["PRECOPY-note-before-the-border"],
    ) == {"PRECOPY-note-before-the-border"}

    alice.run("burn", "--yes")
    assert not alice.directory.exists()

    for device in (alice, bob):
        t_keys = record_keys(copies[device]["vault.key"], device.person.passphrase)
        # Nothing written after T opens under the keys of the copy taken at T.
        assert opened_canaries(device.snapshots, t_keys, canaries) == set()
        assert grep([copies[device], *device.snapshots], canaries) == set()
    # The second seizure (bob's phone now): its key opens what is live, not what was burned.
    final = bob.snapshots[-1]
    final_keys = record_keys(final["vault.key"], bob.person.passphrase)
    assert opened_canaries(bob.snapshots, final_keys, canaries) == {kept}


# -- the Vault API, with the bytes a file held between two commands -------------------------------


def test_every_byte_the_vault_ever_held_opens_nothing_after_the_copy(tmp_path, monkeypatch):
    directory = tmp_path / "burner"
    passphrase = "the passphrase taken later"
    held: list[Snapshot] = []

    real_scrub, real_write_slot = vault_module._scrub_journal, vault_module._write_slot

    def scrub(where: Path) -> None:
        held.append(take(where))  # the journal's last contents, just before they are zeroed
        real_scrub(where)

    def write_slot(where: Path, index: int, data: bytes) -> None:
        held.append(take(where))  # the header, just before a slot is overwritten
        real_write_slot(where, index, data)

    monkeypatch.setattr(vault_module, "_scrub_journal", scrub)
    monkeypatch.setattr(vault_module, "_write_slot", write_slot)

    with (
        Vault.create(directory, passphrase, rng=SystemRandom(), kdf=FAST_TEST_KDF) as v,
        v.transaction() as tx,
    ):
        tx.put("contact", b"alice", b"PRECOPY-contact")
        tx.put("message", b"old", b"PRECOPY-message " * 20)
    copy = take(directory)
    held.clear()

    deleted = [f"CANARY-{n}-deleted-{'x' * n}" for n in range(6)]
    kept = "CANARY-kept-alive"
    live: Snapshot = {}
    for n, canary in enumerate(deleted):  # one unlock each, as each `burner` command is
        with Vault.open(directory, passphrase, rng=SystemRandom()) as v:
            with v.transaction() as tx:
                tx.put("message", f"m{n}".encode(), canary.encode() * (1 + 40 * n))
                tx.put("message", b"kept", kept.encode())
            live = take(directory)
            held.append(live)
            with v.transaction() as tx:
                tx.delete("message", f"m{n}".encode())  # expired, burned on read
            held.append(take(directory))
    final = take(directory)

    t_keys = record_keys(copy["vault.key"], passphrase)
    final_keys = record_keys(final["vault.key"], passphrase)
    assert opened_canaries(held, t_keys, [*deleted, kept]) == set()
    assert opened_canaries(held, final_keys, deleted) == set()
    assert grep(held, [*deleted, kept]) == set()
    # Controls: each canary opened under its own epoch's key while it was live.
    assert opened_canaries([live], record_keys(live["vault.key"], passphrase), [deleted[-1], kept]) == {
        deleted[-1],
        kept,
    }
    assert any(name.endswith("-journal") and any(data) for s in held for name, data in s.items())


# -- the raw device: a loop-mounted ext4 image, free blocks and ext4's journal included -----------


def _run(*args: str) -> bool:
    return subprocess.run(args, capture_output=True, check=False, timeout=60).returncode == 0


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A 16 MiB ext4 file system (the default ``data=ordered``, with its journal), loop-mounted."""
    image, mount = tmp_path / "device.img", tmp_path / "mnt"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(16 << 20)
    if not (
        shutil.which("mkfs.ext4")
        and _run("mkfs.ext4", "-q", "-F", str(image))
        and _run("mount", "-o", "loop", str(image), str(mount))
    ):
        pytest.skip("this machine cannot loop-mount an ext4 image (needs root and a loop device)")
    try:
        yield image, mount
    finally:
        _run("umount", str(mount))


def changed_since(data: bytes, base: bytes, block: int = 1024) -> bytes:
    """``data`` with every block that still holds what it held in ``base`` zeroed: only what
    was written after the copy is searched (what the copy held, the copy already shows)."""
    zero = bytes(block)
    return b"".join(
        zero if data[at : at + block] == base[at : at + block] else data[at : at + block]
        for at in range(0, len(data), block)
    )


def test_raw_device_image_holds_nothing_the_border_copy_opens(ext4: tuple[Path, Path]) -> None:
    image, mount = ext4
    directory = mount / "burner"
    passphrase = "the passphrase taken later"
    with (
        Vault.create(directory, passphrase, rng=SystemRandom(), kdf=FAST_TEST_KDF) as v,
        v.transaction() as tx,
    ):
        tx.put("message", b"old", b"PRECOPY-message " * 20)
    os.sync()
    border = image.read_bytes()  # the whole device, imaged at the border
    t_keys = record_keys((directory / "vault.key").read_bytes(), passphrase)

    deleted = [f"CANARY-{n}-on-the-raw-device-{'y' * n}" for n in range(4)]
    live: bytes = b""
    live_keys: list[bytes] = []
    for n, canary in enumerate(deleted):
        with Vault.open(directory, passphrase, rng=SystemRandom()) as v:
            with v.transaction() as tx:
                tx.put("message", f"m{n}".encode(), canary.encode() * (1 + 30 * n))
            if n == len(deleted) - 1:
                os.sync()
                live, live_keys = (
                    image.read_bytes(),
                    record_keys((directory / "vault.key").read_bytes(), passphrase),
                )
            with v.transaction() as tx:
                tx.delete("message", f"m{n}".encode())
    final_keys = record_keys((directory / "vault.key").read_bytes(), passphrase)
    _run("umount", str(mount))
    seized = image.read_bytes()

    after = {"device": changed_since(seized, border)}
    assert opened_canaries([after], t_keys, deleted) == set()
    assert opened_canaries([after], final_keys, deleted) == set()
    assert grep([{"device": seized}], deleted) == set()
    # Control: through the file system, the examiner finds a live record under its own key.
    assert opened_canaries([{"device": changed_since(live, border)}], live_keys, deleted) == {deleted[-1]}
