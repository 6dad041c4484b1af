"""`burner relay serve --tls-cert/--tls-key` serves wss:// and the client talks to it."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from burnerkit.relay.client import ReceivedMessage, RelayClient
from burnerkit.relay.server.config import RelayConfig
from burnerkit.relay.server.server import RelayServer
from burnerkit.relay.server.store.memory import MemoryStore


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.mark.asyncio
async def test_relay_serves_wss_and_the_client_exchanges_a_message(tmp_path):
    cert, key = make_cert(tmp_path)
    store = str(tmp_path / "r.sqlite")
    args = ["relay", "serve", "--host", "localhost", "--port", "0", "--store", store]
    relay = subprocess.Popen(
        [sys.executable, "-m", "burnerkit", *args, "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert relay.stdout is not None
        # Without its pin: this test is about CA verification (here, a CA file of our own).
        url = relay.stdout.readline().split()[-1].partition("#")[0]
        assert url.startswith("wss://localhost:")
        context = ssl.create_default_context(cafile=str(cert))
        async with RelayClient(url, ssl=context) as client:
            creds = await client.create_queue()
            await client.send(creds.sender_id, b"over tls")
            await client.subscribe(creds)
            event = await client.next_delivery(timeout=10)
            assert isinstance(event, ReceivedMessage)
            assert event.body == b"over tls"
            await client.ack(creds, event.msg_id)
    finally:
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(timeout=20) == 0
        if relay.stdout is not None:
            relay.stdout.close()


def test_relay_refuses_a_broken_tls_key_with_one_line(tmp_path):
    cert, _ = make_cert(tmp_path)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "burnerkit",
            "relay",
            "serve",
            "--port",
            "0",
            "--store",
            ":memory:",
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") >= 1


def test_burners_chat_over_wss_trusting_the_relay_certificate_from_ssl_cert_file(tmp_path):
    """`burner new --relay wss://...`: the CLI verifies the relay's certificate (here via SSL_CERT_FILE)."""
    cert, key = make_cert(tmp_path)
    store = str(tmp_path / "r.sqlite")
    args = ["relay", "serve", "--host", "localhost", "--port", "0", "--store", store]
    relay = subprocess.Popen(
        [sys.executable, "-m", "burnerkit", *args, "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )

    def burner(person: str, *argv: str, trust: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "BURNER_HOME": str(tmp_path / person),
            "BURNER_PASSPHRASE": f"passphrase of {person}",
            "BURNER_INSECURE_FAST_KDF": "1",
            # An untrusted relay fails at its handshake, every try: no need to retry for long.
            "BURNER_RELAY_TIMEOUT": "3" if trust else "1",
        }
        env.pop("SSL_CERT_DIR", None)
        env["SSL_CERT_FILE"] = str(cert) if trust else str(tmp_path / "no-such-ca.pem")
        return subprocess.run(
            [sys.executable, "-m", "burnerkit", *argv], env=env, capture_output=True, text=True, timeout=60
        )

    try:
        assert relay.stdout is not None
        # Without its pin: this test is about CA verification (here, via SSL_CERT_FILE).
        url = relay.stdout.readline().split()[-1].partition("#")[0]
        assert url.startswith("wss://localhost:")
        assert burner("alice", "new", "alice", "--relay", url).returncode == 0
        assert burner("bob", "new", "bob", "--relay", url).returncode == 0
        untrusted = burner("alice", "invite", "--json", trust=False)
        assert untrusted.returncode == 6  # a relay whose certificate does not verify is unreachable
        assert "Traceback" not in untrusted.stderr
        link = json.loads(burner("alice", "invite", "--for", "bob", "--json").stdout)["link"]
        assert burner("bob", "accept", link, "--name", "alice").returncode == 0
        assert burner("alice", "inbox").returncode == 0
        assert burner("alice", "send", "bob", "over wss").returncode == 0
        inbox = burner("bob", "inbox", "--json")
        assert [m["text"] for m in json.loads(inbox.stdout)] == ["over wss"]
    finally:
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(timeout=20) == 0
        if relay.stdout is not None:
            relay.stdout.close()


async def _tls_relay(tmp_path: Path) -> tuple[RelayServer, Path]:
    cert, key = make_cert(tmp_path)
    server = RelayServer(
        MemoryStore(), RelayConfig(host="localhost", port=0, tls_cert=str(cert), tls_key=str(key))
    )
    await server.start()
    return server, cert


@pytest.mark.asyncio
async def test_a_tls_1_2_client_and_a_garbage_handshake_are_refused_and_the_relay_serves_on(tmp_path):
    """The link terminates TLS itself (wrap_bio): TLS 1.3 only, bad bytes close only their own connection."""
    server, cert = await _tls_relay(tmp_path)
    try:
        reader, writer = await asyncio.open_connection("localhost", server.bound_port)
        writer.write(b"\x16\x03\x01\x00\x05garbage, not a ClientHello" * 4)
        await asyncio.wait_for(reader.read(), 10)  # an alert, if any, then the relay's close
        assert reader.at_eof()
        writer.close()

        old = ssl.create_default_context(cafile=str(cert))
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError):
            await asyncio.wait_for(asyncio.open_connection("localhost", server.bound_port, ssl=old), 10)

        context = ssl.create_default_context(cafile=str(cert))
        _, writer = await asyncio.open_connection("localhost", server.bound_port, ssl=context)
        tls = writer.get_extra_info("ssl_object")
        assert tls.version() == "TLSv1.3"
        assert not tls.session_reused
        writer.close()

        url = f"wss://localhost:{server.bound_port}/"
        async with RelayClient(url, ssl=context) as client:
            creds = await client.create_queue()
            await client.send(creds.sender_id, b"after the garbage")
            await client.subscribe(creds)
            event = await client.next_delivery(timeout=10)
            assert isinstance(event, ReceivedMessage)
            assert event.body == b"after the garbage"
    finally:
        await server.stop()
