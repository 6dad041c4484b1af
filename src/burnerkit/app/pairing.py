"""Pairing by short code over a relay mailbox: the async loop around the sans-IO machine.

docs/protocol.md §16. :func:`offer` allocates a nameplate and makes the code the user
reads out; :func:`join` takes the code the user was told. Both run
:class:`burnerkit.protocol.pairing.Pairing` over the mailbox, exchange one payload each
way (the app sends an invitation one way and a small answer the other) and destroy the
mailbox at the end, whatever happened.

Errors, for the CLI and TUI to map:

- :class:`~burnerkit.errors.UsageError`: the text typed is not a code (the message says
  what is wrong with it, without repeating it);
- :class:`~burnerkit.errors.PairingCodeError`: the code was wrong, or someone else tried
  it, or no pairing waits under it (used, destroyed, expired or mistyped): it is gone,
  start again with a new code;
- :class:`~burnerkit.errors.PairingTimeoutError`: the other side did not finish in time,
  and we had not sent our key confirmation;
- :class:`~burnerkit.errors.PairingAttackError`: the pairing stopped (silence, the mailbox
  expiring or deleted, the time limit, the relay failing) *after* our key confirmation was
  sent. Whoever answered our PAKE message can check its guess of the code against that
  confirmation offline and then fall silent; a "timeout" would send the user to try again
  with a new code, which is one more guess for it (docs/protocol.md §16.6). So we say so;
- :class:`~burnerkit.errors.PairingError`: the other side gave up before our confirmation;
- :class:`~burnerkit.errors.RelayError` (and subclasses): the relay could not be used,
  before our confirmation.

A message that fails the machine's checks without proving a wrong code (malformed, a
replay, our own message sent back, a payload that does not open) can only come from the
relay; we drop it and keep waiting for the real one, until the time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final, assert_never

from burnerkit.crypto.rng import Random
from burnerkit.errors import (
    DecryptionError,
    DuplicateMessageError,
    PairingAttackError,
    PairingCodeError,
    PairingError,
    PairingTimeoutError,
    RelayError,
    RelayRejectedError,
    RemoteProtocolError,
    UsageError,
)
from burnerkit.protocol.pairing import (
    CODE_WORD_COUNTS,
    CODE_WORDS,
    MAX_PAYLOAD_SIZE,
    Pairing,
    PairingState,
    ShortCode,
    Side,
)
from burnerkit.relay.client import Mailbox, MailboxEnded, RelayClient
from burnerkit.relay.protocol import ErrorCode, MailboxEndReason

__all__ = [
    "ATTACK_MESSAGE",
    "CODE_WORDS",
    "CODE_WORD_COUNTS",
    "DEFAULT_TIMEOUT",
    "MAX_PAYLOAD_SIZE",
    "join",
    "offer",
]

#: Seconds either side waits for the other by default (the relay keeps a mailbox 10 minutes).
DEFAULT_TIMEOUT: Final = 600.0
#: Seconds we give the relay to delete the mailbox on the way out.
_DELETE_TIMEOUT: Final = 5.0
#: What :class:`PairingAttackError` says: what may have happened, and what to do now.
ATTACK_MESSAGE: Final = (
    "pairing stopped after our confirmation was sent: someone may be guessing the code. "
    "Do not reuse this code; pair again and compare safety codes ('burner verify NAME')"
)


async def offer(
    client: RelayClient,
    payload: bytes,
    *,
    rng: Random,
    on_code: Callable[[str], None],
    timeout: float = DEFAULT_TIMEOUT,
    words: int = CODE_WORDS,
) -> bytes:
    """Make a short code, wait for the other side to join with it, and swap payloads.

    Args:
        client: a relay client (entered, or used as is; it connects on demand).
        payload: what the other side gets once the code is confirmed (at most
            :data:`MAX_PAYLOAD_SIZE` bytes).
        rng: randomness for the code's words, SPAKE2 and nonces.
        on_code: called once with the code (``"7-aardvark-adroitness"``) to show the
            user, as soon as the mailbox exists.
        timeout: seconds to wait for the other side, from the moment the code exists.
        words: words in the code, 2 (16 bits) or 3 (24 bits); the joining side needs
            no telling.

    Returns:
        The other side's payload.

    Raises:
        ValueError: if ``payload`` is too long, or ``words`` is not 2 or 3.
        PairingCodeError: the other side used a different code, or a third party tried.
        PairingTimeoutError: the other side did not finish within ``timeout``.
        PairingAttackError: it stopped after our confirmation was sent.
        PairingError: the other side gave up.
        RelayError: the relay could not be reached or refused (``QUOTA``: too busy).
    """
    _check_payload(payload)
    if words not in CODE_WORD_COUNTS:
        raise ValueError("a code has 2 or 3 words")
    mailbox = await client.mailbox_allocate()
    try:
        code = ShortCode.generate(mailbox.nameplate, rng, words=words)
        on_code(code.text)
        return await _exchange(client, mailbox, Pairing(code, Side.A, payload, rng=rng), timeout)
    finally:
        await _discard(client, mailbox)


async def join(
    client: RelayClient,
    code: str,
    payload: bytes,
    *,
    rng: Random,
    timeout: float = DEFAULT_TIMEOUT,
) -> bytes:
    """Join the pairing of ``code`` and swap payloads.

    Args:
        client: a relay client.
        code: the code as the user typed it (case, spaces and hyphens do not matter).
        payload: what the other side gets once the code is confirmed (may be empty).
        rng: randomness for SPAKE2 and nonces.
        timeout: seconds to wait for the other side.

    Returns:
        The other side's payload.

    Raises:
        UsageError: ``code`` is not a code (the message says why).
        ValueError: if ``payload`` is too long.
        PairingCodeError: the code is wrong, or no pairing waits under it any more.
        PairingTimeoutError: the other side did not finish within ``timeout``.
        PairingAttackError: it stopped after our confirmation was sent.
        PairingError: the other side gave up.
        RelayError: the relay could not be reached or refused.
    """
    try:
        parsed = ShortCode.parse(code)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _check_payload(payload)
    try:
        mailbox = await client.mailbox_join(parsed.nameplate)
    except RelayRejectedError as exc:
        if exc.code == ErrorCode.MAILBOX:
            raise PairingCodeError(
                "no pairing waits under this code: it was mistyped, used, destroyed or expired"
            ) from None
        raise
    try:
        return await _exchange(client, mailbox, Pairing(parsed, Side.B, payload, rng=rng), timeout)
    finally:
        await _discard(client, mailbox)


def _check_payload(payload: bytes) -> None:
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise ValueError(f"pairing payload must be at most {MAX_PAYLOAD_SIZE} bytes")


async def _exchange(client: RelayClient, mailbox: Mailbox, machine: Pairing, timeout: float) -> bytes:
    """Run ``machine`` over ``mailbox`` to the end; every way it stops, mapped (see above)."""
    try:
        return await _run(client, mailbox, machine, timeout)
    except (PairingError, RelayError) as exc:
        # A wrong confirmation (PairingCodeError) leaves the machine FAILED, so it is
        # reported as it is. Anything else that stops us once our confirmation is out may
        # be a guesser hiding a wrong guess, whatever it looks like: silence, an expired,
        # deleted or even "crowded" mailbox, a failing relay are all the relay's to fake.
        if machine.confirmation_sent:
            raise PairingAttackError(ATTACK_MESSAGE) from exc
        raise


async def _run(client: RelayClient, mailbox: Mailbox, machine: Pairing, timeout: float) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            await client.mailbox_put(mailbox, machine.start())
            while machine.state is not PairingState.DONE:
                item = await client.mailbox_receive(mailbox)
                if isinstance(item, MailboxEnded):
                    raise _ended(item.reason)
                try:
                    reply = machine.receive(item)
                except (RemoteProtocolError, DuplicateMessageError, DecryptionError):
                    # Not from the other side (it authenticates everything it sends):
                    # dropped, the machine unchanged. PairingCodeError is not caught.
                    continue
                if reply is not None:
                    await client.mailbox_put(mailbox, reply)
    except TimeoutError:
        raise PairingTimeoutError("the other side did not complete pairing in time") from None
    return machine.peer_payload


def _ended(reason: MailboxEndReason) -> PairingError:
    match reason:
        case MailboxEndReason.CROWDED:
            return PairingCodeError("someone else tried this code; it is destroyed")
        case MailboxEndReason.EXPIRED:
            return PairingTimeoutError("the pairing mailbox expired before pairing completed")
        case MailboxEndReason.DELETED:
            return PairingError("the other side ended pairing before it completed")
        case _:  # pragma: no cover
            assert_never(reason)


async def _discard(client: RelayClient, mailbox: Mailbox) -> None:
    """Delete the mailbox; a relay that cannot be reached lets it expire instead."""
    with contextlib.suppress(RelayError):
        await client.mailbox_delete(mailbox, timeout=_DELETE_TIMEOUT)
