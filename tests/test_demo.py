"""``burner demo`` (what ``make demo`` runs) and ``burner demo --core`` run end to end and exit 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from burnerkit.__main__ import main
from burnerkit.crypto.hybrid import combine


# The real Argon2 cost in every one of the demo's burner runs (it will not take the test
# KDF): the most CPU of any test, so `make soak` (run by CI) runs it, not `make test`.
@pytest.mark.slow
def test_make_demo_scenario_runs_end_to_end_and_cleans_up(tmp_path):
    """The main scenario: a relay process, two burners through the real CLI, pairing, burn."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("BURNER_HOME", None)
    env.pop("BURNER_PASSPHRASE", None)
    result = subprocess.run(
        [sys.executable, "-m", "burnerkit", "demo"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for marker in (
        "new contact bob accepted your invitation",
        "body sizes [15872] bytes",
        "Bob comes back online",
        "alice is verified: the safety codes match",
        "paired with alice (authenticated by the code)",
        "ALERT: bob: fork",  # the copy of Bob's home that sent
        "debrief of alice: ",  # Alice's debrief, the fork in it
        "after: 0 files in Bob's home",
        "All checks passed",
    ):
        assert marker in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []  # the demo's directory is gone


def test_core_demo_runs_every_step_in_process(capsys):
    assert main(["demo", "--core"]) == 0
    out = capsys.readouterr().out
    for marker in (
        "refused: InvitationConsumedError",
        "GapDetected(first=4, last=5)",
        "replay of 'update 3' refused: DuplicateMessageError",
        "refused: DecryptionError: message could not be decrypted",
        "clone alert: ForkDetectedError",
        "All checks passed.",
    ):
        assert marker in out


def test_burner_console_script_shows_its_version():
    result = subprocess.run(
        [sys.executable, "-m", "burnerkit", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("burner 0.1.0")


def test_unknown_command_is_a_usage_error_without_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "burnerkit", "nonsense"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_hybrid_combiner_refuses_a_short_kem_secret():
    with pytest.raises(ValueError, match="32 bytes"):
        combine(bytes(32), bytes(32), bytes(16), info=b"x", length=32)
