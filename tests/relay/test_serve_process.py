"""What ``burner relay serve`` sets up for its own process, seen from inside a real one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from burnerkit.crypto.certs import fingerprint, leaf_der, self_signed
from burnerkit.errors import UsageError
from burnerkit.relay.server.cli import GC_THRESHOLDS, make_certificate
from burnerkit.relay.url import check_relay_url, format_pin, pinned_url

# serve() in a fresh interpreter; once it says it listens, report the collector's
# settings and ask it to stop as SIGTERM would.
_SCRIPT = """
import gc, io, os, signal, sys
from burnerkit.relay.server.cli import serve
from burnerkit.relay.server.config import RelayConfig

class Out(io.StringIO):
    def write(self, text):
        if "listening" in text:
            print(*gc.get_threshold(), gc.get_freeze_count(), gc.isenabled(), flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
        return len(text)

sys.exit(serve(RelayConfig(port=0, store=":memory:"), out=Out()))
"""


def test_serve_freezes_start_up_objects_and_raises_gc_thresholds() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    *thresholds, frozen, enabled = done.stdout.split()
    assert tuple(int(value) for value in thresholds) == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700  # fewer young collections than Python's default
    # The imported modules' objects are frozen, and the collector still runs (cycles are freed).
    assert int(frozen) > 10_000
    assert enabled == "True"


# serve() with TLS in a fresh interpreter: print the listening line, then stop.
_TLS_SCRIPT = """
import io, os, signal, sys
from burnerkit.relay.server.cli import serve
from burnerkit.relay.server.config import RelayConfig

class Out(io.StringIO):
    def write(self, text):
        if "listening" in text:
            print(text.strip(), flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
        return len(text)

public_host, cert, key = sys.argv[1:]
config = RelayConfig(
    host="127.0.0.1", public_host=public_host, port=0, store=":memory:", tls_cert=cert, tls_key=key
)
sys.exit(serve(config, out=Out()))
"""


def test_serve_with_tls_prints_the_pinned_url_under_the_public_name(tmp_path: Path) -> None:
    cert_pem, key_pem = self_signed("relay.example.org")
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _TLS_SCRIPT,
            "relay.example.org",
            str(tmp_path / "cert.pem"),
            str(tmp_path / "key.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(
        r"relay listening on (wss://relay\.example\.org:\d+)#(sha256=[A-Za-z0-9_-]{43})\n", done.stdout
    )
    assert match is not None, done.stdout
    # The pin is the SHA-256 of the certificate served, in the one spelling URLs accept.
    assert match.group(2) == format_pin(fingerprint(leaf_der(cert_pem)))
    assert check_relay_url(f"{match.group(1)}#{match.group(2)}").pin == fingerprint(leaf_der(cert_pem))


def test_relay_cert_writes_a_self_signed_pair_and_returns_its_pinned_url(tmp_path: Path) -> None:
    cert, key = tmp_path / "relay-cert.pem", tmp_path / "relay-key.pem"
    url = make_certificate("relay.example.org", 7443, str(cert), str(key), days=30)
    assert url == pinned_url("wss://relay.example.org:7443", fingerprint(leaf_der(cert.read_bytes())))
    assert key.stat().st_mode & 0o777 == 0o600  # the private key is the owner's alone
    # A certificate in use is never overwritten: its pin is in every contact's address book.
    before = cert.read_bytes()
    with pytest.raises(UsageError, match="exists already"):
        make_certificate("relay.example.org", 7443, str(cert), str(tmp_path / "other-key.pem"), days=30)
    assert cert.read_bytes() == before
    assert not (tmp_path / "other-key.pem").exists()
