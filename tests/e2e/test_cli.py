"""The daily command line: start-up, -h, the rest of the line as a message, contacts removed
and renamed, re-pairing a taken name, expiry in ``list``, times in local time, docs/cli.md.

Most steps call ``burnerkit.cli.main.run`` in this process (what ``burner`` runs, minus the
interpreter's start-up) against a real relay process; burners are minted and paired through
the Messenger with the fast test KDF, so each test takes about a second.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.cli import errors, reference
from burnerkit.cli.main import run
from burnerkit.cli.output import remaining, stamp
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.errors import RelayRejectedError
from tests.e2e.helpers import queue_ids
from tests.e2e.test_terminal import Terminal, plain
from tests.integration.harness import RelayProcess, Relays

PASS = "the passphrase of both"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Burner = Callable[..., Ran]


@pytest.fixture
def burner(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Burner:
    """``burner(home, *args)``: run the command in this process as that home's owner."""
    for key in [key for key in os.environ if key.startswith("BURNER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("BURNER_PASSPHRASE", PASS)

    def call(home: Path, *args: str) -> Ran:
        monkeypatch.setenv("BURNER_HOME", str(home))
        capsys.readouterr()
        code = run(list(args))
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, err
        return Ran(code, out, err)

    return call


def mint(root: Path, name: str, url: str) -> Messenger:
    return Messenger.create(Home(root / name), name, PASS, relay_url=url, kdf=FAST_TEST_KDF)


@pytest.fixture
def paired(relay: RelayProcess, tmp_path: Path) -> tuple[Path, Path]:
    """The homes of alice and bob, paired (she calls him bob, he calls her alice)."""
    alice, bob = mint(tmp_path, "alice", relay.url), mint(tmp_path, "bob", relay.url)
    link = asyncio.run(alice.invite("bob")).link
    asyncio.run(bob.accept(link, "alice"))
    assert asyncio.run(alice.receive()).new_contacts == ["bob"]
    alice.close()
    bob.close()
    return tmp_path / "alice", tmp_path / "bob"


def texts(home: Path, name: str) -> list[str]:
    with Messenger.open(Home(home), name, PASS) as messenger:
        return [m.text for m in asyncio.run(messenger.receive()).messages]


# -- start-up and help --------------------------------------------------------------------------

HEAVY = "{'cryptography', 'websockets', 'segno', 'argon2', 'rich', 'asyncio'}"


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["send", "-h"], ["list", "--home", "/nowhere"]])
def test_version_and_help_load_no_heavy_module(args: list[str]) -> None:
    """A logical check of the start-up time: what is never imported costs nothing.

    Off a terminal (here a pipe) not even Rich: what it would print there is plain text.
    """
    script = (
        "import sys; from burnerkit.cli.main import run; run(sys.argv[1:]); "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY}))"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("BURNER_")}
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60, check=True, env=env
    )
    assert done.stdout.splitlines()[-1] == "[]"


def test_dash_h_is_help_for_every_command_and_group(capsys: pytest.CaptureFixture[str]) -> None:
    for path, _ in [("burner", ""), *reference.commands()]:
        assert run([*path.split()[1:], "-h"]) == 0, path
        out, _ = capsys.readouterr()
        assert out.startswith(f"Usage: {path} "), path
        assert "-h, --help" in out, path


# -- times ----------------------------------------------------------------------------------------


@pytest.fixture
def central_european_time() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = "CET-1CEST,M3.5.0,M10.5.0/3"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_times_are_shown_in_local_time_with_their_zone(central_european_time: None) -> None:
    assert stamp(1_796_652_180) == "2026-12-07 15:03 CET"  # 14:03 UTC
    assert stamp(1_783_433_000) == "2026-07-07 16:03 CEST"


def test_time_left_is_said_in_days_and_hours() -> None:
    now = 1_800_000_000.0
    assert remaining(now + 3 * 86400 + 4 * 3600 + 59, now) == "in 3d 4h"
    assert remaining(now + 2 * 3600 + 5 * 60, now) == "in 2h 5m"
    assert remaining(now + 30, now) == "in <1m"
    assert remaining(now, now) == "expired"
    assert remaining(now - 5, now) == "expired"


# -- send -------------------------------------------------------------------------------------------


