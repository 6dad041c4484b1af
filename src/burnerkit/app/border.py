"""Border mode: the vault key held by the issuer or a contact while the device crosses (§17.12).

Before a checkpoint, :func:`cross` seals the vault key the records are sealed under to the
issuer's X25519 key (an *escrow*), or :func:`cross_to_contact` finishes a crossing whose key
the Messenger sent to a contact over the session (content 0x09, :mod:`burnerkit.app.escrow`);
each writes a *border state* beside the vault and overwrites both key slots of ``vault.key``
in place: the device then holds nothing that opens its records, with the passphrase or
without. The state is sealed under the vault's KEK, so the passphrase opens it, and it holds
only the escrow (sealed to the issuer: useless on the device; nothing for a contact holder)
and, after the crossing, a one-time X25519 key.

After the crossing, :func:`begin_return` makes that one-time key on the device and shows a
*return request* (the escrow and the one-time public key) and a 12-digit *code* over both; the
traveller sends the request by any channel and reads the code to the holder over a voice line.
The office (:func:`release`) opens the escrow, a contact (:func:`contact_release`) finds the
key it holds, and only if the code matches either seals the vault key to the one-time key: the
*release*. :func:`finish_return` opens it with the one-time key, wraps the vault key back into
a slot under the KEK and destroys the state. An image of the device taken at the border holds
no one-time key, so no release made after it opens there; an attacker who sends their own
one-time key is caught by the code.

While the state exists, the burner is at the border: :func:`at_border` says so without a
passphrase and :func:`held_state` with one (the Messenger refuses to open it).
"""

from __future__ import annotations

import contextlib
import hmac
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from burnerkit.app.escrow import held_escrow
from burnerkit.app.home import Home, check_name
from burnerkit.app.issuer import IssuerKeyPair, _b64, _from_text, load_record
from burnerkit.crypto.kdf import (
    LABEL_BORDER_CODE,
    LABEL_SEAL_BORDER_ESCROW,
    LABEL_SEAL_BORDER_RELEASE,
    sha256,
)
from burnerkit.crypto.keys import X25519_KEY_SIZE, X25519PrivateKey, X25519PublicKey
from burnerkit.crypto.rng import Random
from burnerkit.crypto.seal import SEAL_OVERHEAD, open_sealed, seal_to
from burnerkit.errors import (
    BorderReleaseError,
    DecryptionError,
    InvalidKeyError,
    NotFoundError,
    UsageError,
    VaultError,
    VaultLockedError,
)
from burnerkit.fsync import fsync_dir, write_synced
from burnerkit.vault.format import VAULT_KEY_SIZE, BorderKeys, open_border_state
from burnerkit.vault.vault import HEADER_FILE, Vault

__all__ = [
    "BORDER_FILE",
    "BORDER_TEMP",
    "CODE_DIGITS",
    "ESCROW_ID_SIZE",
    "CONTACT_REQUEST_SIZE",
    "HOLDER_CONTACT",
    "HOLDER_ISSUER",
    "RELEASE_PREFIX",
    "REQUEST_PREFIX",
    "REQUEST_SIZE",
    "SEALED_ESCROW_SIZE",
    "STATE_SIZE",
    "BorderState",
    "ReturnRequest",
    "at_border",
    "begin_return",
    "code_of",
    "contact_release",
    "cross",
    "cross_to_contact",
    "finish_return",
    "at_border_text",
    "held_name",
    "held_state",
    "open_release",
    "release",
    "same_code",
    "seal_escrow",
    "seal_release",
]

