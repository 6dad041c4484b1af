"""Pairing by short code against a real relay process (docs/protocol.md §14.12, §16).

Both sides run ``burnerkit.app.pairing`` over RelayClients connected to
``python -m burnerkit relay serve``; the relay's view is what the recording clients
sent it, and its log output.
"""

from __future__ import annotations

import asyncio

import pytest

from burnerkit.app import pairing
from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import PairingCodeError, PairingTimeoutError, UsageError
from burnerkit.protocol.pairing import ShortCode
from burnerkit.protocol.wordlist import EVEN_WORDS
from burnerkit.relay.client import RelayClient
from burnerkit.relay.protocol import MbJoin, MbPut, decode_client_frame, decode_server_frame
from tests.integration.harness import (
    FAST,
    Recorder,
    Relays,
    client,
    recording_client,
    spellings,
    without_timestamps,
)

RNG = SystemRandom()
INVITATION = b"INVITATION-CANARY-" * 80  # about 1.4 KB, like a real invitation


async def offered(
    relay_client: RelayClient, payload: bytes = INVITATION, timeout: float = 10.0
) -> tuple[asyncio.Task[bytes], str]:
    """Start an offer; return its task and the code it showed."""
    shown: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        pairing.offer(relay_client, payload, rng=RNG, on_code=shown.set_result, timeout=timeout)
    )
    return task, await asyncio.wait_for(shown, 5)


def another_code(code: str) -> str:
    parsed = ShortCode.parse(code)
    even = EVEN_WORDS[(EVEN_WORDS.index(parsed.words[0]) + 1) % 256]
    return ShortCode(parsed.nameplate, (even, parsed.words[1])).text


@pytest.mark.asyncio
async def test_relay_sees_only_nameplate_and_ciphertext(relays: Relays) -> None:
    relay = relays.start()
    recorder = Recorder()
    async with (
        recording_client(relay.url, recorder, **FAST) as a,
        recording_client(relay.url, recorder, **FAST) as b,
    ):
        task, code = await offered(a)
        assert await pairing.join(b, code.upper().replace("-", "  "), b"ACK-CANARY", rng=RNG) == INVITATION
        assert await task == b"ACK-CANARY"
    parsed = ShortCode.parse(code)
    uploaded = recorder.outgoing()
    commands = [decode_client_frame(frame).command for frame in uploaded]
    assert MbJoin(parsed.nameplate) in commands
    bodies = [c.body for c in commands if isinstance(c, MbPut)]
    assert len(bodies) == 6  # PAKE, confirmation, payload, from each side
    everything = b"".join(uploaded + recorder.incoming())
    secrets = [code.encode(), INVITATION[:18], b"ACK-CANARY"]
    for word in parsed.words:
        secrets += [word.encode(), word.upper().encode(), word.capitalize().encode()]
    for secret in secrets:
        assert secret not in everything
    # Every frame, both ways, is one size; tokens and words never reach the log.
    assert {len(frame) for _, frame in recorder.frames} == {16_384}
    tokens = {decode_server_frame(f).entity for f in recorder.incoming()} - {b""}
    await relay.astop()
    log = without_timestamps(relay.log_text())
    assert not [w for w in parsed.words if w in log]
    for token in tokens:
        assert not [s for s in spellings(token) if s in log]


@pytest.mark.asyncio
async def test_wrong_code_destroys_the_mailbox(relays: Relays) -> None:
    relay = relays.start()
    async with client(relay.url) as a, client(relay.url) as b, client(relay.url) as c:
        task, code = await offered(a)
        with pytest.raises(PairingCodeError, match="did not match"):
            await pairing.join(b, another_code(code), b"", rng=RNG)
        with pytest.raises(PairingCodeError, match="did not match"):
            await task
        # The right code, one try later: nothing waits under it any more.
        with pytest.raises(PairingCodeError, match="no pairing waits"):
            await pairing.join(c, code, b"", rng=RNG)
    await relay.astop()


@pytest.mark.asyncio
async def test_third_party_joining_a_nameplate_burns_the_code(relays: Relays) -> None:
    relay = relays.start()
    async with client(relay.url) as a, client(relay.url) as b, client(relay.url) as guesser:
        task, code = await offered(a)
        await guesser.mailbox_join(ShortCode.parse(code).nameplate)
        with pytest.raises(PairingCodeError, match="no pairing waits"):
            await pairing.join(b, code, b"", rng=RNG)
        with pytest.raises(PairingCodeError, match="someone else"):
            await task
    await relay.astop()


@pytest.mark.asyncio
async def test_offer_times_out_and_its_code_dies(relays: Relays) -> None:
    relay = relays.start()
    async with client(relay.url) as a, client(relay.url) as b:
        task, code = await offered(a, timeout=0.3)
        with pytest.raises(PairingTimeoutError):
            await task
        with pytest.raises(PairingCodeError, match="no pairing waits"):
            await pairing.join(b, code, b"", rng=RNG)
    await relay.astop()


@pytest.mark.asyncio
async def test_join_times_out_when_the_offerer_is_gone(relays: Relays) -> None:
    relay = relays.start()
    async with client(relay.url) as a, client(relay.url) as b:
        mailbox = await a.mailbox_allocate()  # an offerer that never speaks
        code = ShortCode.generate(mailbox.nameplate, RNG).text
        with pytest.raises(PairingTimeoutError):
            await pairing.join(b, code, b"", rng=RNG, timeout=0.3)
    await relay.astop()


@pytest.mark.asyncio
async def test_malformed_code_is_a_usage_error_before_any_relay_traffic(relays: Relays) -> None:
    relay = relays.start()
    recorder = Recorder()
    async with recording_client(relay.url, recorder, **FAST) as b:
        with pytest.raises(UsageError, match="not a code word"):
            await pairing.join(b, "7-crossbow-lantern", b"", rng=RNG)
    assert recorder.outgoing() == []
    await relay.astop()
