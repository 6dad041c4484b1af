"""The one exception tree of burnerkit (docs/protocol.md §9).

Every runtime failure a correct program can meet is a ``BurnerError``. Misuse of an
API (a key of the wrong length, a negative limit) raises the built-in ``TypeError`` or
``ValueError`` instead, because that is a bug in the caller, not a condition to handle.

```
BurnerError
├── ProtocolError                    never raised directly
│   ├── LocalProtocolError           we asked for something illegal in this state
│   └── RemoteProtocolError          the peer (or the network) sent malformed bytes
├── CryptoError
│   ├── DecryptionError              opaque: bad tag, unknown key, bad padding, ...
│   ├── HandshakeError               bad signature, invalid point, PQ downgrade, expired
│   │   └── InvitationConsumedError  a one-time invitation was accepted a second time
│   ├── DuplicateMessageError        a message we already processed (a replay)
│   ├── ForkDetectedError            an authentic message conflicts with one already seen (a clone)
│   ├── InvalidKeyError              a bad public key or an all-zero DH output
│   ├── SignatureError               a signature did not verify
│   ├── BorderReleaseError           a border release or request that is not this burner's (§17.12)
│   └── TooManySkippedMessagesError  a counter jump beyond the limit (a counter bomb)
├── IdentityError
│   ├── IdentityExpiredError         the burner is past its expiry
│   ├── IdentityChangedError         a contact's identity key changed: re-verify before sending
│   └── ContactBurnedError           the contact burned its burner: nothing is sent to it any more
├── RelayError
│   ├── RelayUnavailableError        connect, read or write failed; .url and .cause say where and why
│   ├── RelayTimeoutError            the relay did not answer in time
│   └── RelayRejectedError           the relay answered ERR; .code is the relay's error code
├── RelayServerError                 the relay server itself failed (never raised directly)
│   ├── RelayStartError              its address is taken, or its TLS files do not load
│   └── StoreError                   its message store failed; the operation had no effect
├── VaultError
│   ├── VaultLockedError             wrong passphrase or damaged header: one message for both
│   │   └── BurnerAtBorderError      the burner's key is with its holder (border mode): return first
│   └── VaultCorruptedError          a record failed authentication (tampering or damage)
├── PairingError
│   ├── PairingCodeError             the short code was wrong (or guessed): the code is destroyed
│   ├── PairingTimeoutError          the peer did not show up in time
│   └── PairingAttackError           it stopped after our confirmation went out: maybe a guessing relay
├── DemoFailedError                  `burner demo`: the scenario did not behave as promised
├── BurnOrderedError                 a valid burn order from the issuer arrived: the burner is burned
└── UsageError                       the user asked for something that cannot be done as asked
    ├── NotFoundError                no such burner, contact or relay queue
    └── AlreadyExistsError           the name is taken
```

Messages are lower-case facts and never hold key bytes, plaintext or passphrases.
Decryption failures carry no reason at all, so that no caller can build an oracle
from them (the Fernet ``InvalidToken`` rule); the reason, if any, stays local.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "BorderReleaseError",
    "BurnOrderedError",
    "BurnerAtBorderError",
    "BurnerError",
    "ContactBurnedError",
    "CryptoError",
    "DecryptionError",
    "DemoFailedError",
    "DuplicateMessageError",
    "ForkDetectedError",
    "HandshakeError",
    "IdentityChangedError",
    "IdentityError",
    "IdentityExpiredError",
    "InvalidKeyError",
    "InvitationConsumedError",
    "RelayError",
    "RelayRejectedError",
    "RelayServerError",
    "RelayStartError",
    "RelayTimeoutError",
    "RelayUnavailableError",
    "LocalProtocolError",
    "NotFoundError",
    "PairingAttackError",
    "PairingCodeError",
    "PairingError",
    "PairingTimeoutError",
    "ProtocolError",
    "RemoteProtocolError",
    "SignatureError",
    "StoreError",
    "TooManySkippedMessagesError",
    "UsageError",
    "VaultCorruptedError",
    "VaultError",
    "VaultLockedError",
]


class BurnerError(Exception):
    """Base of every error burnerkit raises on purpose."""


class ProtocolError(BurnerError):
    """A protocol rule was broken; see the two subclasses for whose fault it was."""


class LocalProtocolError(ProtocolError):
    """We asked the protocol for something illegal in its current state."""


class RemoteProtocolError(ProtocolError):
    """The peer or the network handed us bytes that do not parse as the spec says."""


class CryptoError(BurnerError):
    """A cryptographic check failed."""


class DecryptionError(CryptoError):
    """A message could not be decrypted; deliberately says nothing more."""

    def __init__(self, message: str = "message could not be decrypted") -> None:
        super().__init__(message)


class HandshakeError(CryptoError):
    """The handshake failed: a signature, a key, a KEM value or an expiry was wrong."""


class InvitationConsumedError(HandshakeError):
    """A one-time invitation (or one exact acceptance) was presented a second time."""


class DuplicateMessageError(CryptoError):
    """A message that was already processed arrived again (a replay)."""


class ForkDetectedError(CryptoError):
    """An authentic message conflicts with one already processed: two devices share one state."""


class TooManySkippedMessagesError(CryptoError):
    """A message claims to be further ahead than the skip limit allows."""


class BorderReleaseError(CryptoError):
    """A border release or return request that does not belong to this escrow, or a code that does not match.

    Nothing was changed: the burner stays at the border, the office released nothing.
    """


class IdentityError(BurnerError):
    """An identity cannot be used as asked."""


class IdentityExpiredError(IdentityError):
    """The session or burner is past its expiry and refuses to send or receive."""


class ContactBurnedError(IdentityError):
    """The contact burned its burner (a verified burn notice): nothing is sent to it any more."""


class IdentityChangedError(IdentityError):
    """A contact's identity key is not the one last verified; sending waits for re-verification."""


