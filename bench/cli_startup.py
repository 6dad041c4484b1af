"""``burner --version`` next to ``python -c "import typer, rich"``: the CLI's start-up (issue 13).

Both are whole processes timed from outside (interpreter start-up included), run in turn,
A B A B ..., and the ratio is the median of each pair's ratio, so that a drift of the
machine's speed during the run moves both sides of a pair alike. ``make bench`` measures
it with the rest; ``python -m bench.cli_startup`` measures only this and writes it into
``bench/results.json`` and ``docs/performance.md`` next to the figures already there.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["FIGURES", "METHOD", "main", "measure"]

FIGURES = ("cli_startup_ms", "typer_rich_import_ms", "cli_startup_vs_typer")

METHOD = (
    "`cli_startup_vs_typer` times whole processes from outside, interpreter start-up included: "
    "`burner --version` (the installed console script) and, as the yardstick, "
    '`python -c "import typer, rich"`, run in turn after one unmeasured run of each; the figure '
    "is the median of each pair's ratio (quick mode: {quick} pairs, full: {full}), and the two "
    "`_ms` figures are the medians of each side. Run alone with `python -m bench.cli_startup`."
)
QUICK_PAIRS = 5
FULL_PAIRS = 21


def _burner() -> list[str]:
    """The ``burner`` console script next to this interpreter, else ``python -m burnerkit``."""
    script = Path(sys.executable).with_name("burner")
    return [str(script)] if script.exists() else [sys.executable, "-m", "burnerkit"]


def _wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def measure(quick: bool) -> dict[str, float]:
    """The three figures, from :data:`QUICK_PAIRS` or :data:`FULL_PAIRS` pairs of runs."""
    burner = [*_burner(), "--version"]
    typer = [sys.executable, "-c", "import typer, rich"]
    _wall(burner)  # the page cache, .pyc files
    _wall(typer)
    pairs = [(_wall(burner), _wall(typer)) for _ in range(QUICK_PAIRS if quick else FULL_PAIRS)]
    return {
        "cli_startup_ms": statistics.median(a for a, _ in pairs) * 1000,
        "typer_rich_import_ms": statistics.median(b for _, b in pairs) * 1000,
        "cli_startup_vs_typer": statistics.median(a / b for a, b in pairs),
    }


def main() -> int:
    """Measure only this and merge it into the last full run's results and report."""
    from bench import run

    return run.update_stored(measure, FIGURES, "the CLI start-up figures")


if __name__ == "__main__":
    sys.exit(main())
