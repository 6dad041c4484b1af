"""The guides' commands, run as written: docs/field-guide.md and docs/operating.md.

Every ``$ `` line of a ``console`` block is run in order by ``bash``, as the reader would type
it, in a home of its own, against real relay processes. A guide whose text drifts from the
program (a renamed option, a changed output) fails here. What the reader would do by hand on
the other side (the office reads out a code, hands over a link, answers) is played by
:class:`Person` steps keyed to the command they answer: :data:`_FIELD_STEPS` must name exactly
the guide's commands, in order, so a command added to the guide needs a line here.

The ``sh`` blocks of the operating guide need root and systemd (``useradd``, ``systemctl``):
they are checked by ``bash -n`` only. The systemd unit's ``ExecStart`` is run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.helpers import STEP_TIMEOUT, Person, Running
from tests.integration.harness import Lines, Relays

ROOT = Path(__file__).resolve().parents[2]
FIELD_GUIDE = ROOT / "docs" / "field-guide.md"
OPERATING = ROOT / "docs" / "operating.md"
BURNER = Path(sys.executable).with_name("burner")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(path: Path, kind: str) -> list[str]:
    """The bodies of the fenced blocks of ``kind`` (``console``, ``sh``, ``ini``) in ``path``."""
    return [body for lang, body in _FENCE.findall(path.read_text()) if lang == kind]


def commands(path: Path) -> list[str]:
    """The ``$ `` lines of the ``console`` blocks of ``path``, in order."""
    return [
        line.removeprefix("$ ")
        for body in blocks(path, "console")
        for line in body.splitlines()
        if line.startswith("$ ")
    ]


@dataclass
class Reader:
    """Whoever follows the guide: ``bash`` with a home of their own and the variables they set."""

    person: Person
    variables: dict[str, str] = field(default_factory=dict)

    def run(self, command: str) -> str:
        """Run one guide line in bash (``set -u``: a variable the guide forgot fails); its stdout."""
        env = self.person.env(self.variables)
        env["PATH"] = f"{BURNER.parent}{os.pathsep}{env.get('PATH', '')}"
        result = subprocess.run(
            ["bash", "-uc", command],
            env=env,
            cwd=self.person.home.parent,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, f"{command!r} exited {result.returncode}: {result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        return result.stdout


@dataclass
class Trip:
    """The field guide's world: the traveller, the office and a desk, two relays."""

    reader: Reader
    office: Person
    desk: Person
    new_relay: str
    offer: Running | None = None


def _export_relay(trip: Trip, line: str) -> None:
    # The guide's URL names a relay that does not exist; the reader gets the test's pinned one.
    assert line.startswith("export RELAY='wss://")
    assert "#sha256=" in line


def _pair_offer(trip: Trip, line: str) -> None:
    trip.offer = trip.office.start("pair", "--name", "trip", "--json", "--timeout", "30")
    assert trip.offer.process.stdout is not None
    trip.reader.variables["CODE"] = json.loads(trip.offer.process.stdout.readline())["code"]


def _pair_done(trip: Trip, out: str) -> None:
    assert trip.offer is not None
    trip.offer.finish(0)
    assert "paired with office (authenticated by the code)" in out


def _desk_invites(trip: Trip, line: str) -> None:
    trip.reader.variables["LINK"] = trip.desk.json("invite", "--for", "trip")["link"]


def _desk_takes_acceptance(trip: Trip, out: str) -> None:
    assert "paired with desk" in out
    trip.desk.run("inbox")


def _desk_code(trip: Trip, line: str) -> None:
    trip.reader.variables["SAFETY_CODE"] = trip.desk.json("verify", "trip")["safety_code"]


def _office_code(trip: Trip, line: str) -> None:
    trip.reader.variables["SAFETY_CODE"] = trip.office.json("verify", "trip")["safety_code"]


def _office_reads(trip: Trip, out: str) -> None:
    assert "Landed. Room 412." in trip.office.texts()


def _office_writes(trip: Trip, line: str) -> None:
    trip.office.run("send", "trip", "Welcome. Call at 9.")


def _new_relay(trip: Trip, line: str) -> None:
    trip.reader.variables["NEW_RELAY"] = trip.new_relay


def _office_follows_the_move(trip: Trip, line: str) -> None:
    # The office takes the move (and confirms it on the new relay), then writes there.
    trip.office.run("inbox")
    trip.office.run("send", "trip", "Noted the new relay.")


Hook = Callable[[Trip, str], None]

