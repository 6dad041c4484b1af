"""Relay URLs and pins (docs/protocol.md §14.13): one check, one spelling, and the insecure rule."""

from __future__ import annotations

import base64
import hashlib

import pytest

from burnerkit.app.addresses import MAX_URL_SIZE as ADDRESS_URL_SIZE
from burnerkit.app.addresses import QueueAddress
from burnerkit.errors import UsageError
from burnerkit.relay.url import MAX_URL_SIZE, check_relay_url, format_pin, is_loopback, pinned_url

DIGEST = hashlib.sha256(b"a relay certificate").digest()
PIN = format_pin(DIGEST)


@pytest.mark.parametrize(
    ("url", "secure", "host", "port"),
    [
        ("ws://127.0.0.1:7000", False, "127.0.0.1", 7000),
        ("ws://localhost", False, "localhost", 80),
        ("wss://relay_1:7000", True, "relay_1", 7000),
        ("ws://[::1]:7000/relay", False, "::1", 7000),
        ("wss://relay.example.org", True, "relay.example.org", 443),
        ("wss://relay.example.org:7443/a/b%20c", True, "relay.example.org", 7443),
        ("wss://[2001:db8::1]:7443", True, "2001:db8::1", 7443),
    ],
)
def test_valid_urls_are_taken_apart_and_kept_as_given(url: str, secure: bool, host: str, port: int) -> None:
    relay = check_relay_url(url)
    assert (relay.url, relay.secure, relay.host, relay.port, relay.pin) == (url, secure, host, port, None)
    assert relay.address == url


def test_a_pin_is_the_sha256_in_unpadded_base64url_and_stays_out_of_the_address() -> None:
    url = pinned_url("wss://relay.example.org:7443", DIGEST)
    assert url == "wss://relay.example.org:7443#sha256=" + base64.urlsafe_b64encode(DIGEST).decode().rstrip(
        "="
    )
    relay = check_relay_url(url)
    assert relay.pin == DIGEST
    assert relay.address == "wss://relay.example.org:7443"  # what is connected to and named in errors


@pytest.mark.parametrize(
    "fragment",
    [
        PIN.upper(),  # SHA256=
        PIN.replace("sha256=", "sha256:"),
        PIN + "=",  # padded
        PIN[:-1],  # 42 characters
        "sha256=" + DIGEST.hex(),  # hex
        PIN[:10] + "+" + PIN[11:],  # standard base64's alphabet
        PIN[:10] + "/" + PIN[11:],
        PIN[:-1] + "B",  # not canonical: the last character's unused bits are set (A is 0, B is 1)
        "sha1=" + PIN[7:],
        "",
        "top",
    ],
)
def test_a_pin_in_any_other_spelling_is_refused_with_what_a_pin_looks_like(fragment: str) -> None:
    with pytest.raises(UsageError, match=r"a certificate pin looks like #sha256= followed by 43 base64url"):
        check_relay_url(f"wss://relay.example.org#{fragment}")


def test_a_pin_on_ws_is_refused() -> None:
    with pytest.raises(UsageError, match="a certificate pin needs a wss:// url"):
        check_relay_url(f"ws://127.0.0.1:7000#{PIN}")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://relay.example.org", "starts with ws:// or wss://"),
        ("WSS://relay.example.org", "starts with ws:// or wss://"),
        ("wss://", "host of the relay url is not valid"),
        ("wss://relay..example.org", "host of the relay url is not valid"),
        ("wss://-relay.example.org", "host of the relay url is not valid"),
        ("wss://[::1", "host of the relay url is not valid"),
        ("wss://[127.0.0.1]", "host of the relay url is not valid"),
        ("wss://relay.example.org:0", "port of the relay url must be 1 to 65535"),
        ("wss://relay.example.org:65536", "port of the relay url must be 1 to 65535"),
        ("wss://relay.example.org:", "port of the relay url must be 1 to 65535"),
        ("wss://relay.example.org:+80", "port of the relay url must be 1 to 65535"),
        ("wss://user:secret@relay.example.org", "no user name or password"),
        ("wss://relay.example.org/?token=1", "has no query"),
        ("wss://relay.example.org/a b", "printable ASCII without spaces"),
        ("wss://relais.exemple-été.fr", "xn-- form"),
        ("wss://relay.example.org/a\\b", "path of the relay url is not valid"),
    ],
)
def test_a_url_a_burner_cannot_use_is_refused_saying_why(url: str, reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        check_relay_url(url)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "::1"])
def test_ws_to_this_machine_needs_no_insecure(host: str) -> None:
    assert is_loopback(host)
    check_relay_url(f"ws://{f'[{host}]' if ':' in host else host}:7000")


@pytest.mark.parametrize(
    "host", ["relay.example.org", "10.0.0.7", "[fe80::1]", "localhost.example.org", "128.0.0.1"]
)
def test_ws_to_another_machine_is_refused_without_insecure(host: str) -> None:
    url = f"ws://{host}:7000"
    shown = host.strip("[]")
    with pytest.raises(UsageError) as excinfo:
        check_relay_url(url)
    assert (
        str(excinfo.value) == f"ws:// sends to {shown} unencrypted: use wss://, or --insecure if you mean it"
    )
    assert check_relay_url(url, insecure=True).host == shown


def test_a_pinned_url_with_a_realistic_host_fits_a_queue_address_and_an_oversize_one_is_refused() -> None:
    assert MAX_URL_SIZE == ADDRESS_URL_SIZE
    host = "relay-" + "x" * 52 + ".org"  # 62 characters: longer than most real names
    url = pinned_url(f"wss://{host}:65535/relay", DIGEST)
    assert len(url) == 6 + 62 + 6 + 6 + 51
    assert (
        QueueAddress.from_bytes(QueueAddress(check_relay_url(url).url, bytes(24)).to_bytes()).relay_url == url
    )
    long_path = "/" + "p" * (MAX_URL_SIZE - len(url) + 1)
    too_long = pinned_url(f"wss://{host}:65535/relay{long_path}", DIGEST)
    with pytest.raises(UsageError, match=r"at most 255 fit in a queue address"):
        check_relay_url(too_long)
