"""HKDF, HMAC and SHA-256, and the one registry of domain-separation labels (docs/protocol.md §3.1-3.3).

Every key derivation and every signature in burnerkit names its purpose with a
label from :data:`LABELS`, so that an output of one sub-protocol can never be
accepted by another. Labels are ASCII, start with ``burner/v1/`` and are unique;
a test holds the registry to that.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "LABELS",
    "LABEL_CHAIN_START",
    "LABEL_HANDSHAKE",
    "LABEL_LINK_COMMIT",
    "LABEL_LINK_KEYS",
    "LABEL_LINK_SEAL",
    "LABEL_SIG_BURN_NOTICE",
    "LABEL_BURN_JOURNAL",
    "LABEL_BORDER_CODE",
    "LABEL_BORDER_STATE",
    "LABEL_SEAL_BORDER_ESCROW",
    "LABEL_SEAL_BORDER_RELEASE",
    "LABEL_MSG_HASH",
    "LABEL_RELAY_ACK_MAC",
    "LABEL_RELAY_AUTH",
    "LABEL_RELAY_IDS",
    "LABEL_RELAY_QUEUE",
    "LABEL_ROOT",
    "LABEL_SAFETY_CODE",
    "LABEL_SIG_ACCEPT",
    "LABEL_SIG_INVITATION",
    "LABEL_TEST_RNG",
    "LABEL_TRANSCRIPT",
    "LABEL_APP_SEND_ID",
    "LABEL_PAIRING_CONFIRM",
    "LABEL_PAIRING_PAKE",
    "LABEL_PAIRING_PAYLOAD",
    "LABEL_VAULT_INDEX",
    "LABEL_VAULT_KEY_ID",
    "LABEL_VAULT_KEY_WRAP",
    "LABEL_VAULT_RECORD",
    "LABEL_ISSUER_FILE",
    "LABEL_DURESS_ALERT",
    "LABEL_SEAL_ORDER",
    "LABEL_SEAL_REPORT",
    "LABEL_SIG_BURN_ORDER",
    "KeyedMac",
    "LabelledHash",
    "chain_step",
    "hkdf",
    "hmac_sha256",
    "sha256",
]

LABEL_HANDSHAKE: Final = b"burner/v1/handshake/secret"
LABEL_TRANSCRIPT: Final = b"burner/v1/handshake/transcript"
LABEL_SIG_INVITATION: Final = b"burner/v1/sig/invitation"
LABEL_SIG_ACCEPT: Final = b"burner/v1/sig/accept"
LABEL_ROOT: Final = b"burner/v1/ratchet/root"
LABEL_MSG_HASH: Final = b"burner/v1/envelope/msg-hash"
LABEL_CHAIN_START: Final = b"burner/v1/envelope/chain-start"
LABEL_SAFETY_CODE: Final = b"burner/v1/safety-code"
LABEL_TEST_RNG: Final = b"burner/v1/test-rng"
LABEL_RELAY_AUTH: Final = b"burner/v1/relay/auth"
LABEL_RELAY_ACK_MAC: Final = b"burner/v1/relay/ack-mac"
LABEL_RELAY_IDS: Final = b"burner/v1/relay/ids"
LABEL_RELAY_QUEUE: Final = b"burner/v1/relay/queue-layer"
LABEL_VAULT_KEY_WRAP: Final = b"burner/v1/vault/key-wrap"
LABEL_VAULT_RECORD: Final = b"burner/v1/vault/record"
LABEL_VAULT_INDEX: Final = b"burner/v1/vault/index"
LABEL_VAULT_KEY_ID: Final = b"burner/v1/vault/key-id"
LABEL_PAIRING_PAKE: Final = b"burner/v1/pairing/spake2"
LABEL_PAIRING_CONFIRM: Final = b"burner/v1/pairing/confirm"
LABEL_PAIRING_PAYLOAD: Final = b"burner/v1/pairing/payload"
LABEL_APP_SEND_ID: Final = b"burner/v1/app/send-id"
LABEL_LINK_COMMIT: Final = b"burner/v1/link/commit"
LABEL_LINK_KEYS: Final = b"burner/v1/link/keys"
LABEL_LINK_SEAL: Final = b"burner/v1/link/seal"
LABEL_SIG_BURN_NOTICE: Final = b"burner/v1/sig/burn-notice"
LABEL_BURN_JOURNAL: Final = b"burner/v1/burn/journal"
LABEL_SIG_BURN_ORDER: Final = b"burner/v1/sig/burn-order"
LABEL_SEAL_ORDER: Final = b"burner/v1/seal/burn-order"
LABEL_SEAL_REPORT: Final = b"burner/v1/seal/report"
LABEL_ISSUER_FILE: Final = b"burner/v1/issuer/key-file"
LABEL_SEAL_BORDER_ESCROW: Final = b"burner/v1/seal/border-escrow"
LABEL_SEAL_BORDER_RELEASE: Final = b"burner/v1/seal/border-release"
LABEL_BORDER_STATE: Final = b"burner/v1/border/state"
LABEL_BORDER_CODE: Final = b"burner/v1/border/code"
LABEL_DURESS_ALERT: Final = b"burner/v1/duress/alert"

#: Every label in use, by name. Later sub-protocols (relay auth, burn orders,
#: groups, vault records) add theirs here, never inline.
LABELS: Final = MappingProxyType(
    {
        "handshake": LABEL_HANDSHAKE,
        "transcript": LABEL_TRANSCRIPT,
        "sig-invitation": LABEL_SIG_INVITATION,
        "sig-accept": LABEL_SIG_ACCEPT,
        "root": LABEL_ROOT,
        "msg-hash": LABEL_MSG_HASH,
        "chain-start": LABEL_CHAIN_START,
        "safety-code": LABEL_SAFETY_CODE,
        "test-rng": LABEL_TEST_RNG,
        "relay-auth": LABEL_RELAY_AUTH,
        "relay-ack-mac": LABEL_RELAY_ACK_MAC,
        "relay-ids": LABEL_RELAY_IDS,
        "relay-queue": LABEL_RELAY_QUEUE,
        "vault-key-wrap": LABEL_VAULT_KEY_WRAP,
        "vault-record": LABEL_VAULT_RECORD,
        "vault-index": LABEL_VAULT_INDEX,
        "vault-key-id": LABEL_VAULT_KEY_ID,
        "pairing-pake": LABEL_PAIRING_PAKE,
        "pairing-confirm": LABEL_PAIRING_CONFIRM,
        "pairing-payload": LABEL_PAIRING_PAYLOAD,
        "app-send-id": LABEL_APP_SEND_ID,
        "link-commit": LABEL_LINK_COMMIT,
        "link-keys": LABEL_LINK_KEYS,
        "link-seal": LABEL_LINK_SEAL,
        "sig-burn-notice": LABEL_SIG_BURN_NOTICE,
        "burn-journal": LABEL_BURN_JOURNAL,
        "sig-burn-order": LABEL_SIG_BURN_ORDER,
        "seal-order": LABEL_SEAL_ORDER,
        "seal-report": LABEL_SEAL_REPORT,
        "issuer-file": LABEL_ISSUER_FILE,
        "seal-border-escrow": LABEL_SEAL_BORDER_ESCROW,
        "seal-border-release": LABEL_SEAL_BORDER_RELEASE,
        "border-state": LABEL_BORDER_STATE,
        "border-code": LABEL_BORDER_CODE,
        "duress-alert": LABEL_DURESS_ALERT,
    }
)

# Signal's recommended chain constants: the message key is HMAC(CK, 0x01), the
# next chain key HMAC(CK, 0x02). Two HMACs per step and nothing else.
_MESSAGE_KEY_INPUT: Final = b"\x01"
_CHAIN_KEY_INPUT: Final = b"\x02"
_SHA256 = hashes.SHA256()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256."""
    mac = _hmac.HMAC(key, _SHA256)
    mac.update(data)
    return mac.finalize()