#: Each command of the field guide, in order, with what the other side does before and after
#: it (after-hooks get the command's stdout).
_FIELD_STEPS: list[tuple[str, Hook | None, Hook | None]] = [
    ("export RELAY=", _export_relay, None),
    ("burner new trip", None, None),
    ("burner list", None, lambda trip, out: _assert_in("trip", out)),
    ('burner pair "$CODE" --name office', _pair_offer, _pair_done),
    ('burner accept "$LINK" --name desk', _desk_invites, _desk_takes_acceptance),
    ("burner verify desk", None, lambda trip, out: _assert_in("safety code", out.lower())),
    ('burner verify desk --code "$SAFETY_CODE"', _desk_code, lambda t, out: _assert_in("verified", out)),
    ("burner contacts", None, lambda trip, out: _assert_in("desk", out)),
    ("burner send office Landed. Room 412.", None, _office_reads),
    ("burner inbox --wait 10", _office_writes, lambda t, out: _assert_in("Welcome. Call at 9.", out)),
    ("burner history office", None, lambda trip, out: _assert_in("Landed. Room 412.", out)),
    ("burner send office --disappear 1h", None, None),
    ("burner alerts", None, None),
    ('burner verify office --code "$SAFETY_CODE"', _office_code, None),
    ("burner alerts office --clear", None, None),
    ('burner relay set "$NEW_RELAY"', _new_relay, None),
    ("burner inbox --wait 10", _office_follows_the_move, lambda t, o: _assert_in("Noted the new relay.", o)),
    ("burner contacts remove desk --yes", None, None),
    ("burner debrief", None, lambda trip, out: _assert_in("debrief of trip", out)),
    ("burner debrief --json > debrief.json", None, None),
    ("burner burn trip --yes", None, None),
    ("burner list", None, lambda trip, out: _assert_in("no burners", out)),
]


def _assert_in(needle: str, out: str) -> None:
    assert needle in out, out


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [str(BURNER), "relay", "cert", "--host", "127.0.0.1", "--cert", str(cert), "--key", str(key)],
        check=True,
        capture_output=True,
        timeout=STEP_TIMEOUT,
    )
    return cert, key


# In `make soak` (CI runs it): every command of the field guide, in order: 18 s.
@pytest.mark.slow
def test_field_guide_commands_run_in_order(relays: Relays, tmp_path: Path) -> None:
    lines = commands(FIELD_GUIDE)
    steps = [step for step, _, _ in _FIELD_STEPS]
    assert len(lines) == len(steps), f"the guide has {lines}, this test plays {steps}"
    for line, step in zip(lines, steps, strict=True):
        assert line.startswith(step), f"the guide says {line!r} where this test plays {step!r}"
    cert, key = _self_signed(tmp_path)
    relay = relays.start("--tls-cert", str(cert), "--tls-key", str(key))
    assert relay.url.startswith("wss://127.0.0.1:")
    assert "#sha256=" in relay.url
    moved_to = relays.start()
    people = tmp_path / "people"
    office, desk = Person(people, "office"), Person(people, "desk")
    for person in (office, desk):
        person.run("new", person.name, "--relay", relay.url, "--expires", "1d")
    trip = Trip(Reader(Person(people, "trip"), {"RELAY": relay.url}), office, desk, moved_to.url)

    for line, (_, before, after) in zip(lines, _FIELD_STEPS, strict=True):
        if before is not None:
            before(trip, line)
        if line.startswith("export "):
            continue
        out = trip.reader.run(line)
        if after is not None:
            after(trip, out)


# -- the operating guide ----------------------------------------------------------------------


def _moved(line: str, root: Path) -> str:
    """``line`` with the guide's system paths under ``root``, its port free, on loopback."""
    for system in ("/etc/burner-relay", "/var/lib/burner-relay"):
        line = line.replace(system, str(root / system.strip("/").replace("/", "-")))
    line = line.replace("/opt/burnerkit/bin/burner", str(BURNER))
    if line.startswith("burner "):
        line = f"{BURNER} {line.removeprefix('burner ')}"
    return line.replace("--host 0.0.0.0", "--host 127.0.0.1")


def _serve(command: str, root: Path) -> str:
    """Start a ``burner relay serve`` line of the guide, read its URL, stop it; the URL."""
    args = shlex.split(_moved(command, root))
    args[args.index("--port") + 1] = "0"  # the guide's 7443 may be taken here
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root, env=_clean_env()
    )
    try:
        line = Lines(process).next()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=STEP_TIMEOUT)
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
    return line


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("BURNER_")}


def test_operating_guide_commands_run(tmp_path: Path) -> None:
    for directory in ("etc-burner-relay", "var-lib-burner-relay"):
        (tmp_path / directory).mkdir()
    cert_line, serve_line = commands(OPERATING)
    assert cert_line.startswith("burner relay cert ")
    assert serve_line.startswith("burner relay serve ")

    made = subprocess.run(
        shlex.split(_moved(cert_line, tmp_path)),
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=True,
        env=_clean_env(),
    )
    pinned = made.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"wss://relay\.example\.org:7443#sha256=[A-Za-z0-9_-]{43}", pinned), made.stdout
    pin = pinned.split("#")[1]

    listening = _serve(serve_line, tmp_path)
    assert re.fullmatch(rf"relay listening on wss://relay\.example\.org:\d+#{pin}", listening)

    (unit,) = blocks(OPERATING, "ini")
    (exec_start,) = (line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert re.fullmatch(
        rf"relay listening on wss://relay\.example\.org:\d+#{pin}",
        _serve(exec_start.removeprefix("ExecStart="), tmp_path),
    )


def test_operating_guide_admin_lines_are_valid_shell() -> None:
    scripts = blocks(OPERATING, "sh")
    assert scripts, "the operating guide lost its sh blocks"
    for script in scripts:
        checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
