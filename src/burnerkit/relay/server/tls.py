"""The relay's TLS: a TLS 1.3 server context from PEM files, and readable reasons for failures.

docs/protocol.md §14.8 (Transport). No session tickets: a resumed session would let the
relay link a reconnection to the connection before it, and our clients open fresh
connections anyway.
"""

from __future__ import annotations

import os
import ssl

from burnerkit.errors import RelayStartError

from .config import RelayConfig

__all__ = ["reason", "tls_context"]


def tls_context(config: RelayConfig) -> ssl.SSLContext | None:
    """A TLS 1.3 server context from the configured PEM files, or None for plain ``ws://``.

    Raises:
        RelayStartError: if the files do not load.
    """
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.num_tickets = 0
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ValueError) as exc:
        raise RelayStartError(f"cannot load the TLS certificate or key: {reason(exc)}") from exc
    return context


def reason(exc: BaseException) -> str:
    """What went wrong, in a few lower-case words (no paths, no key material)."""
    if isinstance(exc, ssl.SSLError):
        text = exc.reason.lower().replace("_", " ") if exc.reason else ""
        return text or "not a PEM certificate chain and matching key"
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__
