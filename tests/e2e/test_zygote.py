"""The fork server the e2e steps and relays start from (tests/e2e/zygote.py) gives real processes.

A forked step must print, exit and die as the exec'd one does: these run the same commands
both ways and compare what a test can see.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import zygote

pytestmark = pytest.mark.skipif(not zygote._usable(), reason="no zygote here: every step is exec'd")


def _both(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:
    command = [sys.executable, "-m", "burnerkit", *args]
    pipes: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "text": True,
    }
    return zygote.popen(command, env=env, **pipes), zygote.popen(command, exec=True, env=env, **pipes)


@pytest.mark.parametrize(
    "args",
    [["--version"], ["nonsense"], ["contacts"], ["new", "x", "--relay", "ws://"]],
)
def test_forked_step_prints_and_exits_as_the_exec_of_it_does(args: list[str], tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BURNER_")}
    env["BURNER_HOME"] = str(tmp_path / "home")
    env["BURNER_PASSPHRASE"] = "a passphrase"
    forked, execd = _both(args, env)
    assert isinstance(forked, zygote.ForkedPopen)
    assert not isinstance(execd, zygote.ForkedPopen)
    assert forked.pid not in (os.getpid(), execd.pid)
    assert forked.pid not in (z.process.pid for z in zygote._zygotes.values())
    assert forked.communicate(timeout=60) == execd.communicate(timeout=60)
    assert forked.returncode == execd.returncode


def test_forked_relay_answers_sigterm_and_sigkill_as_a_process(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "burnerkit", "relay", "serve", "--host", "127.0.0.1", "--port", "0"]
    for sig, returncode in ((signal.SIGTERM, 0), (signal.SIGKILL, -signal.SIGKILL)):
        store = tmp_path / f"{sig.name}.db"
        relay = zygote.popen(
            [*command, "--store", str(store)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
        )
        assert isinstance(relay, zygote.ForkedPopen)
        assert relay.stdout is not None
        assert relay.stdout.readline().startswith("relay listening on ws://127.0.0.1:")
        assert relay.poll() is None
        relay.send_signal(sig)
        assert relay.wait(timeout=30) == returncode
        relay.stdout.close()
        assert store.exists()  # it ran in cwd=tmp_path with its own argv


def test_a_step_whose_environment_the_zygote_cannot_stand_for_is_execd(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "7", "BURNER_HOME": str(tmp_path)}
    step = zygote.popen(
        [sys.executable, "-m", "burnerkit", "--version"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert not isinstance(step, zygote.ForkedPopen)
    assert step.communicate(timeout=60)[0].startswith("burner ")
