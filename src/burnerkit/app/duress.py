"""The duress passphrase: a decoy burner whose unlock destroys the real one (docs/protocol.md §17.11).

Theory of operation
-------------------
Arming duress (``burner duress NAME``, or ``burner new --duress``) mints a *decoy*: an
ordinary vault of its own in the home (a random directory id like any burner's, the same
name, relay and validity in its sealed profile, no contacts) sealed under the duress
passphrase, with the KDF parameters of the real vault. A duress unlock is therefore an
ordinary unlock of another vault: the same Argon2id derivations in the same random trial
order over the home's vaults (:meth:`~burnerkit.app.home.Home.trial_order`). The duress
passphrase never opens the real vault, so a copy of the files plus the duress passphrase
opens only the decoy.

The decoy holds a :class:`Guard` naming the directory of the burner it guards. Unlocking
it (:func:`after_unlock`) overwrites both key slots of that burner's ``vault.key`` in place
first, then deletes the guard, then lets the decoy open as any burner does. Nothing
is removed and no file appears: the real directory stays as it was, with a header that
opens nothing, as a header after a key rotation looks.

The real vault holds a :class:`Decoy` naming the decoy's directory and the header slot its
key is in. So that the two unlocks touch the same set of files, every unlock of the real
burner writes too (the one exception to §15.11's read-only rule, for burners that armed
duress): it rewrites its ``Decoy`` record (a first write, so its key rotates) and
overwrites the decoy's spare key slot with random bytes in place, as a rotation's last
step does. A normal unlock then writes the real vault's three files and the decoy's
header; a duress unlock writes the decoy's three files and the real burner's header.

No relay I/O here, and no alert: alerting contacts is not built yet (§17.11).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from burnerkit.app.home import Home
from burnerkit.app.records import Profile, _Record
from burnerkit.crypto.rng import Random
from burnerkit.errors import NotFoundError, UsageError, VaultLockedError
from burnerkit.vault import Vault, VaultTransaction
from burnerkit.wire import Reader, Writer

__all__ = [
    "DURESS_KIND",
    "Decoy",
    "Guard",
    "after_unlock",
    "arm",
    "decoy_of",
    "disarm",
    "shred_decoy",
]

#: The vault kind of both records: :class:`Decoy` in the real vault, :class:`Guard` in the decoy.
DURESS_KIND: Final = "duress"
_DECOY_KEY: Final = b"decoy"
_GUARD_KEY: Final = b"guard"
_PROFILE_KIND: Final = "profile"
_PROFILE_KEY: Final = b"burner"
#: A directory id is 26 characters of a-z 2-7 (app/home.py).
_ID_SIZE: Final = 26
_ID: Final = re.compile(r"[a-z2-7]{26}")


def _check_id(directory: str) -> None:
    if not _ID.fullmatch(directory):
        raise ValueError("a directory id is 26 characters of a-z 2-7")


@dataclass(frozen=True, slots=True)
class Decoy(_Record):
    """In the real vault: where its decoy is, and which header slot the decoy's key is in."""

    directory: str
    slot: int

    def __post_init__(self) -> None:
        _check_id(self.directory)
        if self.slot not in (0, 1):
            raise ValueError("a key slot is 0 or 1")

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.directory.encode("ascii")).u8(self.slot)

    @classmethod
    def read(cls, r: Reader) -> Decoy:  # noqa: D102
        return cls(r.take(_ID_SIZE).decode("ascii"), r.u8())


@dataclass(frozen=True, slots=True)
class Guard(_Record):
    """In the decoy: the directory of the burner whose key its unlock destroys."""

    directory: str

    def __post_init__(self) -> None:
        _check_id(self.directory)

    def write(self, w: Writer) -> None:  # noqa: D102
        w.raw(self.directory.encode("ascii"))

    @classmethod
    def read(cls, r: Reader) -> Guard:  # noqa: D102
        return cls(r.take(_ID_SIZE).decode("ascii"))


def decoy_of(vault: Vault | VaultTransaction) -> Decoy | None:
    """The real vault's :class:`Decoy`, if duress is armed."""
    data = vault.get(DURESS_KIND, _DECOY_KEY)
    return None if data is None else Decoy.from_bytes(data)


def arm(home: Home, directory: Path, vault: Vault, duress_passphrase: str, *, rng: Random) -> Decoy:
    """Mint the decoy of the burner in ``directory`` (open as ``vault``), replacing any earlier one.

    The decoy copies the real profile (name, relay, creation, expiry, clock) and the real
    vault's KDF parameters, so the two cost the same to unlock.

    Raises:
        UsageError: the duress passphrase opens the real vault (it must differ).
        VaultError: the decoy could not be written (the burner keeps its earlier decoy, if any).
    """
    with contextlib.suppress(VaultLockedError):
        Vault.open(directory, duress_passphrase).close()
        raise UsageError("the duress passphrase must differ from the burner's passphrase")
    data = vault.get(_PROFILE_KIND, _PROFILE_KEY)
    if data is None:
        raise NotFoundError("the burner has no profile (an unfinished mint)")
    profile = Profile.from_bytes(data)
    target = home.new_directory(rng)
    decoy_vault = Vault.create(target, duress_passphrase, rng=rng, kdf=vault.kdf)
    try:
        with decoy_vault.transaction() as tx:
            tx.put(_PROFILE_KIND, _PROFILE_KEY, profile.to_bytes())
            tx.put(DURESS_KIND, _GUARD_KEY, Guard(directory.name).to_bytes())
        decoy = Decoy(target.name, decoy_vault.key_slot)
    except BaseException:
        decoy_vault.destroy()
        raise
    decoy_vault.close()
    earlier = decoy_of(vault)
    with vault.transaction() as tx:
        tx.put(DURESS_KIND, _DECOY_KEY, decoy.to_bytes())
    if earlier is not None:
        shred_decoy(home, earlier)
    return decoy


def disarm(home: Home, vault: Vault) -> bool:
    """Shred the decoy and forget it; False if duress was not armed.

    Raises:
        VaultError: a file could not be overwritten or removed.
    """
    decoy = decoy_of(vault)
    if decoy is None:
        return False
    with vault.transaction() as tx:
        tx.delete(DURESS_KIND, _DECOY_KEY)
    shred_decoy(home, decoy)
    return True


def shred_decoy(home: Home, decoy: Decoy) -> None:
    """Shred the decoy's directory (a burn of the real burner takes it along).

    Raises:
        VaultError: a file could not be overwritten or removed.
    """
    Vault.shred(home.root / decoy.directory)


def after_unlock(home: Home, vault: Vault) -> None:
    """What an unlock does first, before anything else reads or writes the burner.

    A decoy: destroy the guarded burner's key in place, then delete the guard. A real
    burner with duress armed: the cover write (rewrite the :class:`Decoy` record, and
    overwrite the decoy's spare key slot in place). Anything else: nothing.

    Raises:
        VaultError: a file could not be written; for a decoy, the guarded key may
            already be gone.
    """
    data = vault.get(DURESS_KIND, _GUARD_KEY)
    if data is not None:
        Vault.erase_key(home.root / Guard.from_bytes(data).directory)
        with vault.transaction() as tx:
            tx.delete(DURESS_KIND, _GUARD_KEY)
        return
    decoy = decoy_of(vault)
    if decoy is None:
        return
    with vault.transaction() as tx:
        tx.put(DURESS_KIND, _DECOY_KEY, decoy.to_bytes())
    Vault.scrub_spare_slot(home.root / decoy.directory, 1 - decoy.slot)
