"""burnerkit: a burner phone in software.

Its public face is small on purpose: the version here, the
:class:`~burnerkit.app.messenger.Messenger` and the errors of :mod:`burnerkit.errors`.
docs/architecture.md maps the rest; docs/protocol.md is the specification.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