def test_send_takes_the_rest_of_the_line(burner: Burner, paired: tuple[Path, Path]) -> None:
    alice, bob = paired
    sent = burner(alice, "send", "bob", "see", "you", "at", "6", "--json")
    assert (sent.code, sent.json()["status"], sent.err) == (0, "delivered", "")
    quoted = burner(alice, "send", "bob", "two  spaces", "kept")  # the shell's quoting is kept
    assert (quoted.code, quoted.out) == (0, "sent to bob (#2)\n")
    dashed = burner(alice, "send", "bob", "--", "-5", "degrees", "--json")  # after --, all is text
    assert dashed.code == 0
    empty = burner(alice, "send", "bob")
    assert empty.code == 2
    assert "Missing argument 'WORDS'" in empty.err
    assert texts(bob, "bob") == ["see you at 6", "two  spaces kept", "-5 degrees --json"]


# -- contacts remove / rename -------------------------------------------------------------------


def test_removed_contact_is_gone_with_its_messages_and_its_sends_are_refused(
    burner: Burner, paired: tuple[Path, Path], relay: RelayProcess
) -> None:
    alice, bob = paired
    assert burner(alice, "send", "bob", "hello").code == 0
    assert burner(bob, "send", "alice", "hi", "back").code == 0
    assert burner(alice, "inbox").code == 0
    queues_before = queue_ids(relay.store_path)

    unasked = burner(alice, "contacts", "remove", "bob")
    assert unasked.code == 2
    assert unasked.err == "burner: removing bob cannot be undone: pass --yes (no terminal to ask on)\n"
    assert burner(alice, "history", "bob", "--json").json() != []  # nothing changed

    removed = burner(alice, "contacts", "remove", "bob", "--yes", "--json")
    assert removed.code == 0
    assert removed.json() == {"removed": "bob", "messages": 2, "unsent": 0, "queue_deleted": True}
    assert burner(alice, "contacts", "--json").json() == []
    assert burner(alice, "history", "bob").code == 3
    with Messenger.open(Home(alice), "alice", PASS) as messenger:
        assert messenger._vault.items("message") == []
        assert messenger._vault.items("alert") == []
    assert len(queues_before - queue_ids(relay.store_path)) == 1  # alice's queue for bob

    # The defence: the relay no longer has the queue bob sends to, so it refuses him.
    with Messenger.open(Home(bob), "bob", PASS) as messenger, pytest.raises(RelayRejectedError):
        asyncio.run(messenger.send("alice", "are you there?"))
    refused = burner(bob, "send", "alice", "still", "there?")
    assert refused.code == 6


def test_rename_keeps_the_conversation_and_refuses_a_taken_name(
    burner: Burner, paired: tuple[Path, Path]
) -> None:
    alice, _ = paired
    assert burner(alice, "send", "bob", "before", "the", "rename").code == 0
    renamed = burner(alice, "contacts", "rename", "bob", "robert")
    assert (renamed.code, renamed.out) == (0, "bob is now called robert\n")
    assert [c["alias"] for c in burner(alice, "contacts", "--json").json()] == ["robert"]
    assert [e["text"] for e in burner(alice, "history", "robert", "--json").json()] == ["before the rename"]
    assert burner(alice, "send", "robert", "after").code == 0

    assert burner(alice, "contacts", "rename", "bob", "x").code == 3  # gone under that name
    bad = burner(alice, "contacts", "rename", "robert", "Bad Name")
    assert bad.code == 2
    assert "contact name must be 1-32 characters" in bad.err
    assert burner(alice, "invite", "--for", "carol", "--json", "--no-qr").code == 0
    taken = burner(alice, "contacts", "rename", "robert", "carol")
    assert (taken.code, taken.err) == (10, "burner: an open invitation is for 'carol': pick another name\n")
    listed = burner(alice, "contacts")  # the group's default is still the listing
    assert listed.out.startswith("robert  [unverified]")
    # Options given to the group before the subcommand count for the subcommand.
    again = burner(alice, "contacts", "--json", "--burner", "alice", "rename", "robert", "rob")
    assert (again.code, again.json()["alias"]) == (0, "rob")


# -- re-pairing a taken name --------------------------------------------------------------------


def test_repairing_a_taken_name_without_a_terminal_needs_replace(
    burner: Burner, paired: tuple[Path, Path]
) -> None:
    alice, bob = paired
    message = "burner: bob is already a contact: pass --replace to replace it (no terminal to ask on)\n"
    for args in (("invite", "--for", "bob"), ("pair", "--name", "bob", "--timeout", "1")):
        refused = burner(alice, *args)
        assert (refused.code, refused.out, refused.err) == (2, "", message), args
    with Messenger.open(Home(alice), "alice", PASS) as messenger:
        assert messenger._vault.items("invite") == []  # nothing was made

    link = burner(alice, "invite", "--for", "bob2", "--json").json()["link"]
    refused = burner(bob, "accept", link, "--name", "alice")
    assert refused.code == 2
    assert refused.err == message.replace("bob", "alice")
    replaced = burner(bob, "accept", link, "--name", "alice", "--replace", "--json")
    assert (replaced.code, replaced.json()["alias"]) == (0, "alice")


