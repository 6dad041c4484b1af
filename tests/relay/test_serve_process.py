"""What ``burner relay serve`` sets up for its own process, seen from inside a real one."""

from __future__ import annotations

import subprocess
import sys

from burnerkit.relay.server.cli import GC_THRESHOLDS

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
