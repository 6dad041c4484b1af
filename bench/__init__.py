"""Measurement harness for ``make bench``: ``python -m bench.run``.

Modules:
    bench.run: the runner (table, ``bench/results.json``, ``docs/performance.md``).
    bench.peer_doubleratchet: the independent PyPI ``doubleratchet`` package, measured as a peer.
    bench.crypto_limit: raw-primitive ceilings of burnerkit's own message and handshake formats.
    bench.ours: optional, written by the protocol lead; ``measure(seconds) -> dict[str, float]``.
    bench.relay: the relay's throughput, latency and memory against a bare websockets echo and
        bare SQLite; ``measure(quick) -> dict[str, float]``. Its servers run in processes of their own.
    bench._ws_echo_server: the bare echo server that bench.relay runs as a process.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# ``python -m bench.run`` from the repo root must work whether or not burnerkit is installed
# into the venv (``pip install -e .``): fall back to the source tree.
if importlib.util.find_spec("burnerkit") is None:  # pragma: no cover - depends on the venv
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
