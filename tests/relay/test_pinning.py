"""A relay with a self-signed certificate, reached by its pinned URL; and every way a connect fails.

docs/protocol.md §14.13. One real relay process serves TLS with a self-signed certificate;
in-process TLS servers play the impostor, the expired and the misnamed relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.certs import fingerprint, leaf_der, self_signed
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.errors import RelayUnavailableError, UsageError
from burnerkit.relay.client import RelayClient, check_relay
from burnerkit.relay.transport import PIN_MISMATCH
from burnerkit.relay.url import pinned_url

PASS = "correct horse battery"


class TlsRelay(NamedTuple):
    url: str  #: as printed: wss://localhost:PORT#sha256=...
    port: int
    cert_pem: bytes


@pytest.fixture(scope="module")
def tls_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRelay]:
    """`burner relay serve` with a self-signed certificate; its URL is the one it prints."""
    workdir = tmp_path_factory.mktemp("tls-relay")
    cert_pem, key_pem = self_signed("localhost")
    (workdir / "cert.pem").write_bytes(cert_pem)
    (workdir / "key.pem").write_bytes(key_pem)
    relay = subprocess.Popen(
        [
            *(sys.executable, "-m", "burnerkit", "relay", "serve", "--host", "127.0.0.1"),
            *("--public-host", "localhost", "--port", "0", "--store", ":memory:"),
            *("--tls-cert", str(workdir / "cert.pem"), "--tls-key", str(workdir / "key.pem")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert relay.stdout is not None
        url = relay.stdout.readline().split()[-1]
        port = int(url.partition("#")[0].rsplit(":", 1)[1])
        yield TlsRelay(url, port, cert_pem)
    finally:
        relay.terminate()
        assert relay.wait(timeout=20) == 0
        if relay.stdout is not None:
            relay.stdout.close()


class Impostor:
    """A TLS server on loopback with a certificate of its own (a MITM with a valid-looking cert).

    It takes one connection in a thread, completes its side of the handshake if it can, and
    keeps every byte of application data the client sends: :meth:`received` waits for it.
    """

    def __init__(self, workdir: Path) -> None:
        cert_pem, key_pem = self_signed("localhost")
        (workdir / "impostor.pem").write_bytes(cert_pem)
        (workdir / "impostor.key").write_bytes(key_pem)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(workdir / "impostor.pem", workdir / "impostor.key")
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._data = b""
        self._thread = threading.Thread(target=self._serve_one, daemon=True)
        self._thread.start()

    def _serve_one(self) -> None:
        conn, _ = self._listener.accept()
        conn.settimeout(10)
        # A reset or a failed handshake: nothing came.
        with conn, contextlib.suppress(OSError), self._context.wrap_socket(conn, server_side=True) as tls:
            while chunk := tls.recv(4096):
                self._data += chunk

    def received(self) -> bytes:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()
        return self._data

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def impostor(tmp_path: Path) -> Iterator[Impostor]:
    server = Impostor(tmp_path)
    yield server
    server.close()


@contextlib.asynccontextmanager
async def _tls_server(cert_pem: bytes, key_pem: bytes, workdir: Path) -> AsyncIterator[int]:
    """A TLS server on loopback with this certificate that says nothing; yields its port."""
    (workdir / "server.pem").write_bytes(cert_pem)
    (workdir / "server.key").write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(workdir / "server.pem", workdir / "server.key")

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def test_two_burners_pair_and_chat_over_a_self_signed_relay_by_its_pinned_url(
    tmp_path: Path, tls_relay: TlsRelay
) -> None:
    assert tls_relay.url.startswith("wss://localhost:")
    asyncio.run(Messenger.check_relay(tls_relay.url))
    alice, bob = (
        Messenger.create(Home(tmp_path / name), name, PASS, relay_url=tls_relay.url, kdf=FAST_TEST_KDF)
        for name in ("alice", "bob")
    )
    with alice, bob:
        link = asyncio.run(alice.invite("bob")).link
        # The pinned URL is what travels: bob's acceptance goes to alice's relay by its pin.
        assert asyncio.run(bob.accept(link, "alice")).relay_url == tls_relay.url
        assert asyncio.run(alice.receive()).new_contacts == ["bob"]
        asyncio.run(alice.send("bob", "pinned, not trusted by a CA"))
        assert [m.text for m in asyncio.run(bob.receive()).messages] == ["pinned, not trusted by a CA"]


@pytest.mark.asyncio
async def test_relay_with_another_certificate_than_the_pin_is_refused(
    tls_relay: TlsRelay, impostor: Impostor
) -> None:
    # The impostor answers at the relay's name with its own certificate: a pin of the real one.
    url = pinned_url(f"wss://localhost:{impostor.port}", fingerprint(leaf_der(tls_relay.cert_pem)))
    async with asyncio.timeout(30):
        with pytest.raises(RelayUnavailableError) as excinfo:
            await check_relay(url, timeout=60)
    assert excinfo.value.cause == PIN_MISMATCH
    assert str(excinfo.value) == (
        f"relay unreachable: wss://localhost:{impostor.port} "
        "(TLS: certificate does not match the pinned fingerprint)"
    )
    # Refused before a byte went out: the impostor saw a TLS handshake and nothing else,
    # not even the WebSocket upgrade request (which names the path and the host).
    assert impostor.received() == b""


@pytest.mark.asyncio
async def test_a_pin_does_not_stretch_to_another_relay_behind_the_same_pin_text(tls_relay: TlsRelay) -> None:
    # The real relay, but pinned to another certificate (a pin from a stale or forged link).
    other_cert, _ = self_signed("localhost")
    url = pinned_url(f"wss://localhost:{tls_relay.port}", fingerprint(leaf_der(other_cert)))
    with pytest.raises(RelayUnavailableError) as excinfo:
        await check_relay(url, timeout=60)
    assert excinfo.value.cause == PIN_MISMATCH


async def _cause(url: str, *, context: ssl.SSLContext | None = None, connect_timeout: float = 1.0) -> str:
    """The cause a check of ``url`` fails with; the connect limit is 1 s (or as given), the call's 60 s.

    The guard of 30 s proves the failure came from the connect limit (or at once), not
    from the call's limit, without timing anything.
    """
    async with asyncio.timeout(30):
        with pytest.raises(RelayUnavailableError) as excinfo:
            await check_relay(url, ssl=context, timeout=60, connect_timeout=connect_timeout)
    assert excinfo.value.url == url
    assert str(excinfo.value) == f"relay unreachable: {url} ({excinfo.value.cause})"
    assert excinfo.value.cause is not None
    return excinfo.value.cause


@pytest.mark.asyncio
async def test_unreachable_names_the_url_and_the_cause_refused_dns_timeout() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    assert await _cause(f"ws://127.0.0.1:{closed_port}") == "connection refused"
    assert await _cause("wss://relay.invalid:7443") == "DNS lookup failed"
    # A listening socket that never answers (the kernel completes TCP; nobody speaks).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}"
        assert await _cause(url, connect_timeout=0.3) == "timed out"


@pytest.mark.asyncio
async def test_unreachable_names_the_tls_verification_reason(tls_relay: TlsRelay, tmp_path: Path) -> None:
    unpinned = tls_relay.url.partition("#")[0]
    assert await _cause(unpinned) == "TLS: self-signed certificate; pin it with #sha256= in the url"
    # Trusted as a CA, but reached by an address the certificate does not name.
    trusting = ssl.create_default_context(cadata=tls_relay.cert_pem.decode())
    by_address = f"wss://127.0.0.1:{tls_relay.port}"
    assert await _cause(by_address, context=trusting) == "TLS: certificate name mismatch"
    # Trusted, named, but expired.
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    cert_pem, key_pem = self_signed("localhost", days=1, now=past)
    async with _tls_server(cert_pem, key_pem, tmp_path) as port:
        trusting_expired = ssl.create_default_context(cadata=cert_pem.decode())
        url = f"wss://localhost:{port}"
        assert await _cause(url, context=trusting_expired) == "TLS: certificate expired"


def test_ws_to_another_machine_needs_insecure(tmp_path: Path) -> None:
    home = Home(tmp_path)
    with pytest.raises(
        UsageError, match=r"^ws:// sends to relay\.example\.org unencrypted: use wss://, or --insecure"
    ):
        Messenger.create(home, "alice", PASS, relay_url="ws://relay.example.org:7000", kdf=FAST_TEST_KDF)
    assert home.slots() == []  # nothing was made
    with pytest.raises(UsageError, match="unencrypted"):
        asyncio.run(Messenger.check_relay("ws://10.0.0.7:7000"))
    with Messenger.create(
        home, "alice", PASS, relay_url="ws://relay.example.org:7000", kdf=FAST_TEST_KDF, insecure=True
    ) as alice:
        assert alice.relay_url == "ws://relay.example.org:7000"


@pytest.mark.asyncio
async def test_a_client_refuses_tls_settings_next_to_a_pin(tls_relay: TlsRelay) -> None:
    with pytest.raises(ValueError, match="pinned"):
        RelayClient(tls_relay.url, ssl=ssl.create_default_context())
