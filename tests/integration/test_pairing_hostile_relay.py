"""Pairing by short code against a relay that guesses codes (docs/protocol.md §16.6).

The relay is :class:`~tests.integration.hostile_relay.HostileRelay`: a real relay process
for queues, behind a front that runs every pairing mailbox itself and plays the other
side with a guessed code. It gets one SPAKE2 exchange with each side of a code, learns
offline from the victim's key confirmation whether its guess was right, and after a
wrong one simply stops. These tests hold the defences to that:

- a pairing cut after our confirmation went out is a :class:`PairingAttackError`, never a
  timeout, whatever the relay makes the cut look like; before it, it stays what it was;
- a code-paired contact is verified only once the exchange finished with both
  confirmations; a pairing that failed or was cut leaves nothing verified;
- a right guess against one side gives that side an impostor contact marked verified,
  which only comparing safety codes reveals (the limit the spec states).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from burnerkit.app import pairing
from burnerkit.app.addresses import decode_link
from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.app.records import Invite
from burnerkit.cli.errors import exit_code
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import (
    PairingAttackError,
    PairingCodeError,
    PairingError,
    PairingTimeoutError,
)
from burnerkit.protocol.pairing import ShortCode, Side
from burnerkit.relay.protocol import MailboxEndReason
from tests.integration.harness import Relays, client
from tests.integration.hostile_relay import HostileRelay
from tests.integration.test_pairing_relay import INVITATION, another_code

RNG = SystemRandom()
PASS = "correct horse battery"
#: The message the brief fixes, word for word.
ATTACK = (
    "pairing stopped after our confirmation was sent: someone may be guessing the code. "
    "Do not reuse this code; pair again and compare safety codes ('burner verify NAME')"
)
#: How each MB_END reads when it comes before our confirmation was sent.
BEFORE_CONFIRMATION = {
    MailboxEndReason.EXPIRED: PairingTimeoutError,
    MailboxEndReason.DELETED: PairingError,
    MailboxEndReason.CROWDED: PairingCodeError,
}


def mint(tmp_path: Path, name: str, url: str) -> Messenger:
    return Messenger.create(Home(tmp_path / name), name, PASS, relay_url=url, kdf=FAST_TEST_KDF)


def wrong_guess(upstream: str, shown: list[str]) -> HostileRelay:
    """A relay front whose every guess is wrong (one word off the code shown)."""
    return HostileRelay(upstream, guess=lambda nameplate, side: ShortCode.parse(another_code(shown[0])))


def some_guess(nameplate: int, side: Side) -> ShortCode:
    return ShortCode(nameplate, ("acme", "adroitness"))


# -- the cut is reported as an attack ----------------------------------------------------------


@pytest.mark.asyncio
async def test_relay_silent_after_a_wrong_guess_is_reported_as_an_attack_not_a_timeout(
    relays: Relays,
) -> None:
    real = relays.start()
    shown: list[str] = []
    relay = wrong_guess(real.url, shown)
    async with relay, client(relay.url) as a:
        with pytest.raises(PairingAttackError) as info:
            await pairing.offer(a, INVITATION, rng=RNG, on_code=shown.append, timeout=1.0)
    assert str(info.value) == ATTACK
    assert isinstance(info.value.__cause__, PairingTimeoutError)
    # The relay learnt offline that its guess was wrong, and got nothing else.
    assert relay.verdicts == [False]
    assert relay.stolen == []
    await real.astop()


@pytest.mark.parametrize("reason", list(MailboxEndReason), ids=lambda r: r.name)
@pytest.mark.asyncio
async def test_mailbox_end_faked_after_a_wrong_guess_is_reported_as_an_attack(
    relays: Relays, reason: MailboxEndReason
) -> None:
    """Expired, deleted or crowded: all the relay's to say; after our confirmation, an attack."""
    real = relays.start()
    code = ShortCode.generate(7, RNG).text
    relay = wrong_guess(real.url, [code])
    async with relay, client(relay.url) as b:
        joining = asyncio.create_task(pairing.join(b, code, b"", rng=RNG, timeout=30))
        await asyncio.wait_for(relay.learned.wait(), 10)
        await relay.end(reason)
        with pytest.raises(PairingAttackError, match="someone may be guessing the code") as info:
            await joining
    assert isinstance(info.value.__cause__, BEFORE_CONFIRMATION[reason])
    assert relay.verdicts == [False]
    await real.astop()