class InvalidKeyError(CryptoError):
    """A public key or DH result is invalid (wrong length, small order, all-zero output)."""


class SignatureError(CryptoError):
    """A signature did not verify."""


class RelayError(BurnerError):
    """Talking to a relay failed."""


class RelayUnavailableError(RelayError):
    """The relay could not be reached, or the connection broke.

    Made with ``url`` and ``cause`` (and no message), it reads ``relay unreachable: URL
    (cause)``; both are kept as attributes. ``url`` is the relay's address without a pin;
    ``cause`` is one of the fixed phrases of docs/protocol.md §14.13 (connection refused,
    DNS lookup failed, TLS: ..., timed out, connection closed, ...).
    """

    def __init__(
        self, message: str | None = None, *, url: str | None = None, cause: str | None = None
    ) -> None:
        if message is None:
            message = f"relay unreachable: {url or 'relay'}" + (f" ({cause})" if cause else "")
        super().__init__(message)
        self.url = url
        self.cause = cause


class RelayTimeoutError(RelayError):
    """The relay did not answer in time."""


class RelayRejectedError(RelayError):
    """The relay refused a command; ``code`` is its error code (docs/protocol.md §14.6)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(f"relay refused the command ({code})" if message is None else message)
        self.code = code


class RelayServerError(BurnerError):
    """The relay server itself failed (the side that serves queues, not a client of it)."""


class RelayStartError(RelayServerError):
    """The relay could not start: its address is taken, or its TLS files do not load."""


class StoreError(RelayServerError):
    """The relay's message store failed; the operation had no effect."""


class DemoFailedError(BurnerError):
    """``burner demo``: a step of the scenario did not behave as the protocol promises."""


class VaultError(BurnerError):
    """The encrypted vault cannot be used as asked."""


class VaultLockedError(VaultError):
    """The vault did not unlock: a wrong passphrase and a damaged header look the same."""

    def __init__(self, message: str = "wrong passphrase, or the vault header is damaged") -> None:
        super().__init__(message)


class BurnerAtBorderError(VaultLockedError):
    """The burner is at the border (docs/protocol.md §17.12): its vault key is with its holder."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class VaultCorruptedError(VaultError):
    """A vault record failed authentication: it was tampered with or damaged."""


class PairingError(BurnerError):
    """Pairing by short code failed."""


class PairingCodeError(PairingError):
    """The short code did not match on both sides; it is destroyed and cannot be tried again."""


class PairingTimeoutError(PairingError):
    """The other side did not complete pairing in time."""


class PairingAttackError(PairingError):
    """Pairing stopped after our key confirmation was sent: someone may be guessing the code.

    Whoever ran the other end of the exchange (a hostile relay can) holds our
    confirmation and so knows offline whether its guess of the code was right; going
    silent after a wrong guess would look like a timeout and invite a retry, which is
    another guess (docs/protocol.md §16.6). Not a timeout, so the user is told.
    """


class BurnOrderedError(BurnerError):
    """The burner's issuer ordered it burned (docs/protocol.md §17.9): it is gone now."""


class UsageError(BurnerError):
    """The user asked for something that cannot be done as asked."""


class NotFoundError(UsageError):
    """No burner, contact or queue has that name."""


class AlreadyExistsError(UsageError):
    """The name is already taken."""
