"""Coverage-guided fuzzing of every decoder that sees peer bytes (atheris).

Invariant (h11's fuzz/): each input either parses, or raises one of burnerkit's own
errors; never any other exception. Run where atheris installs::

    .venv/bin/pip install atheris
    .venv/bin/python fuzz/fuzz_decoders.py -atheris_runs=200000

The hypothesis suite (tests/property) checks the same invariant on every `make test`.
"""

from __future__ import annotations

import contextlib
import sys
import time

import atheris

with atheris.instrument_imports():
    from burnerkit.crypto.rng import DeterministicRandom
    from burnerkit.errors import BurnerError
    from burnerkit.protocol.envelope import ENVELOPE_SIZE, Body
    from burnerkit.protocol.handshake import Invitation, accept_invitation, create_invitation
    from burnerkit.protocol.session import Session

_NOW = 1_800_000_000.0
_RNG = DeterministicRandom(b"fuzz")
_PENDING, _INVITATION = create_invitation(rng=_RNG, now=_NOW, lifetime=3600, reply_address=b"q")
_ACCEPTOR, _FIRST = accept_invitation(_INVITATION, content=b"hi", rng=_RNG, now=_NOW)
_INVITER, _ = _PENDING.complete(_FIRST, now=_NOW)
_GENUINE = _INVITER.send(b"genuine", now=_NOW)
_STATE = _ACCEPTOR.to_bytes()


def one_input(data: bytes) -> None:
    """Feed ``data`` to each decoder; anything but a BurnerError is a finding."""
    fdp = atheris.FuzzedDataProvider(data)
    choice = fdp.ConsumeIntInRange(0, 3)
    rest = fdp.ConsumeBytes(sys.maxsize)
    try:
        if choice == 0:
            Invitation.from_bytes(rest)
        elif choice == 1:
            Body.decode(rest)
        elif choice == 2:
            # A genuine envelope with the fuzzer's bytes spliced in keeps the size right.
            envelope = (rest + _GENUINE[len(rest) :])[:ENVELOPE_SIZE]
            session = Session.from_bytes(_STATE, rng=_RNG)
            session.receive(envelope, now=time.time())
        else:
            with contextlib.suppress(ValueError):
                Session.from_bytes(rest, rng=_RNG)
    except BurnerError:
        pass


def main() -> None:
    """Run atheris over :func:`one_input`."""
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
