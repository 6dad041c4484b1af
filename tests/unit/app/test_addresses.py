"""Queue addresses and ``burner:`` links (docs/protocol.md §17.1-17.2)."""

from __future__ import annotations

import base64

import pytest

from burnerkit.app.addresses import LINK_PREFIX, MAX_URL_SIZE, QueueAddress, decode_link, encode_link
from burnerkit.errors import RemoteProtocolError, UsageError

SENDER = bytes(range(24))
URL = "wss://relay.example.org"


def address_bytes(url: bytes, sender: bytes = SENDER, version: int = 1) -> bytes:
    return bytes([version, len(url)]) + url + sender


# -- QueueAddress ----------------------------------------------------------------------------


def test_round_trip_and_layout() -> None:
    address = QueueAddress(URL, SENDER)
    data = address.to_bytes()
    assert data == address_bytes(URL.encode())
    assert QueueAddress.from_bytes(data) == address


@pytest.mark.parametrize("url", ["ws://a", "wss://x", "wss://" + "a" * (MAX_URL_SIZE - 6)])
def test_accepts_ws_and_wss_urls_up_to_255_bytes(url: str) -> None:
    assert QueueAddress.from_bytes(QueueAddress(url, SENDER).to_bytes()).relay_url == url


@pytest.mark.parametrize(
    "url",
    ["", "https://relay.example.org", "WSS://relay.example.org", "relay.example.org",
     "wss://" + "a" * (MAX_URL_SIZE - 5), "wss://" + "\N{SNOWMAN}" * 84],
)  # fmt: skip
def test_construction_refuses_a_bad_url(url: str) -> None:
    with pytest.raises(ValueError, match="relay_url"):
        QueueAddress(url, SENDER)


@pytest.mark.parametrize("size", [0, 16, 23, 25, 32])
def test_construction_refuses_a_sender_id_of_the_wrong_size(size: int) -> None:
    with pytest.raises(ValueError, match="sender_id"):
        QueueAddress(URL, bytes(size))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",
        address_bytes(URL.encode(), version=0),
        address_bytes(URL.encode(), version=2),
        address_bytes(URL.encode())[:-1],  # sender id one byte short
        address_bytes(URL.encode()) + b"\x00",  # trailing byte
        address_bytes(b"https://relay.example.org"),  # not a ws url
        address_bytes(b""),  # empty url
        address_bytes(b"wss://\xff\xfe"),  # not UTF-8
        bytes([1, 200]) + b"wss://short" + SENDER,  # length beyond the data
    ],
)
def test_parsing_refuses_malformed_bytes(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed queue address"):
        QueueAddress.from_bytes(data)


def test_repr_hides_the_sender_id() -> None:
    address = QueueAddress(URL, bytes.fromhex("ab" * 24))
    text = repr(address)
    assert URL in text
    assert "ab" * 4 not in text
    assert "<sender id>" in text
    assert "ab" * 4 not in str(address)


# -- links -----------------------------------------------------------------------------------


@pytest.mark.parametrize("invitation", [b"\x00", b"\xff\xfe", bytes(range(256)), b"\x01\x10" * 700])
def test_link_round_trip(invitation: bytes) -> None:
    link = encode_link(invitation)
    assert link.startswith(LINK_PREFIX)
    assert "=" not in link
    assert "+" not in link
    assert "/" not in link
    assert decode_link(link) == invitation


def test_link_is_unpadded_base64url() -> None:
    assert encode_link(b"\xfb\xff") == "burner:i1.-_8"
    assert encode_link(b"abc") == "burner:i1.YWJj"


def test_link_whitespace_from_copy_and_paste_is_ignored() -> None:
    invitation = bytes(range(100))
    link = encode_link(invitation)
    wrapped = "  " + "\n".join(link[i : i + 20] for i in range(0, len(link), 20)) + "\r\n\t"
    assert decode_link(wrapped) == invitation
    assert decode_link(link[:5] + " \u00a0 " + link[5:]) == invitation  # str.split: Unicode spaces too


@pytest.mark.parametrize(
    "text",
    ["", "burner:", "burner:i2.AAAA", "BURNER:i1.AAAA", "https://example.org/burner:i1.AAAA",
     "AAAA", "burner:i1"],
)  # fmt: skip
def test_link_with_the_wrong_prefix_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="not a burner invitation link"):
        decode_link(text)


@pytest.mark.parametrize(
    "body",
    ["A", "AAAAA", "AB!C", "AAAA\N{SNOWMAN}"],
)
def test_damaged_base64_is_a_usage_error(body: str) -> None:
    with pytest.raises(UsageError, match="damaged"):
        decode_link(LINK_PREFIX + body)


@pytest.mark.parametrize("body", ["AAAA!!!!", "AA*AA", "YWJj.", "YW Jj%%%%"])
def test_characters_outside_base64url_are_a_usage_error(body: str) -> None:
    with pytest.raises(UsageError):
        decode_link(LINK_PREFIX + body)


def test_only_the_canonical_link_of_an_invitation_decodes() -> None:
    """One invitation has one link: padding, the + / alphabet and stray bits are refused."""
    assert decode_link(LINK_PREFIX + "YWJj") == b"abc"
    assert decode_link(" " + LINK_PREFIX + "YW\nJj ") == b"abc"  # whitespace from copy and paste
    for body in ("", "YWJj==", "+/8", "AB", "YWJj=", base64.urlsafe_b64encode(b"ab").decode()):
        with pytest.raises(UsageError, match="damaged"):
            decode_link(LINK_PREFIX + body)