#: The border state's file in the burner's directory; it holds no name.
BORDER_FILE: Final = "vault.held"
#: Where a new state is written before it is renamed over :data:`BORDER_FILE`.
BORDER_TEMP: Final = "vault.held.tmp"
_VERSION: Final = 1
#: The escrow is held by the issuer (§17.9), sealed to its key and kept in the state.
HOLDER_ISSUER: Final = 1
#: The vault key was sent to a contact over the session (content 0x09); the state keeps no escrow.
HOLDER_CONTACT: Final = 2
ESCROW_ID_SIZE: Final = 16
_MAX_NAME: Final = 32
_ESCROW_FIELD: Final = 128
#: version ‖ escrow_id ‖ vault_key: the plaintext of an escrow and of a release.
_KEY_PLAINTEXT_SIZE: Final = 1 + ESCROW_ID_SIZE + VAULT_KEY_SIZE  # 49
SEALED_ESCROW_SIZE: Final = _KEY_PLAINTEXT_SIZE + SEAL_OVERHEAD  # 97
#: A border state's plaintext: fixed, whatever it holds.
STATE_SIZE: Final = 256
# version ‖ holder ‖ escrow_id ‖ name_len ‖ name[32] ‖ escrow_len(u16) ‖ escrow[128] ‖ has_key ‖ key[32]
_STATE: Final = struct.Struct(f">BB{ESCROW_ID_SIZE}sB{_MAX_NAME}sH{_ESCROW_FIELD}sB{X25519_KEY_SIZE}s")
#: version ‖ escrow_id ‖ one-time public key ‖ sealed escrow.
REQUEST_SIZE: Final = 1 + ESCROW_ID_SIZE + X25519_KEY_SIZE + SEALED_ESCROW_SIZE  # 146
#: A request to a contact holder: no escrow (the contact holds the key itself).
CONTACT_REQUEST_SIZE: Final = 1 + ESCROW_ID_SIZE + X25519_KEY_SIZE  # 49
REQUEST_PREFIX: Final = "burner:bq1."
RELEASE_PREFIX: Final = "burner:br1."
CODE_DIGITS: Final = 12
_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(frozen=True, slots=True)
class BorderState:
    """What the passphrase opens beside a vault at the border (:data:`STATE_SIZE` bytes, §17.12.2)."""

    holder: int
    escrow_id: bytes
    name: str
    escrow: bytes
    one_time: X25519PrivateKey | None = None

    def to_bytes(self) -> bytes:
        """The fixed-size plaintext."""
        name = self.name.encode("ascii")
        key = b"" if self.one_time is None else self.one_time.private_bytes()
        body = _STATE.pack(
            _VERSION,
            self.holder,
            self.escrow_id,
            len(name),
            name,
            len(self.escrow),
            self.escrow,
            int(self.one_time is not None),
            key,
        )
        return body + bytes(STATE_SIZE - len(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> BorderState:
        """Parse a state's plaintext.

        Raises:
            VaultLockedError: not a state this version wrote (it authenticated, so it is a bug
                or a newer version's; the burner stays at the border either way).
        """
        if len(data) != STATE_SIZE or any(data[_STATE.size :]):
            raise VaultLockedError("the border state is not one this version reads")
        version, holder, escrow_id, name_len, name, escrow_len, escrow, has_key, key = _STATE.unpack_from(
            data
        )
        text = name[:name_len].decode("ascii", "replace")
        if (
            version != _VERSION
            or holder not in (HOLDER_ISSUER, HOLDER_CONTACT)
            or (holder == HOLDER_CONTACT and escrow_len)
            or name_len > _MAX_NAME
            or any(name[name_len:])
            or not _NAME_RE.fullmatch(text)
            or escrow_len > _ESCROW_FIELD
            or any(escrow[escrow_len:])
            or has_key not in (0, 1)
            or (has_key == 0 and any(key))
        ):
            raise VaultLockedError("the border state is not one this version reads")
        one_time = X25519PrivateKey.from_bytes(key) if has_key else None
        return cls(holder, escrow_id, text, escrow[:escrow_len], one_time)

    def __repr__(self) -> str:
        return f"BorderState(name={self.name!r}, <secret>)"


@dataclass(frozen=True, slots=True)
class ReturnRequest:
    """What the traveller sends the holder after the crossing (§17.12.3).

    :data:`REQUEST_SIZE` bytes for the issuer (it carries the escrow), :data:`CONTACT_REQUEST_SIZE`
    for a contact (``escrow`` empty).
    """

    escrow_id: bytes
    one_time: X25519PublicKey
    escrow: bytes

    def to_bytes(self) -> bytes:  # noqa: D102
        return bytes([_VERSION]) + self.escrow_id + self.one_time.raw + self.escrow

    @classmethod
    def from_bytes(cls, data: bytes) -> ReturnRequest:
        """Parse a request.

        Raises:
            UsageError: not a request of this version.
        """
        if len(data) not in (REQUEST_SIZE, CONTACT_REQUEST_SIZE) or data[0] != _VERSION:
            raise UsageError("not a border return request of this version")
        at = 1 + ESCROW_ID_SIZE
        return cls(
            data[1:at],
            X25519PublicKey.from_bytes(data[at : at + X25519_KEY_SIZE]),
            data[at + X25519_KEY_SIZE :],
        )

    def to_text(self) -> str:
        """``burner:bq1.`` and the request in base64url."""
        return REQUEST_PREFIX + _b64(self.to_bytes())

    @classmethod
    def from_text(cls, text: str) -> ReturnRequest:
        """Parse :meth:`to_text`'s output (whitespace ignored).

        Raises:
            UsageError: not such a text.
        """
        return cls.from_bytes(_from_text(text, REQUEST_PREFIX, "a border return request"))

    @property
    def code(self) -> str:
        """The code the traveller reads to the office (:func:`code_of`)."""
        return code_of(self.escrow_id, self.one_time)


def code_of(escrow_id: bytes, one_time: X25519PublicKey) -> str:
    """``SHA-256(label ‖ escrow_id ‖ one-time key)``, its first 8 bytes mod 10¹², as ``dddd dddd dddd``."""
    digest = sha256(LABEL_BORDER_CODE, escrow_id, one_time.raw)
    digits = f"{int.from_bytes(digest[:8], 'big') % 10**CODE_DIGITS:0{CODE_DIGITS}d}"
    return " ".join(digits[i : i + 4] for i in range(0, CODE_DIGITS, 4))


def same_code(given: str, expected: str) -> bool:
    """Whether a code typed (spaces and dashes ignored) is ``expected``, in constant time."""
    typed = "".join(ch for ch in given if ch not in " -\t")
    return hmac.compare_digest(typed.encode(), expected.replace(" ", "").encode())


def seal_escrow(issuer: X25519PublicKey, escrow_id: bytes, vault_key: bytes, rng: Random) -> bytes:
    """``seal_to(issuer, 0x01 ‖ escrow_id ‖ vault_key, "burner/v1/seal/border-escrow")``: 97 bytes."""
    return seal_to(issuer, _key_plaintext(escrow_id, vault_key), label=LABEL_SEAL_BORDER_ESCROW, rng=rng)


def _key_plaintext(escrow_id: bytes, vault_key: bytes) -> bytes:
    return bytes([_VERSION]) + escrow_id + vault_key


def _parse_key_plaintext(data: bytes, escrow_id: bytes) -> bytes | None:
    if len(data) != _KEY_PLAINTEXT_SIZE or data[0] != _VERSION:
        return None
    if not hmac.compare_digest(data[1 : 1 + ESCROW_ID_SIZE], escrow_id):
        return None
    return data[1 + ESCROW_ID_SIZE :]


# -- the device ------------------------------------------------------------------------------


def at_border(directory: Path) -> bool:
    """Whether the burner in ``directory`` is at the border (needs no passphrase)."""
    return (Path(directory) / BORDER_FILE).is_file()


def _open_state(directory: Path, passphrase: str) -> tuple[BorderKeys, BorderState] | None:
    try:
        sealed = (Path(directory) / BORDER_FILE).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        keys = open_border_state(sealed, passphrase)
    except VaultLockedError:
        return None
    return keys, BorderState.from_bytes(keys.body)


def held_name(directory: Path, passphrase: str) -> str | None:
    """The name of the burner at the border in ``directory`` if ``passphrase`` opens its state."""
    state = held_state(directory, passphrase)
    return None if state is None else state.name


def held_state(directory: Path, passphrase: str) -> BorderState | None:
    """The state of the burner at the border in ``directory`` if ``passphrase`` opens it.

    A crossing cut short between writing the state and destroying the key is finished here
    (the key slots, if one still opens, are overwritten): while the state exists the burner is
    at the border.
    """
    opened = _open_state(directory, passphrase)
    if opened is None:
        return None
    with contextlib.suppress(OSError):
        if opened[0].holds_key((Path(directory) / HEADER_FILE).read_bytes()):
            Vault.erase_key(directory)
    return opened[1]


def at_border_text(state: BorderState) -> str:
    """What an unlock of a burner at the border says: who holds the key, and how to return."""
    if state.holder == HOLDER_CONTACT:
        return (
            f"burner {state.name!r} is at the border: its vault key is with the contact who holds it. "
            f"Once across, run 'burner border return {state.name}' and read the code to them"
        )
    return (
        f"burner {state.name!r} is at the border: its vault key is with its issuer. "
        f"Once across, run 'burner border return {state.name}' and read the code to the office"
    )


def cross(vault: Vault, directory: Path, name: str, rng: Random) -> None:
    """Seal ``vault``'s key to its issuer, write the border state, destroy the key (§17.12.1).

    The state is durable before the key slots are overwritten; the vault is closed after.

    Raises:
        UsageError: the burner carries no issuer key (nothing changed).
        AlreadyExistsError: never in practice: a vault at the border does not open.
    """
    record = load_record(vault.get)
    if record is None:
        raise UsageError(
            f"burner {name!r} carries no issuer key, so the issuer cannot hold its vault key while "
            "it crosses: leave it with a contact instead ('burner border cross --holder ALIAS'); "
            "nothing changed"
        )
    issuer = record.issuer
    escrow_id = rng.random_bytes(ESCROW_ID_SIZE)
    vault_key = vault.border_key()
    escrow = seal_escrow(issuer.seal_key, escrow_id, vault_key, rng)
    state = BorderState(HOLDER_ISSUER, escrow_id, check_name(name), escrow)
    _write_state(Path(directory), vault.seal_border_state(state.to_bytes()))
    vault.destroy_key()


def cross_to_contact(vault: Vault, directory: Path, name: str, escrow_id: bytes, vault_key: bytes) -> None:
    """Write the state of a crossing whose ``vault_key`` a contact holds, then destroy the key (§17.12.1).

    Called once the relay took the escrow (content 0x09) for the contact.

    Raises:
        VaultError: the vault's key is no longer ``vault_key`` (another process wrote and
            rotated it: the escrow would hold a retired key); nothing changed here.
    """
    if not hmac.compare_digest(vault.border_key(), vault_key):
        raise VaultError(
            "the vault key changed while it was being sent (is the burner open elsewhere?): "
            "the contact holds a retired key; nothing changed, cross again"
        )
    state = BorderState(HOLDER_CONTACT, escrow_id, check_name(name), b"")
    _write_state(Path(directory), vault.seal_border_state(state.to_bytes()))
    vault.destroy_key()


def _write_state(directory: Path, sealed: bytes) -> None:
    """Put a whole new state in place: a temp file, fsync, rename, fsync of the directory.

    Never a partial state: one that no longer opened would leave the burner at the border
    for good. The blocks of a state it replaces hold no more than the escrow.
    """
    temp = directory / BORDER_TEMP
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    try:
        write_synced(temp, sealed, exclusive=True)
        os.replace(temp, directory / BORDER_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(directory)


def _find(home: Home, name: str | None, passphrase: str) -> tuple[Path, BorderKeys, BorderState]:
    home.check_choice(name)
    for slot in home.slots():
        if not at_border(slot):
            continue
        opened = _open_state(slot, passphrase)
        if opened is not None and (name is None or opened[1].name == name):
            return slot, opened[0], opened[1]
    what = "no burner" if name is None else f"no burner named {name!r}"
    raise NotFoundError(f"{what} at the border opens with this passphrase")


def begin_return(home: Home, name: str | None, passphrase: str, rng: Random) -> tuple[str, ReturnRequest]:
    """Make the one-time key (once) and return the burner's name and its return request (§17.12.3).

    The key is made on the first call, after the crossing, and kept in the state (re-sealed,
    same size); later calls show the same request and code.

    Raises:
        NotFoundError: no burner at the border opens with this passphrase (by that name).
    """
    directory, keys, state = _find(home, name, passphrase)
    if state.one_time is None:
        state = BorderState(
            state.holder, state.escrow_id, state.name, state.escrow, X25519PrivateKey.generate(rng)
        )
        _write_state(directory, keys.reseal(state.to_bytes(), rng))
    assert state.one_time is not None
    return state.name, ReturnRequest(state.escrow_id, state.one_time.public_key, state.escrow)


def open_release(state: BorderState, release_text: str) -> bytes:
    """The vault key a release carries for ``state``'s one-time key and escrow.

    Raises:
        UsageError: not a release text, or no one-time key yet.
        BorderReleaseError: it does not open with this one-time key, or is for another escrow.
    """
    data = _from_text(release_text, RELEASE_PREFIX, "a border release")
    if state.one_time is None:
        raise UsageError(f"run 'burner border return {state.name}' first: no return request was made")
    try:
        plaintext = open_sealed(
            state.one_time,
            data,
            label=LABEL_SEAL_BORDER_RELEASE,
            aad=state.escrow_id + state.one_time.public_key.raw,
        )
    except DecryptionError:
        raise BorderReleaseError(
            "this release does not open with this burner's one-time key: it was made for "
            "another return request, or is damaged; nothing changed"
        ) from None
    vault_key = _parse_key_plaintext(plaintext, state.escrow_id)
    if vault_key is None:
        raise BorderReleaseError("this release is for another escrow; nothing changed")
    return vault_key


def finish_return(home: Home, name: str | None, passphrase: str, release_text: str, rng: Random) -> str:
    """Put the released key back under the passphrase and leave the border (§17.12.4); the name.

    The key is wrapped into slot 0 first and the state destroyed after (zeroed in place,
    removed): cut short in between, the state is still there and the same release
    applies again.

    Raises:
        NotFoundError: no burner at the border opens with this passphrase (by that name).
        UsageError: not a release text, or no return request was made yet.
        BorderReleaseError: a release that is not for this burner's request (nothing changed).
    """
    directory, keys, state = _find(home, name, passphrase)
    vault_key = open_release(state, release_text)
    try:
        Vault.restore_key(directory, keys, vault_key, rng)
    except VaultLockedError:
        raise BorderReleaseError(
            "the released key is not the key of this burner's records; nothing changed"
        ) from None
    _destroy_state(directory)
    return state.name


def _destroy_state(directory: Path) -> None:
    """Zero the state in place (its one-time key must not stay in freed blocks), fsync, remove it."""
    for path in (directory / BORDER_TEMP, directory / BORDER_FILE):
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
            try:
                os.pwrite(fd, bytes(os.fstat(fd).st_size), 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            path.unlink()
    fsync_dir(directory)


# -- the office ------------------------------------------------------------------------------


def release(pair: IssuerKeyPair, request: ReturnRequest, code: str, rng: Random) -> str:
    """The release text for ``request``, if ``code`` is the one the traveller read (§17.12.3).

    Raises:
        BorderReleaseError: the escrow is not sealed to this issuer or not the request's, or
            the code does not match (nothing is released).
    """
    try:
        plaintext = open_sealed(pair.dh_key, request.escrow, label=LABEL_SEAL_BORDER_ESCROW)
    except DecryptionError:
        raise BorderReleaseError("this return request's escrow was not sealed to this issuer key") from None
    vault_key = _parse_key_plaintext(plaintext, request.escrow_id)
    if vault_key is None:
        raise BorderReleaseError("this return request names another escrow than the one it carries")
    if not same_code(code, request.code):
        raise BorderReleaseError(CODE_MISMATCH)
    return seal_release(request, vault_key, rng)


def contact_release(
    get: Callable[[str, bytes], bytes | None],
    contact_id: bytes,
    alias: str,
    request: ReturnRequest,
    code: str,
    rng: Random,
) -> str:
    """A contact holder's release: the key ``contact_id`` left under the request's escrow id (§17.12.3).

    Raises:
        BorderReleaseError: no key from that contact under that escrow id is held here, or
            the code does not match (nothing is released).
    """
    held = held_escrow(get, request.escrow_id, contact_id)
    if held is None:
        raise BorderReleaseError(
            f"{alias} left no key with this burner for this return request: nothing released"
        )
    if not same_code(code, request.code):
        raise BorderReleaseError(CODE_MISMATCH)
    return seal_release(request, held.vault_key, rng)


#: What a holder is told when the code read to it is not the request's.
CODE_MISMATCH: Final = (
    "the code does not match this return request: nothing released; call the traveller "
    "back on a line you trust and compare again"
)


def seal_release(request: ReturnRequest, vault_key: bytes, rng: Random) -> str:
    """The release text: ``vault_key`` sealed to the request's one-time key (the holder checked the code).

    Raises:
        BorderReleaseError: the one-time key is not a valid key.
    """
    try:
        sealed = seal_to(
            request.one_time,
            _key_plaintext(request.escrow_id, vault_key),
            label=LABEL_SEAL_BORDER_RELEASE,
            rng=rng,
            aad=request.escrow_id + request.one_time.raw,
        )
    except InvalidKeyError:
        raise BorderReleaseError("this return request's one-time key is not a valid key") from None
    return RELEASE_PREFIX + _b64(sealed)
