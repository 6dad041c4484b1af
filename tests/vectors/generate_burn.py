"""Generate the frozen burn vectors ``burn_v1.json`` (docs/protocol.md §17.7).

Run from the repository root after a deliberate change to the burn notice, the Expiry content
the expiry a Hello or a Text carries, or the burn journal::

    .venv/bin/python -m tests.vectors.generate_burn

Everything comes from one ``DeterministicRandom`` stream and fixed times: an identity and a
transcript hash stand for a session (the notice's signature covers only those and the notice's
first ten bytes; Ed25519 is deterministic), the journal's envelope is a fixed 15,872-byte
string, and its sealing uses ``FAST_TEST_KDF``. ``tests/test_burn_vectors.py`` rebuilds every
value and checks the signatures and the sealed journal with pyca and argon2-cffi alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from burnerkit.app.addresses import QueueAddress
from burnerkit.app.burning import BurnJournal, JournalNotice, JournalQueue
from burnerkit.app.content import BurnNotice, Hello, Text
from burnerkit.crypto.kdf import LABEL_SIG_BURN_NOTICE
from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.protocol.identity import Identity
from burnerkit.relay.client import QueueCredentials
from burnerkit.vault.format import seal_header

__all__ = ["ENVELOPE", "NOW", "PASSPHRASE", "SEED", "build", "main"]

HERE = Path(__file__).parent
SEED = b"burnerkit burn vectors v1"
NOW = 1_800_000_000
PASSPHRASE = "burn vectors passphrase"
RELAY = "wss://relay.example.org"
#: The sealed notice a journal carries: opaque to the journal, one envelope's size.
ENVELOPE = bytes(range(256)) * 62


def _notice(identity: Identity, transcript: bytes, erase: bool) -> dict[str, Any]:
    body = BurnNotice.body(NOW, erase)
    signature = identity.signing.sign(LABEL_SIG_BURN_NOTICE + transcript + body)
    notice = BurnNotice(NOW, erase, signature)
    return {
        "burned_at": NOW,
        "erase": erase,
        "signed": (LABEL_SIG_BURN_NOTICE + transcript + body).hex(),
        "signature": signature.hex(),
        "content": notice.encode().hex(),
    }


def build() -> dict[str, Any]:
    """Every value of ``burn_v1.json``."""
    rng = DeterministicRandom(SEED)
    identity = Identity.generate(rng)
    transcript = rng.random_bytes(32)
    contact_id = rng.random_bytes(16)
    send_id = rng.random_bytes(16)
    peer = QueueAddress("ws://127.0.0.1:8443/burner", rng.random_bytes(24))
    sender_key = rng.random_bytes(32)
    creds = QueueCredentials(
        recipient_id=rng.random_bytes(24),
        sender_id=rng.random_bytes(24),
        recipient_key=SigningKey.generate(rng),
        queue_key=rng.random_bytes(32),
    )
    journal = BurnJournal(
        "traveller",
        True,
        [JournalNotice(contact_id, send_id, peer, sender_key, ENVELOPE)],
        [JournalQueue(contact_id, RELAY, creds)],
    )
    padded = journal.padded()
    vault_key = rng.random_bytes(32)
    header, keys = seal_header(vault_key, PASSPHRASE, FAST_TEST_KDF, rng)
    sealed = keys.seal_burn_journal(padded, rng)
    return {
        "source": "burnerkit, tests/vectors/generate_burn.py (docs/protocol.md §17.7)",
        "seed": SEED.hex(),
        "identity": identity.to_bytes().hex(),
        "public_signing_key": identity.public.signing.raw.hex(),
        "transcript_hash": transcript.hex(),
        "notice": _notice(identity, transcript, erase=False),
        "notice_erase": _notice(identity, transcript, erase=True),
        # The sender's expiry, on a Hello and on a Text (§17.3, §17.7).
        "hello_with_expiry": {
            "address": peer.to_bytes().hex(),
            "expires_at": NOW + 86400,
            "content": Hello(peer, NOW + 86400).encode().hex(),
        },
        "text_with_expiry": {
            "text": "first words",
            "timer": 30,
            "burn_on_read": True,
            "expires_at": NOW + 86400,
            "content": Text("first words", 30, True, NOW + 86400).encode().hex(),
        },
        "journal": {
            "name": journal.name,
            "erase": journal.erase,
            "notice": {
                "party": contact_id.hex(),
                "send_id": send_id.hex(),
                "peer": peer.to_bytes().hex(),
                "sender_key": sender_key.hex(),
                "envelope_sha256": hashlib.sha256(ENVELOPE).hexdigest(),
            },
            "queue": {"party": contact_id.hex(), "relay_url": RELAY, "creds": creds.to_bytes().hex()},
            "body": journal.to_bytes().hex(),
            "padded_size": len(padded),
            "padded_sha256": hashlib.sha256(padded).hexdigest(),
            "passphrase": PASSPHRASE,
            "header": header.hex(),
            "sealed_head": sealed[:46].hex(),
            "sealed_size": len(sealed),
            "sealed_sha256": hashlib.sha256(sealed).hexdigest(),
        },
    }


def main() -> None:
    """Write ``burn_v1.json`` next to this file."""
    path = HERE / "burn_v1.json"
    path.write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
