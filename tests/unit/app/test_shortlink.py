"""Short invitation links (docs/protocol.md §17.2): their size, their QR code, the commitment."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import segno

from burnerkit.app.addresses import encode_link, parse_link
from burnerkit.app.shortlink import (
    SHORT_LINK_PREFIX,
    ShortLink,
    fetch_invitation,
    link_keys,
    link_secret,
    open_invitation,
    publish_invitation,
    seal_invitation,
)
from burnerkit.crypto import aead
from burnerkit.crypto.kdf import LABEL_LINK_SEAL
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import HandshakeError, RelayRejectedError, UsageError
from burnerkit.relay.client import ReceivedMessage
from burnerkit.relay.protocol import MAX_BODY_SIZE, Err, ErrorCode, Send
from tests.relay.test_client_memory import Relay, make_client, running_relay

RNG = DeterministicRandom(b"short link unit tests")
PIN = "#sha256=" + base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()
#: What the issue asks to fit: a realistic relay with its certificate pin.
REALISTIC = "wss://relay.example.org:7443" + PIN


def link(url: str) -> ShortLink:
    return ShortLink(url, RNG.random_bytes(24), RNG.random_bytes(32), RNG.random_bytes(32))


def qr_columns(text: str) -> int:
    """Columns of the code as ``burner invite`` draws it (cli.output.print_qr's settings)."""
    out = io.StringIO()
    segno.make(text, error="l", micro=False).terminal(out=out, compact=True, border=2)
    return max(len(line) for line in out.getvalue().splitlines())


def test_realistic_pinned_link_is_about_200_characters_and_its_qr_fits_80_columns() -> None:
    text = link(REALISTIC).to_text()
    assert len(text) == 201
    assert qr_columns(text) == 57
    # The long link of a real invitation naming that relay does not fit at all.
    assert qr_columns(encode_link(bytes(1399 + len(REALISTIC)))) > 140


@pytest.mark.parametrize(
    "url",
    [
        "wss://" + "h" * (255 - 6 - len(PIN)) + PIN,  # the longest pinned URL
        "wss://" + "h" * (252 - 6),  # the longest unpinned one that fits
        "ws://" + "h" * (252 - 5),
    ],
)
def test_worst_case_links_still_fit_80_columns(url: str) -> None:
    assert len(url.encode()) <= 255
    assert qr_columns(link(url).to_text()) <= 80


def test_pin_travels_as_32_raw_bytes_and_comes_back_spelt_the_same() -> None:
    pinned, plain = link(REALISTIC), link("wss://relay.example.org:7443")
    assert len(pinned.payload()) == len(plain.payload()) + 32
    assert pinned.payload()[0] == 0x02
    parsed = parse_link(pinned.to_text())
    assert isinstance(parsed, ShortLink)
    assert parsed.relay_url == REALISTIC


@pytest.mark.parametrize(
    ("payload_edit", "message"),
    [
        (lambda p: p[:89], "too short"),
        (lambda p: bytes([p[0] | 0x80]) + p[1:], "unknown flags"),
        (lambda p: p + b"\xff", "bad relay url"),
        # The pin spelt out in the URL part: a second encoding of the same link.
        (lambda p: bytes([p[0] & ~0x02]) + p[1:89] + p[121:] + PIN.encode(), "not canonical"),
        (lambda p: bytes([p[0]]) + p[1:89] + p[121:], "too short"),
    ],
)
def test_non_canonical_short_links_are_refused(payload_edit: object, message: str) -> None:
    payload = payload_edit(link(REALISTIC).payload())  # type: ignore[operator]
    text = SHORT_LINK_PREFIX + base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    with pytest.raises(UsageError, match=message):
        parse_link(text)


def test_padding_and_wrong_prefixes_are_refused() -> None:
    text = link(REALISTIC).to_text()
    for bad in (text + "=", "BURNER:S1." + text[10:], "burner:s2." + text[10:], text.replace("-", "+")):
        with pytest.raises(UsageError):
            parse_link(bad)


def test_repr_of_a_short_link_shows_no_secret() -> None:
    short = link(REALISTIC)
    assert short.secret.hex() not in repr(short)
    assert "secret" in repr(short)


def test_sealed_invitation_opens_under_its_own_link_only() -> None:
    invitation = b"an invitation with fresh keys" + RNG.random_bytes(32)
    sealed = seal_invitation(invitation, RNG)
    secret = link_secret(invitation)
    assert open_invitation(secret, sealed) == invitation
    with pytest.raises(HandshakeError, match="not the one this link names"):
        open_invitation(link_secret(b"another invitation"), sealed)


def _sealed_under(secret: bytes, plaintext: bytes) -> bytes:
    nonce = RNG.random_bytes(aead.NONCE_SIZE)
    return nonce + aead.seal(link_keys(secret).seal_key, nonce, plaintext, LABEL_LINK_SEAL)


def _padded(invitation: bytes, filler: bytes = b"") -> bytes:
    body = len(invitation).to_bytes(2, "big") + invitation + filler
    return body + bytes(MAX_BODY_SIZE - aead.NONCE_SIZE - aead.TAG_SIZE - len(body))


def test_another_invitation_sealed_under_the_right_key_is_refused_by_the_commitment() -> None:
    # Only a holder of the link knows its sealing key; even so it cannot name another invitation.
    invitation, other = b"the invitation" + RNG.random_bytes(32), b"a substitute" + RNG.random_bytes(32)
    secret = link_secret(invitation)
    assert open_invitation(secret, _sealed_under(secret, _padded(invitation))) == invitation
    with pytest.raises(HandshakeError, match="not the one this link names"):
        open_invitation(secret, _sealed_under(secret, _padded(other)))


def test_sealed_invitation_is_one_envelope_in_size_and_only_its_canonical_padding_opens() -> None:
    # The relay sees a link queue's message at the size of every envelope, nothing to tell it by.
    invitation = b"an invitation" + RNG.random_bytes(32)
    secret = link_secret(invitation)
    assert len(seal_invitation(invitation, RNG)) == MAX_BODY_SIZE
    for plaintext in (
        invitation,  # no length, no padding
        _padded(invitation, b"\x01"),  # a byte after the invitation that is not padding
        _padded(invitation)[:-1],  # short
        (len(invitation) + 1).to_bytes(2, "big") + _padded(invitation)[2:],  # a length that lies
    ):
        with pytest.raises(HandshakeError, match="not the one this link names"):
            open_invitation(secret, _sealed_under(secret, plaintext))
    with pytest.raises(ValueError, match="does not fit"):
        seal_invitation(bytes(MAX_BODY_SIZE), RNG)


def test_link_naming_a_small_order_relay_key_is_refused_as_damaged() -> None:
    bad = ShortLink(REALISTIC, RNG.random_bytes(24), bytes(32), RNG.random_bytes(32))
    parsed = parse_link(bad.to_text())  # the codec carries any 32 bytes...
    assert isinstance(parsed, ShortLink)
    with pytest.raises(UsageError, match="bad relay key"):
        parsed.credentials()  # ...the queue key refuses an all-zero exchange (§3.5)


# -- publishing and fetching, against the in-process relay of the client's tests --------------

INVITATION = b"an invitation, fresh keys and id" + RNG.random_bytes(32)


@pytest_asyncio.fixture
async def relay() -> AsyncIterator[Relay]:
    async with running_relay() as started:
        yield started


@pytest.mark.asyncio
async def test_published_invitation_is_fetched_by_each_holder_until_the_inviter_deletes_it(
    relay: Relay,
) -> None:
    async with make_client(relay) as inviter:
        link, creds = await publish_invitation(inviter, "ws://relay.invalid", INVITATION, RNG)
    parsed = parse_link(link.to_text())
    assert isinstance(parsed, ShortLink)
    reader = parsed.credentials()
    assert reader.recipient_id == creds.recipient_id
    assert reader.queue_key == creds.queue_key  # derived from k and the relay's key alone
    # Nothing acknowledged: a second holder of the link reads the same copy (its acceptance
    # then meets the invitation's sender-secured queue, which is what alerts the inviter).
    for who in (b"acceptor", b"second"):
        async with make_client(relay, who) as acceptor:
            assert await fetch_invitation(acceptor, parsed, timeout=2) == INVITATION
    async with make_client(relay) as inviter:
        await inviter.delete_queue(creds)  # the invitation expired
    async with make_client(relay, b"late") as late:
        with pytest.raises(HandshakeError, match="no longer on its relay"):
            await fetch_invitation(late, link, timeout=2)


@pytest.mark.asyncio
async def test_link_queue_whose_copy_was_taken_counts_as_gone(relay: Relay) -> None:
    async with make_client(relay) as inviter:
        link, _ = await publish_invitation(inviter, "ws://relay.invalid", INVITATION, RNG)
    reader = link.credentials()
    async with make_client(relay, b"first") as first:
        await first.subscribe(reader)
        event = await first.next_delivery(timeout=2)
        assert isinstance(event, ReceivedMessage)
        await first.ack(reader, event.msg_id)  # a holder of the link can take the copy away
    async with make_client(relay, b"second") as second:
        with pytest.raises(HandshakeError, match="no longer on its relay"):
            await fetch_invitation(second, link, timeout=0.2)


@pytest.mark.asyncio
async def test_link_queue_is_deleted_when_the_relay_refuses_the_invitation(relay: Relay) -> None:
    relay.answers[Send] = [Err(ErrorCode.QUOTA)]
    async with make_client(relay) as inviter:
        with pytest.raises(RelayRejectedError):
            await publish_invitation(inviter, "ws://relay.invalid", INVITATION, RNG)
    assert relay.queues == {}, "no empty link queue is left behind"
