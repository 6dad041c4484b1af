"""Finding a burner by name with no name on disk (issue 15 item 2): what an unlock by name costs.

A burner's directory is a random id and its name is sealed in its vault (docs/protocol.md
§15.1), so ``--burner NAME`` tries the passphrase on the home's vaults in a random order, one
default Argon2id derivation each, until one opens and holds NAME. ``home_unlock_1_burner_ms`` is
``Messenger.open`` by name in a home of one burner (one derivation, as before); the
``home_unlock_5_burners_ms`` figure is its mean over opening each burner of a home of
:data:`BURNERS` by name, each under its own passphrase (on average three derivations); and
``home_unlock_5_vs_1_burner`` their ratio. ``python -m bench.home_unlock`` measures only these.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.passphrase import DEFAULT_KDF

__all__ = ["BURNERS", "FIGURES", "FULL_ROUNDS", "METHOD", "QUICK_ROUNDS", "measure"]

FIGURES = ("home_unlock_1_burner_ms", "home_unlock_5_burners_ms", "home_unlock_5_vs_1_burner")
BURNERS = 5
QUICK_ROUNDS = 1
FULL_ROUNDS = 3
METHOD = (
    "`home_unlock_1_burner_ms` is `Messenger.open` by name (`--burner NAME`) with the default "
    "Argon2id parameters in a home of one burner: one derivation, as before names left the disk. "
    "`home_unlock_5_burners_ms` is the mean over opening each burner of a home of {burners} by "
    "name, each under its own passphrase: the passphrase is tried on the directories in a random "
    "order, one derivation per directory tried, (n + 1) / 2 on average and n for a wrong "
    "passphrase (docs/protocol.md §15.1); {quick} round(s) in quick mode, {full} in full. "
    "`home_unlock_5_vs_1_burner` is their ratio. Run alone with `python -m bench.home_unlock`."
)
_RELAY = "ws://127.0.0.1:7000"


def _home(root: Path, count: int) -> Home:
    home = Home(root)
    for n in range(count):
        Messenger.create(
            home, f"burner{n}", f"passphrase {n}", relay_url=_RELAY, kdf=DEFAULT_KDF, name_checked=True
        ).close()
    return home


def _open_ms(home: Home, n: int) -> float:
    start = time.perf_counter()
    Messenger.open(home, f"burner{n}", f"passphrase {n}").close()
    return (time.perf_counter() - start) * 1000


def measure(quick: bool) -> dict[str, float]:
    """The three figures, from :data:`QUICK_ROUNDS` or :data:`FULL_ROUNDS` rounds."""
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    with tempfile.TemporaryDirectory(prefix="bench-home-") as tmp:
        one, five = _home(Path(tmp) / "one", 1), _home(Path(tmp) / "five", BURNERS)
        _open_ms(one, 0)  # warms the page cache and the imports
        singles = [_open_ms(one, 0) for _ in range(rounds)]
        fives = [statistics.mean(_open_ms(five, n) for n in range(BURNERS)) for _ in range(rounds)]
    single, several = statistics.median(singles), statistics.median(fives)
    return {
        "home_unlock_1_burner_ms": single,
        "home_unlock_5_burners_ms": several,
        "home_unlock_5_vs_1_burner": several / single,
    }


def main() -> int:
    """Measure only these and print them."""
    for name, value in measure(bool(os.environ.get("BENCH_QUICK"))).items():
        print(f"{name}: {value:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
