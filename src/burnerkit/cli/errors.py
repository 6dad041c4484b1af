"""One place where errors become a one-line message and an exit code (never a traceback).

This table is the one source of docs/cli.md's exit codes; the errors are docs/protocol.md §9.

| Exit | Meaning |
|---:|---|
| 0 | done |
| 1 | any other burnerkit error, a file the system refused, or a question answered no (nothing changed) |
| 2 | a usage error: bad arguments, a bad name, link or code, several burners and no ``--burner`` |
| 3 | not found: no such burner or contact, or the burner burned as it was opened (a dead-man switch) |
| 4 | the vault did not unlock (wrong passphrase or damaged vault) |
| 5 | the burner has expired |
| 6 | a relay was unreachable, slow, or refused |
| 7 | a cryptographic or protocol check failed (a forged or expired invitation, ...) |
| 8 | pairing failed (wrong code, timeout) |
| 9 | a contact's identity is in doubt (changed key, safety code mismatch) |
| 10 | the name is taken |
| 11 | pairing cut after our confirmation was sent: maybe a guesser (not 8: do not just retry) |
| 12 | the invitation was already used (someone accepted it first: it may have been intercepted) |
| 13 | ``burner inbox`` printed an alert (a clone, a replay, a forgery, a doubtful identity) |
| 70 | an internal error (a bug); ``BURNER_DEBUG=1`` shows the traceback |
| 130 | interrupted |
"""

from __future__ import annotations

from typing import Final

from burnerkit.errors import (
    AlreadyExistsError,
    BurnerError,
    CryptoError,
    IdentityError,
    IdentityExpiredError,
    InvitationConsumedError,
    NotFoundError,
    PairingAttackError,
    PairingError,
    ProtocolError,
    RelayError,
    UsageError,
    VaultError,
)

__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_USAGE", "exit_code"]

EXIT_USAGE: Final = 2
EXIT_INTERNAL: Final = 70
EXIT_INTERRUPTED: Final = 130

# Most specific first: the first class that matches decides.
_CODES: Final[tuple[tuple[type[BurnerError], int], ...]] = (
    (AlreadyExistsError, 10),
    (InvitationConsumedError, 12),
    (NotFoundError, 3),
    (UsageError, EXIT_USAGE),
    (VaultError, 4),
    (IdentityExpiredError, 5),
    (IdentityError, 9),
    (RelayError, 6),
    (PairingAttackError, 11),
    (PairingError, 8),
    (CryptoError, 7),
    (ProtocolError, 7),
)


def exit_code(error: BurnerError) -> int:
    """The exit code for ``error`` (see the table above)."""
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return 1