@pytest.mark.parametrize("reason", list(MailboxEndReason), ids=lambda r: r.name)
@pytest.mark.asyncio
async def test_mailbox_end_before_our_confirmation_is_not_called_an_attack(
    relays: Relays, reason: MailboxEndReason
) -> None:
    """A relay that never answers our PAKE message got no guess: the old errors stand."""
    real = relays.start()
    relay = HostileRelay(real.url, guess=some_guess, mute=True)
    async with relay, client(relay.url) as a:
        offering = asyncio.create_task(
            pairing.offer(a, INVITATION, rng=RNG, on_code=lambda _: None, timeout=30)
        )
        await asyncio.wait_for(relay.heard.wait(), 10)
        await relay.end(reason)
        with pytest.raises(BEFORE_CONFIRMATION[reason]) as info:
            await offering
    assert not isinstance(info.value, PairingAttackError)
    assert relay.verdicts == []
    await real.astop()


@pytest.mark.asyncio
async def test_time_limit_before_our_confirmation_stays_a_timeout(relays: Relays) -> None:
    real = relays.start()
    relay = HostileRelay(real.url, guess=some_guess, mute=True)
    async with relay, client(relay.url) as b:
        with pytest.raises(PairingTimeoutError) as info:
            await pairing.join(b, "7-acme-adroitness", b"", rng=RNG, timeout=0.3)
    assert not isinstance(info.value, PairingAttackError)
    await real.astop()


def test_cli_exit_code_keeps_an_attack_apart_from_a_wrong_code() -> None:
    assert exit_code(PairingAttackError(ATTACK)) == 11
    assert exit_code(PairingCodeError("wrong")) == exit_code(PairingTimeoutError("late")) == 8


# -- nothing is verified before both confirmations ---------------------------------------------


@pytest.mark.asyncio
async def test_offerer_cut_after_giving_its_invitation_leaves_no_verified_contact(
    relays: Relays, tmp_path: Path
) -> None:
    """The relay guessed right, took the invitation and withheld its payload: the offerer's
    pairing is cut. Another process on the offerer's vault takes the acceptance meanwhile:
    the contact it makes must not be verified (the invitation used to be, from the start)."""
    real = relays.start()
    shown: list[str] = []
    relay = HostileRelay(
        real.url, guess=lambda nameplate, side: ShortCode.parse(shown[0]), withhold_payload=True
    )
    async with relay:
        alice = mint(tmp_path, "alice", relay.url)
        mallory = mint(tmp_path, "mallory", real.url)
        offering = asyncio.create_task(alice.pair_offer("bob", shown.append, timeout=60))
        await asyncio.wait_for(relay.took.wait(), 10)
        assert relay.verdicts == [True]
        await mallory.accept(relay.stolen[0], "alice")
        alice_elsewhere = Messenger.open(Home(tmp_path / "alice"), "alice", PASS)
        assert (await alice_elsewhere.receive(wait=10)).new_contacts == ["bob"]
        assert [(c.alias, c.verified) for c in alice_elsewhere.contacts()] == [("bob", False)]
        await relay.end(MailboxEndReason.EXPIRED)
        with pytest.raises(PairingAttackError, match="someone may be guessing the code"):
            await offering
        assert [(c.alias, c.verified) for c in alice.contacts()] == [("bob", False)]
        for messenger in (alice, alice_elsewhere, mallory):
            messenger.close()
    await real.astop()


