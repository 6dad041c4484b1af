"""Relay URLs and certificate pins: the one place that decides whether a URL will do.

docs/protocol.md §14.13. A relay URL is ``ws://`` or ``wss://``, a host, an optional port
and an optional path, and, on ``wss://`` only, an optional pin of the relay's certificate
in the fragment::

    wss://relay.example.org:7443#sha256=<43 base64url characters>

The pin goes in the fragment because a fragment is never sent to the server (RFC 3986
§3.5; the WebSocket handshake carries only the path), so the same text is what a burner
stores, what travels in queue addresses and links (a peer who sends to us pins our relay
too), and what the transport connects to once the fragment is taken off.

Pure: no I/O. :func:`check_relay_url` is the only check of a relay URL in burnerkit;
the app calls it where a URL comes from a person or a link, the client and the transport
where they are handed one.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from burnerkit.errors import UsageError

__all__ = [
    "MAX_URL_SIZE",
    "PIN_PREFIX",
    "PIN_SIZE",
    "RelayUrl",
    "check_relay_url",
    "format_pin",
    "is_loopback",
    "pinned_url",
]

#: Longest relay URL in UTF-8 bytes: what a queue address can carry (§17.1).
MAX_URL_SIZE: Final = 255
#: The fragment of a pinned URL starts so; the one spelling we accept.
PIN_PREFIX: Final = "sha256="
#: Bytes of a pin: one SHA-256 digest.
PIN_SIZE: Final = 32
_PIN_HELP: Final = (
    "a certificate pin looks like #sha256= followed by 43 base64url characters "
    "(the SHA-256 of the relay's certificate, as `burner relay serve` prints it)"
)
_PIN: Final = re.compile(r"sha256=([A-Za-z0-9_-]{43})")
#: A DNS label; "_" too, as in container names (relay_1), which resolve though not valid host names.
_LABEL: Final = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_PORT: Final = re.compile(r"[0-9]{1,5}")
#: RFC 3986 path characters (pchar and "/"), percent escapes included.
_PATH: Final = re.compile(r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)*")


@dataclass(frozen=True, slots=True)
class RelayUrl:
    """A relay URL that passed :func:`check_relay_url`, taken apart."""

    #: The URL exactly as given and stored, pin included.
    url: str
    #: ``wss://``.
    secure: bool
    #: Host name or address, IPv6 without its brackets.
    host: str
    #: The port, explicit or the scheme's default (80, 443).
    port: int
    #: The SHA-256 of the relay's leaf certificate, or None when not pinned.
    pin: bytes | None

    @property
    def address(self) -> str:
        """The URL without its fragment: what is connected to, and what messages name."""
        return self.url.partition("#")[0]


def format_pin(digest: bytes) -> str:
    """The fragment that pins a certificate of SHA-256 ``digest``: ``sha256=<base64url>``.

    Raises:
        ValueError: unless ``digest`` is 32 bytes.
    """
    if len(digest) != PIN_SIZE:
        raise ValueError(f"a pin is a {PIN_SIZE}-byte SHA-256 digest")
    return PIN_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pinned_url(url: str, digest: bytes) -> str:
    """``url`` (a ``wss://`` URL without fragment) pinned to the certificate of SHA-256 ``digest``."""
    return f"{url}#{format_pin(digest)}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine: ``localhost``, 127.0.0.0/8 or ``::1``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_relay_url(url: str, *, insecure: bool = False) -> RelayUrl:
    """Check a relay URL and take it apart.

    Args:
        url: ``ws://`` or ``wss://``, a host, an optional port and path, and on
            ``wss://`` an optional ``#sha256=`` pin (docs/protocol.md §14.13).
        insecure: allow ``ws://`` to a host other than this machine. Without it such a
            URL is refused: the relay would see every frame, ids and timing in the clear,
            and so would everyone on the way.

    Returns:
        The parts of the URL; ``url`` itself is kept unchanged.

    Raises:
        UsageError: the URL is not one a burner can use, saying why.
    """
    if not isinstance(url, str):
        raise TypeError("a relay url is a str")
    if url.startswith("wss://"):
        secure, rest = True, url[6:]
    elif url.startswith("ws://"):
        secure, rest = False, url[5:]
    else:
        raise UsageError(f"a relay url starts with ws:// or wss://: {url!r}")
    if not url.isascii() or not url.isprintable() or any(c.isspace() for c in url):
        raise UsageError(
            f"a relay url is printable ASCII without spaces (use the xn-- form of a host name): {url!r}"
        )
    size = len(url.encode())
    if size > MAX_URL_SIZE:
        raise UsageError(
            f"the relay url is {size} bytes: at most {MAX_URL_SIZE} fit in a queue address "
            "(shorten the host name or the path)"
        )
    rest, hashmark, fragment = rest.partition("#")
    pin = _parse_pin(fragment) if hashmark else None
    if pin is not None and not secure:
        raise UsageError("a certificate pin needs a wss:// url: ws:// has no certificate")
    if "?" in rest:
        raise UsageError(f"a relay url has no query (?...): {url!r}")
    slash = rest.find("/")
    netloc, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in netloc:
        raise UsageError("a relay url carries no user name or password")
    if not _PATH.fullmatch(path):
        raise UsageError(f"the path of the relay url is not valid: {url!r}")
    host, port = _split_netloc(netloc, url, default=443 if secure else 80)
    if not secure and not insecure and not is_loopback(host):
        raise UsageError(f"ws:// sends to {host} unencrypted: use wss://, or --insecure if you mean it")
    return RelayUrl(url, secure, host, port, pin)


def _parse_pin(fragment: str) -> bytes:
    match = _PIN.fullmatch(fragment)
    if match is None:
        raise UsageError(_PIN_HELP)
    text = match.group(1)
    try:
        digest = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the pattern admits only the alphabet
        raise UsageError(_PIN_HELP) from exc
    # One pin, one spelling: the last character's unused low bits must be zero.
    if format_pin(digest) != fragment:
        raise UsageError(_PIN_HELP)
    return digest


def _split_netloc(netloc: str, url: str, *, default: int) -> tuple[str, int]:
    if netloc.startswith("["):
        end = netloc.find("]")
        host, after = netloc[1:end], netloc[end + 1 :]
        try:
            if end < 0 or ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise UsageError(f"the host of the relay url is not valid: {url!r}") from None
    else:
        host, colon, port_text = netloc.partition(":")
        after = colon + port_text
        if not _HOSTNAME.fullmatch(host) or len(host) > 253:
            raise UsageError(f"the host of the relay url is not valid: {url!r}")
    if not after:
        return host, default
    port_text = after[1:]
    if not after.startswith(":") or not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65_535:
        raise UsageError(f"the port of the relay url must be 1 to 65535: {url!r}")
    return host, int(port_text)
