"""The examiner reads a seized device's home: no burner or contact name, no burn marker that says so.

Issue 15, items 2 and 5 (names): a device holding two burners, each paired with a contact,
used through the real ``burner`` command; then everything an examiner can read without a
passphrase (every path under the home, the raw bytes of every file, ``burner list``) is
searched for the names, and a burn must leave nothing of the burner behind, not even an
empty directory or a marker. docs/protocol.md §15.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.errors import AlreadyExistsError, VaultLockedError
from tests.e2e.helpers import STEP_TIMEOUT, Outcome, Person, files_under, spellings_of, together
from tests.integration.harness import RelayProcess

#: Long, distinctive names: a three-letter name could turn up by chance in random bytes.
ALICE, BOB = "alice-delegation", "bob-negotiator"
ALICE_PASS, BOB_PASS = "the passphrase of alice", "the passphrase of bob"
#: What alice and bob call their contacts, and what the contacts call them.
ALICE_CONTACT, BOB_CONTACT = "zephyr-office", "quimby-source"
RENAMED_CONTACT = "xanthe-embassy"
ID = re.compile(r"[a-z2-7]{26}")


def vault_files_only(directory: Path) -> bool:
    """Whether ``directory`` holds only the vault's own files (``vault.key``, ``vault.sqlite``...)."""
    return all(path.is_file() and path.name.startswith("vault.") for path in directory.iterdir())


@pytest.fixture
def relay(shared_relay: RelayProcess) -> RelayProcess:
    assert shared_relay.running, "an earlier test stopped the shared relay"
    return shared_relay


def paths_under(root: Path) -> list[Path]:
    """Every file and directory under ``root``, relative to it."""
    return sorted(path.relative_to(root) for path in root.rglob("*")) if root.exists() else []


def names_in_paths(root: Path, names: list[str]) -> list[tuple[str, str]]:
    return [(str(path), name) for path in paths_under(root) for name in names if name in str(path)]


def names_in_bytes(root: Path, names: list[str]) -> list[tuple[str, str]]:
    """(file, name) for every file under ``root`` holding a spelling of a name in its raw bytes."""
    found = []
    for path in files_under(root):
        data = path.read_bytes()
        found += [(str(path.relative_to(root)), n) for n in names if any(s in data for s in spellings_of(n))]
    return found


