"""Getting the passphrase: ``$BURNER_PASSPHRASE`` or a hidden prompt, never the command line.

A passphrase in ``argv`` would be visible to every process on the machine (``ps``) and
kept in shell history, so no option takes one.
"""

from __future__ import annotations

import getpass
import os

from burnerkit.errors import UsageError

__all__ = ["ENV_PASSPHRASE", "ask_passphrase"]

ENV_PASSPHRASE = "BURNER_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
_MIN_LENGTH = 8


def ask_passphrase(burner: str | None, *, new: bool = False) -> str:
    """The passphrase of ``burner`` (None: unnamed), from the environment or a hidden prompt.

    Raises:
        UsageError: no terminal to ask on and no ``$BURNER_PASSPHRASE``; a new passphrase
            that is too short or typed differently twice.
    """
    env = os.environ.get(ENV_PASSPHRASE)
    if env is not None:
        if new and len(env) < _MIN_LENGTH:
            raise UsageError(f"a passphrase needs at least {_MIN_LENGTH} characters")
        return env
    try:
        first = getpass.getpass("passphrase: " if burner is None else f"passphrase for {burner}: ")
        if new:
            if len(first) < _MIN_LENGTH:
                raise UsageError(f"a passphrase needs at least {_MIN_LENGTH} characters")
            if getpass.getpass("again: ") != first:
                raise UsageError("the two passphrases differ")
    except EOFError as exc:
        raise UsageError(f"no terminal to ask for the passphrase: set {ENV_PASSPHRASE}") from exc
    return first