# -- list -------------------------------------------------------------------------------------------


def test_list_names_only_the_burners_the_passphrase_opens(
    burner: Burner, tmp_path: Path, relay: RelayProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    mint(tmp_path, "home", relay.url).close()  # a burner "home" in home/<id>, 7 days
    Messenger.create(
        Home(home), "other", "another passphrase", relay_url=relay.url, kdf=FAST_TEST_KDF
    ).close()
    listed = burner(home, "list", "--json").json()
    assert [item["name"] for item in listed] == ["home", None]  # $BURNER_PASSPHRASE opens one
    assert listed[1]["expires_at"] is None
    assert 0 < listed[0]["expires_at"] - time.time() <= 7 * 86400
    text = burner(home, "list").out.splitlines()
    assert text[0].startswith("home  expires ")
    assert text[0].endswith("(in 6d 23h)")
    assert text[1:] == ["1 burner that this passphrase does not open"]

    monkeypatch.delenv("BURNER_PASSPHRASE")  # no passphrase, no question: how many, no name
    assert burner(home, "list", "--json").json() == [{"name": None, "expires_at": None}] * 2
    assert burner(home, "list").out == (
        f"2 burners in {home}; names are sealed: add --unlock (or set $BURNER_PASSPHRASE) "
        "to list those a passphrase opens\n"
    )


# -- docs/cli.md and the exit codes ----------------------------------------------------------------


def test_docs_cli_md_is_written_from_the_commands_and_the_exit_table() -> None:
    written = (ROOT / "docs" / "cli.md").read_text()
    assert written == reference.render(), (
        "docs/cli.md is out of date: python -m burnerkit.cli.reference > docs/cli.md"
    )


def test_every_exit_code_the_cli_gives_is_in_the_table() -> None:
    table = {int(row.split("|")[1]) for row in reference.exit_table()[2:]}
    given = {code for _, code in errors._CODES} | {
        0,
        1,
        errors.EXIT_USAGE,
        errors.EXIT_INTERNAL,
        errors.EXIT_INTERRUPTED,
        13,  # burner inbox's alert (cli/messages.py)
    }
    assert given == table


# -- on a terminal ----------------------------------------------------------------------------------


def test_on_a_terminal_remove_asks_first_and_spinners_show(paired: tuple[Path, Path]) -> None:
    alice, _ = paired
    declined = Terminal(alice, "contacts", "remove", "bob", "--burner", "alice")
    declined.expect("passphrase for alice: ")
    declined.type(PASS)
    declined.expect("[y/N]: ")
    declined.type("n")
    assert declined.finish() == 1
    seen = plain(declined.seen).decode()
    assert "unlocking alice…" in seen  # the spinner, on the terminal only
    assert "remove bob and the 0 message(s) kept with them? There is no undo. [y/N]: " in seen
    assert "burner: nothing changed" in seen

    accepted = Terminal(alice, "contacts", "remove", "bob")
    accepted.expect("passphrase: ")  # no name given: the home's only burner, whose name is sealed
    accepted.type(PASS)
    accepted.expect("[y/N]: ")
    accepted.type("y")
    assert accepted.finish() == 0
    seen = plain(accepted.seen).decode()
    assert "connecting to ws://127.0.0.1:" in seen
    assert "removed bob: 0 message(s) and 0 unsent deleted" in seen


# -- relay set --------------------------------------------------------------------------------------


def test_relay_set_moves_the_burner_and_each_contact_follows(
    paired: tuple[Path, Path], relays: Relays, burner: Burner
) -> None:
    alice, bob = paired
    two = relays.start()
    moved = burner(alice, "relay", "set", two.url)
    assert (moved.code, moved.out) == (0, "bob: pending: told; switches when they next receive\n")
    assert f"alice now uses {two.url} for its queues" in moved.err
    assert "Open invitations stay on the old relay" in moved.err
    # Bob hears of it with his next inbox, and writes to alice's queue on relay two.
    assert burner(bob, "inbox").code == 0
    assert burner(bob, "contacts", "--json").json()[0]["relay"] == two.url
    assert burner(bob, "send", "alice", "found", "you").code == 0
    assert texts(alice, "alice") == ["found you"]
    again = burner(alice, "relay", "set", two.url, "--json")
    assert again.json() == {"relay": two.url, "contacts": [{"alias": "bob", "state": "moved"}]}
