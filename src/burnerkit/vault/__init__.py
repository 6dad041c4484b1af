"""The encrypted vault: one directory per burner, every record sealed (docs/protocol.md §15).

```python
with Vault.create(directory, passphrase, rng=SystemRandom()) as vault:
    with vault.transaction() as tx:
        tx.put("contact", b"alice", contact_bytes)
with Vault.open(directory, passphrase) as vault:
    vault.get("contact", b"alice")
```
"""

from __future__ import annotations

from burnerkit.crypto.passphrase import DEFAULT_KDF as DEFAULT_KDF
from burnerkit.crypto.passphrase import FAST_TEST_KDF as FAST_TEST_KDF
from burnerkit.crypto.passphrase import KdfParams as KdfParams

from .vault import Vault as Vault
from .vault import VaultTransaction as VaultTransaction

__all__ = ["DEFAULT_KDF", "FAST_TEST_KDF", "KdfParams", "Vault", "VaultTransaction"]
