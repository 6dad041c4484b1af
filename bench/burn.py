"""``burner burn`` end to end, as a user runs it (issue 16): ``burn_s``, target < 1 s.

A relay process (SQLite, as deployed; :func:`bench.relay._relay`), a burner minted with the
default Argon2id parameters and :data:`CONTACTS` contacts paired with it (set up in this
process, not timed), then ``burner burn NAME --yes --json`` in a process of its own, timed
from outside: the interpreter's start-up, the unlock (one Argon2id derivation), the journal,
the key, a notice to each contact, every queue's deletion and the files (docs/protocol.md
§17.7). ``python -m bench.burn`` measures only this and merges it into ``bench/results.json``
and ``docs/performance.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from burnerkit.app.connections import ConnectionPolicy
from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.passphrase import DEFAULT_KDF, FAST_TEST_KDF

from . import relay

__all__ = ["CONTACTS", "FIGURES", "FULL_ROUNDS", "METHOD", "QUICK_ROUNDS", "main", "measure"]

FIGURES: Final = ("burn_s",)
CONTACTS: Final = 3
QUICK_ROUNDS: Final = 1
FULL_ROUNDS: Final = 5
METHOD: Final = (
    "`burn_s` is `burner burn NAME --yes` timed from outside, as a user runs it: a process of its "
    "own (interpreter start-up included) against a relay process on this machine (SQLite), for a "
    "burner minted with the default Argon2id parameters and paired with {contacts} contacts, each "
    "of whom sent it a message and received one; the unlock (one derivation), the journal, the "
    "key, a burn notice to each contact, the deletion of every queue and the shredding of the "
    "files (docs/protocol.md §17.7). The median of {quick} round(s) in quick mode, {full} in full, "
    "each with a fresh burner. Run alone with `python -m bench.burn`."
)
_PASS: Final = "a passphrase for the burn bench"
_NAME: Final = "traveller"


def _burner() -> list[str]:
    """The ``burner`` console script next to this interpreter, else ``python -m burnerkit``."""
    script = Path(sys.executable).with_name("burner")
    return [str(script)] if script.exists() else [sys.executable, "-m", "burnerkit"]


async def _setup(root: Path, url: str) -> Home:
    """A home holding one burner paired with :data:`CONTACTS` contacts (their homes beside it)."""
    home = Home(root / "home")
    burner = Messenger.create(home, _NAME, _PASS, relay_url=url, kdf=DEFAULT_KDF)
    burner.connections.policy = ConnectionPolicy(jitter=0.0)  # setting up is not what is measured
    contacts = []
    for index in range(CONTACTS):
        contact = Messenger.create(
            Home(root / f"c{index}"), f"c{index}", _PASS, relay_url=url, kdf=FAST_TEST_KDF
        )
        contact.connections.policy = ConnectionPolicy(jitter=0.0)
        view = await burner.invite(f"c{index}", short=False)
        await contact.accept(view.long_link, _NAME)
        contacts.append(contact)
    if len((await burner.receive()).new_contacts) != CONTACTS:
        raise RuntimeError("the contacts did not all pair")
    for index, contact in enumerate(contacts):
        await contact.send(_NAME, "hello")
        await burner.send(f"c{index}", "hello back")
        contact.close()
    burner.close()
    return home


def _burn_seconds(home: Home) -> float:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BURNER_")}
    env.update(BURNER_HOME=str(home.root), BURNER_PASSPHRASE=_PASS)
    start = time.perf_counter()
    done = subprocess.run(
        [*_burner(), "burn", _NAME, "--yes", "--json"], env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"burner burn failed: {done.stderr.strip()}")
    report = json.loads(done.stdout)
    if (report["notices_sent"], report["queues_failed"]) != (CONTACTS, 0):
        raise RuntimeError(f"the burn did not finish its work: {report}")
    return elapsed


async def _measure(rounds: int) -> list[float]:
    samples = []
    async with relay._relay() as server:
        url = f"ws://127.0.0.1:{server.port}"
        for _ in range(rounds):
            with tempfile.TemporaryDirectory(prefix="burner-bench-burn-") as tmp:
                home = await _setup(Path(tmp), url)
                samples.append(_burn_seconds(home))
    return samples


def measure(quick: bool) -> dict[str, float]:
    """``burn_s``: the median of :data:`QUICK_ROUNDS` or :data:`FULL_ROUNDS` burns."""
    samples = asyncio.run(_measure(QUICK_ROUNDS if quick else FULL_ROUNDS))
    return {"burn_s": statistics.median(samples)}


def main() -> int:
    """Measure only this and merge it into the last full run's results and report."""
    from bench import run

    return run.update_stored(measure, FIGURES, "burn_s")


if __name__ == "__main__":
    sys.exit(main())