@pytest.mark.asyncio
async def test_offerer_contact_is_verified_only_after_the_exchange(relays: Relays, tmp_path: Path) -> None:
    """While the code exchange runs, the invitation is an unverified one; then it is verified."""
    url = relays.start().url
    alice, bob = mint(tmp_path, "alice", url), mint(tmp_path, "bob", url)
    during: list[bool] = []
    shown: asyncio.Queue[str] = asyncio.Queue()

    def on_code(code: str) -> None:
        during.extend(c.verified for c in alice.contacts())
        during.extend(Invite.from_bytes(record).verified for _, record in alice._vault.items("invite"))
        shown.put_nowait(code)

    offering = asyncio.create_task(alice.pair_offer("bob", on_code, timeout=30))
    joined = await bob.pair_join(await shown.get(), "alice", timeout=30)
    offered = await offering
    assert during == [False]
    assert (offered.verified, joined.verified) == (True, True)
    assert offered.safety_code == joined.safety_code
    alice.close()
    bob.close()


# -- the limit: a right guess against one side -------------------------------------------------


@pytest.mark.asyncio
async def test_right_guess_against_the_joiner_is_caught_only_by_the_safety_code(
    relays: Relays, tmp_path: Path
) -> None:
    """Two guesses per code: the relay misses the offerer and hits the joiner. The joiner's
    exchange finished with both confirmations, so its contact (Mallory) is marked verified;
    the offerer is told it may be under attack, and the safety codes tell them apart."""
    real = relays.start()
    shown: list[str] = []

    def guess(nameplate: int, victim: Side) -> ShortCode:
        right = ShortCode.parse(shown[0])
        return right if victim is Side.B else ShortCode.parse(another_code(shown[0]))

    async with HostileRelay(real.url, guess=guess) as relay:
        # Alice meets on the hostile relay (her burner's); its queues pass through to the real one.
        alice = mint(tmp_path, "alice", relay.url)
        bob, mallory = mint(tmp_path, "bob", real.url), mint(tmp_path, "mallory", real.url)
        relay.payload = decode_link((await mallory.invite("bob", short=False)).long_link)
        code: asyncio.Queue[str] = asyncio.Queue()

        def on_code(text: str) -> None:
            shown.append(text)
            code.put_nowait(text)

        offering = asyncio.create_task(alice.pair_offer("bob", on_code, timeout=30))
        joined = await bob.pair_join(await code.get(), "alice", relay_url=relay.url, timeout=30)
        assert (await mallory.receive(wait=10)).new_contacts == ["bob"]
        await relay.end(MailboxEndReason.EXPIRED)
        with pytest.raises(PairingAttackError):
            await offering
    assert sorted(relay.verdicts) == [False, True]  # one guess at each side of one code
    assert joined.verified  # the stated limit: a right guess passes both confirmations
    assert joined.safety_code == mallory.verify("bob").safety_code
    assert alice.contacts() == []
    for messenger in (alice, bob, mallory):
        messenger.close()
    await real.astop()


@pytest.mark.asyncio
async def test_offer_meets_on_the_relay_it_is_told(relays: Relays, tmp_path: Path) -> None:
    """``pair --relay URL`` on the offering side puts the code's mailbox there, not on our relay."""
    ours, meeting = relays.start(), relays.start()
    alice, bob = mint(tmp_path, "alice", ours.url), mint(tmp_path, "bob", ours.url)
    shown: asyncio.Queue[str] = asyncio.Queue()
    offering = asyncio.create_task(
        alice.pair_offer("bob", shown.put_nowait, timeout=30, relay_url=meeting.url)
    )
    code = await shown.get()
    # On our own relay the code names no mailbox: the join fails there, and the code dies
    # only where it was made, so the right relay still works.
    with pytest.raises(PairingError):
        await bob.pair_join(code, "alice", timeout=5)
    joined = await bob.pair_join(code, "alice", relay_url=meeting.url, timeout=30)
    offered = await offering
    assert offered.safety_code == joined.safety_code
    assert (offered.verified, joined.verified) == (True, True)
    alice.close()
    bob.close()
