"""Relay TLS certificates: the fingerprint a relay URL pins, and a self-signed one to pin.

docs/protocol.md §14.13. A pinned relay URL names its certificate by the SHA-256 of the
leaf certificate's DER bytes; :func:`fingerprint` computes it, :func:`leaf_der` finds the
leaf in a PEM chain (what ``burner relay serve --tls-cert`` loads), and :func:`self_signed`
makes a certificate for a test or a small server, where a pin replaces a CA.
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import Final

from burnerkit.crypto.kdf import sha256

__all__ = ["DEFAULT_CERT_DAYS", "fingerprint", "leaf_der", "self_signed"]

#: A self-signed relay certificate lasts two years unless asked otherwise: a pin names one
#: certificate, so renewing it means handing out a new URL, which should not come often.
DEFAULT_CERT_DAYS: Final = 730


def fingerprint(der: bytes) -> bytes:
    """SHA-256 of a certificate's DER encoding: the 32 bytes a relay URL pins."""
    return sha256(der)


def leaf_der(pem: bytes) -> bytes:
    """The DER bytes of the first certificate of a PEM chain (the server's own, by convention).

    Raises:
        ValueError: if ``pem`` holds no certificate.
    """
    # cryptography.x509 is imported where it is used: every burner command loads this
    # module (through the relay transport) and only the relay server and `relay cert` use it.
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    certs = x509.load_pem_x509_certificates(pem)
    return certs[0].public_bytes(serialization.Encoding.DER)


def self_signed(
    host: str, *, days: int = DEFAULT_CERT_DAYS, now: datetime.datetime | None = None
) -> tuple[bytes, bytes]:
    """A fresh P-256 key and a self-signed certificate for ``host``, both PEM.

    The certificate names ``host`` (as a DNS name or an IP address) so that it also works
    where a client checks names, but a pinned URL does not need it to.

    Args:
        host: the name or address clients use.
        days: validity, from one minute ago (clocks differ a little).
        now: the current time (tests); the system clock when None.

    Returns:
        ``(certificate_pem, private_key_pem)``; the key is unencrypted PKCS#8.

    Raises:
        ValueError: if ``host`` is empty or ``days`` is not positive.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    if not host:
        raise ValueError("host must not be empty")
    if days < 1:
        raise ValueError("days must be positive")
    key = ec.generate_private_key(ec.SECP256R1())
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(minutes=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        alt = x509.DNSName(host)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
