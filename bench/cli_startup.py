"""``burner --version`` next to ``python -c "import typer, rich"``: the CLI's start-up (issue 13).

Both are whole processes timed from outside (interpreter start-up included), run in turn,
A B A B ..., and the ratio is the median of each pair's ratio, so that a drift of the
machine's speed during the run moves both sides of a pair alike. ``make bench`` measures
it with the rest; ``python -m bench.cli_startup`` measures only this and writes it into
``bench/results.json`` and ``docs/performance.md`` next to the figures already there.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
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

    stored = json.loads(run.RESULTS_PATH.read_text())
    settings = run.Settings.for_mode(bool(stored["quick"]))  # the mode of the stored figures
    figures = {
        name: float(value)
        for name, value in stored.items()
        if name not in {"quick", *run.environment()} and isinstance(value, int | float)
    }
    figures.update(measure(run.Settings.from_env().quick))
    for name in FIGURES:
        print(f"{name}: {run.round_figure(figures[name])}")
    # The other figures keep the machine, versions and date they were measured with.
    env = {key: str(stored[key]) for key in run.environment() if key in stored}
    old = re.search(r"- \*\*Date:\*\* ([^;\n]+)", run.REPORT_PATH.read_text())
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    date = f"{old.group(1) if old else 'unknown'}; the CLI start-up figures: {now} ({platform.platform()})"
    run.RESULTS_PATH.write_text(json.dumps(run.results_json(figures, settings, env), indent=2) + "\n")
    ours_loaded = all(key in figures for key in run.OURS_REQUIRED)
    run.REPORT_PATH.write_text(run.markdown_report(figures, settings, ours_loaded, env=env, date=date))
    return 0


if __name__ == "__main__":
    sys.exit(main())
