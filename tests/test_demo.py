"""The `burner demo` command runs the core scenario end to end and exits 0."""

from __future__ import annotations

import subprocess
import sys

import pytest

from burnerkit.__main__ import main
from burnerkit.crypto.hybrid import combine


def test_demo_runs_every_step_in_process(capsys):
    assert main(["demo"]) == 0
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