def sha256(*parts: bytes) -> bytes:
    """SHA-256 over the concatenation of ``parts``."""
    digest = hashes.Hash(_SHA256)
    for part in parts:
        digest.update(part)
    return digest.finalize()


class LabelledHash:
    """SHA-256 of ``label ‖ data``, with the label's compression work done once."""

    __slots__ = ("_base",)

    def __init__(self, label: bytes) -> None:
        self._base = hashes.Hash(_SHA256)
        self._base.update(label)

    def digest(self, data: bytes) -> bytes:
        """``SHA-256(label ‖ data)``."""
        h = self._base.copy()
        h.update(data)
        return h.finalize()


class KeyedMac:
    """HMAC-SHA256 under one key of ``prefix ‖ data``, with the key and the prefix absorbed once.

    ``mac(data)`` equals ``hmac_sha256(key, prefix + data)``: for a key that MACs many
    messages with a common prefix, it saves keying an HMAC and joining the prefix each time.
    """

    __slots__ = ("_base",)

    def __init__(self, key: bytes, prefix: bytes = b"") -> None:
        self._base = _hmac.HMAC(key, _SHA256)
        self._base.update(prefix)

    def mac(self, data: bytes) -> bytes:
        """``HMAC-SHA256(key, prefix ‖ data)``."""
        h = self._base.copy()
        h.update(data)
        return h.finalize()

    def __repr__(self) -> str:
        return "KeyedMac(<key>)"


def hkdf(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869) extract-then-expand."""
    return HKDF(algorithm=_SHA256, length=length, salt=salt, info=info).derive(ikm)


def chain_step(chain_key: bytes) -> tuple[bytes, bytes]:
    """One symmetric-key ratchet step: ``(next_chain_key, message_key)``.

    Signal Double Ratchet §5.2 (KDF_CK).
    """
    mk = _hmac.HMAC(chain_key, _SHA256)
    ck = mk.copy()  # copying the keyed state is cheaper than keying a second HMAC
    mk.update(_MESSAGE_KEY_INPUT)
    ck.update(_CHAIN_KEY_INPUT)
    return ck.finalize(), mk.finalize()