def without_passphrase(device: Person, *args: str) -> Outcome:
    """``burner ARGS`` as an examiner types it: the device's home, no passphrase, no terminal."""
    env = {key: value for key, value in device.env().items() if key != "BURNER_PASSPHRASE"}
    done = subprocess.run(
        [sys.executable, "-m", "burnerkit", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
        start_new_session=True,  # no controlling terminal: getpass cannot ask on /dev/tty
    )
    outcome = Outcome(args, done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr, outcome.describe()
    return outcome


def test_device_home_names_no_burner_and_no_contact(relay: RelayProcess, tmp_path: Path) -> None:
    root = tmp_path / "people"
    device = Person(root, "device")  # one phone, two burners in its home
    as_alice, as_bob = {"BURNER_PASSPHRASE": ALICE_PASS}, {"BURNER_PASSPHRASE": BOB_PASS}
    office, source = Person(root, "office"), Person(root, "source")
    together(  # independent steps overlap: a `burner` process costs about half a second
        office.mint(relay.url),
        source.mint(relay.url),
        device.start("new", ALICE, "--relay", relay.url, "--expires", "1d", env=as_alice),
        device.start("new", BOB, "--relay", relay.url, "--expires", "1d", env=as_bob),
    )

    # Pairing, messages, renaming a contact, the usual reading commands.
    alice_link, source_link = (
        outcome.json()["link"]
        for outcome in together(
            device.start("invite", "--burner", ALICE, "--for", ALICE_CONTACT, "--json", env=as_alice),
            source.start("invite", "--for", "bob", "--json"),
        )
    )
    together(
        office.start("accept", alice_link, "--name", "alice"),
        device.start("accept", source_link, "--burner", BOB, "--name", BOB_CONTACT, env=as_bob),
    )
    together(device.start("inbox", "--burner", ALICE, env=as_alice), source.start("inbox"))
    together(
        device.start("send", "--burner", ALICE, ALICE_CONTACT, "hello office", env=as_alice),
        office.start("send", "alice", "hello alice"),
        source.start("send", "bob", "hello bob"),
    )
    to_bob, to_alice = together(
        device.start("inbox", "--burner", BOB, "--json", env=as_bob),
        device.start("inbox", "--burner", ALICE, "--json", env=as_alice),
    )
    assert [m["text"] for m in to_bob.json()] == ["hello bob"]
    assert [m["text"] for m in to_alice.json()] == ["hello alice"]
    device.run("contacts", "rename", ALICE_CONTACT, RENAMED_CONTACT, "--burner", ALICE, env=as_alice)
    together(
        *(
            device.start(*args, "--burner", ALICE, env=as_alice)
            for args in (("contacts",), ("history", RENAMED_CONTACT), ("verify", RENAMED_CONTACT))
        ),
        device.start("history", BOB_CONTACT, "--burner", BOB, env=as_bob),
        device.start("list", env=as_alice),
    )

    # Every path and every byte on the device: no name, only ids and the vault's own files.
    names = [ALICE, BOB, ALICE_CONTACT, BOB_CONTACT, RENAMED_CONTACT]
    assert names_in_paths(device.home, names) == []
    assert names_in_bytes(device.home, names) == []
    directories = list(device.home.iterdir())
    assert len(directories) == 2
    for directory in directories:
        assert ID.fullmatch(directory.name), directory.name
        assert vault_files_only(directory)  # no marker, no subdirectory

    # Without a passphrase, `list` counts; it names nothing.
    listed = without_passphrase(device, "list")
    assert listed.returncode == 0, listed.describe()
    assert listed.stdout.startswith(f"2 burners in {device.home}; names are sealed")
    assert listed.stdout.count("\n") == 1
    assert without_passphrase(device, "list", "--json").json() == [{"name": None, "expires_at": None}] * 2
    for name in names:
        assert name not in listed.stdout + listed.stderr
    # With a passphrase, the burners it opens, and how many it does not.
    lines = device.run("list", env=as_alice).stdout.splitlines()
    assert lines[0].startswith(f"{ALICE}  expires ")
    assert lines[1:] == ["1 burner that this passphrase does not open"]
    assert [entry["name"] for entry in device.json("list")] == [None, None]  # device's own passphrase
    # A command that needs the name asks its passphrase first: it cannot know which directory.
    unasked = without_passphrase(device, "contacts", "--burner", ALICE)
    assert unasked.returncode == 2, unasked.describe()
    assert "no terminal to ask for the passphrase: set BURNER_PASSPHRASE" in unasked.stderr

    # Bob burns: his directory goes, with its marker; alice's stays as it was.
    alice_directory = next(d for d in directories if _opens(d, ALICE_PASS))
    burned = device.run("burn", BOB, "--yes", "--json", env=as_bob).json()
    assert burned["burned"] == BOB
    assert list(device.home.iterdir()) == [alice_directory]
    assert vault_files_only(alice_directory)
    assert names_in_paths(device.home, names) == []
    assert names_in_bytes(device.home, names) == []
    # Alice burns: the home itself goes; no empty directory keeps mint and burn times.
    device.run("burn", ALICE, "--yes", env=as_alice)
    assert not device.home.exists()


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: its bytes and its modification time."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in files_under(root)}


def _opens(directory: Path, passphrase: str) -> bool:
    from burnerkit.vault import Vault

    try:
        Vault.open(directory, passphrase).close()
    except VaultLockedError:
        return False
    return True


def test_wrong_passphrase_and_unknown_name_get_one_error(relay: RelayProcess, tmp_path: Path) -> None:
    device = Person(tmp_path / "people", "device")
    device.run("new", ALICE, "--relay", relay.url, "--offline", env={"BURNER_PASSPHRASE": ALICE_PASS})
    device.run("new", BOB, "--relay", relay.url, "--offline", env={"BURNER_PASSPHRASE": BOB_PASS})
    before = _files(device.home)
    outcomes = [
        device.run("contacts", "--burner", name, expect=4, env={"BURNER_PASSPHRASE": passphrase})
        for name, passphrase in (
            (ALICE, "not anyone's passphrase"),  # a wrong passphrase
            (ALICE, BOB_PASS),  # a passphrase that opens another burner
            ("ghost", ALICE_PASS),  # no such burner
        )
    ]
    assert [outcome.error for outcome in outcomes] == [
        f"burner: no burner named '{ALICE}' opens with this passphrase",
        f"burner: no burner named '{ALICE}' opens with this passphrase",
        "burner: no burner named 'ghost' opens with this passphrase",
    ]
    # Nothing was changed by the failed tries (not even bob's vault, which BOB_PASS opened to read
    # its name): every file's bytes and times are as they were, and both burners still open.
    assert _files(device.home) == before
    assert device.run("contacts", "--burner", ALICE, env={"BURNER_PASSPHRASE": ALICE_PASS}).returncode == 0
    assert device.run("contacts", "--burner", BOB, env={"BURNER_PASSPHRASE": BOB_PASS}).returncode == 0


def test_a_name_the_passphrase_already_opens_is_refused_and_another_passphrase_may_reuse_it(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path / "home")
    mint: Callable[[str, str], Messenger] = lambda name, passphrase: Messenger.create(  # noqa: E731
        home, name, passphrase, relay_url="ws://127.0.0.1:7000", kdf=FAST_TEST_KDF
    )
    mint(ALICE, ALICE_PASS).close()
    with pytest.raises(AlreadyExistsError, match=f"a burner named '{ALICE}' already exists"):
        mint(ALICE, ALICE_PASS)
    assert home.count() == 1  # nothing was made
    # Another passphrase cannot see the first: the same name is its own burner.
    mint(ALICE, BOB_PASS).close()
    assert home.count() == 2
    with Messenger.open(home, ALICE, BOB_PASS) as second, Messenger.open(home, ALICE, ALICE_PASS) as first:
        assert first._directory != second._directory
    assert sorted(os.listdir(home.root)) == sorted(path.name for path in home.slots())
