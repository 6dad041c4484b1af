"""The benchmark runner behind ``make bench``: ``.venv/bin/python -m bench.run`` from the repo root.

Measures, in this one process: the raw-crypto ceilings (:mod:`bench.crypto_limit`),
the peer (:mod:`bench.peer_doubleratchet`) and burnerkit's own figures from the optional
module ``bench.ours``. Every figure is warmed up once, then timed in 5 rounds
(``BENCH_QUICK=1``: one, with shorter runs), each round timing every figure once, in
that order; a figure is its median over the rounds, a ratio the median of the rounds'
ratios. Then the relay (:mod:`bench.relay`: its servers run in processes of their own,
the clients here). Prints a table, writes ``bench/results.json`` (one flat JSON object)
and ``docs/performance.md``.

``bench/ours.py`` must expose::

    def measure(seconds: float) -> dict[str, float]: ...

returning at least ``handshakes_per_s``, ``ratchet_one_way_msgs_per_s`` and
``ratchet_pingpong_msgs_per_s``, each timed for about ``seconds``. If the module is
missing or raises ImportError, our figures (and the ratios) are skipped with a notice.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cryptography

from . import (
    burn,
    cli_startup,
    connections,
    crypto_limit,
    home_unlock,
    peer_doubleratchet,
    relay,
    relay_disk,
    vault_epochs,
)

__all__ = ["OURS_REQUIRED", "main"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS_PATH = ROOT / "bench" / "results.json"
REPORT_PATH = ROOT / "docs" / "performance.md"

#: The keys ``bench.ours.measure`` must return.
OURS_REQUIRED = ("handshakes_per_s", "ratchet_one_way_msgs_per_s", "ratchet_pingpong_msgs_per_s")

#: (ratio name, numerator, denominator)
RATIOS = (
    ("ratchet_one_way_vs_doubleratchet", "ratchet_one_way_msgs_per_s", "doubleratchet_one_way_msgs_per_s"),
    ("ratchet_pingpong_vs_doubleratchet", "ratchet_pingpong_msgs_per_s", "doubleratchet_pingpong_msgs_per_s"),
    ("ratchet_one_way_vs_crypto_limit", "ratchet_one_way_msgs_per_s", "crypto_limit_one_way_msgs_per_s"),
    (
        "ratchet_pingpong_vs_crypto_limit",
        "ratchet_pingpong_msgs_per_s",
        "crypto_limit_pq_pingpong_msgs_per_s",
    ),
    ("handshakes_vs_crypto_limit", "handshakes_per_s", "crypto_limit_handshakes_per_s"),
)


Ceiling = Callable[[Mapping[str, float]], "float | None"]


def ratio(num: str, den: str | None = None) -> Ceiling:
    """A ceiling read from the figures: ``num / den``, or ``num`` itself when ``den`` is None."""

    def ceiling(figures: Mapping[str, float]) -> float | None:
        top = figures.get(num)
        if top is None or den is None:
            return top
        bottom = figures.get(den)
        return top / bottom if bottom else None

    return ceiling


def no_ceiling(_figures: Mapping[str, float]) -> float | None:
    """For targets no design limit bounds."""
    return None


def relay_ceiling(figures: Mapping[str, float]) -> float | None:
    """The durable relay's ceiling as a fraction of the echo (issue 4's estimate).

    A message is four frames where an echo message is two, so at most half the echo. With
    write-behind a message acknowledged in time costs SQLite no insert or delete, so the
    bare group-commit rate no longer bounds it (it bounds ``relay_write_through_vs_ws_echo``).
    """
    return 0.5 if figures.get("ws_echo_msgs_per_s") else None


@dataclass(frozen=True)
class Target:
    """One performance target: ``figure >= required`` (``figure < required`` when ``below``).

    ``ceiling`` is the best any design could reach, computed from the figures.
    """

    label: str
    figure: str
    required: float
    unit: str
    ceiling: Ceiling
    below: bool = False

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the target."""
        return value < self.required if self.below else value >= self.required


TARGETS = (
    Target(
        "One-way messaging ≥ 5x doubleratchet",
        "ratchet_one_way_vs_doubleratchet",
        5.0,
        "x",
        ratio("crypto_limit_one_way_msgs_per_s", "doubleratchet_one_way_msgs_per_s"),
    ),
    Target(
        "PQ ping-pong ≥ 1.0x doubleratchet classical ping-pong",
        "ratchet_pingpong_vs_doubleratchet",
        1.0,
        "x",
        ratio("crypto_limit_pq_pingpong_msgs_per_s", "doubleratchet_pingpong_msgs_per_s"),
    ),
    Target(
        "Handshakes ≥ 500/s (both sides)",
        "handshakes_per_s",
        500.0,
        "/s",
        ratio("crypto_limit_handshakes_per_s"),
    ),
    Target(
        '`burner --version` < 2x `python -c "import typer, rich"`',
        "cli_startup_vs_typer",
        2.0,
        "x",
        no_ceiling,
        below=True,
    ),
    Target(
        "Vault unlock < 1.10x an unlock before key epochs (Argon2id alone)",
        "vault_unlock_vs_argon2",
        1.10,
        "x",
        no_ceiling,
        below=True,
    ),
    Target("`burner burn` end to end < 1 s", "burn_s", 1.0, " s", no_ceiling, below=True),
)


def relay_target_rows(
    figures: Mapping[str, float], settings: Settings
) -> list[tuple[str, str, str, str, str]]:
    """The relay's target rows; a quick run opens too few connections to test the 5,000."""
    untested = {}
    if settings.quick:
        untested["relay_connections_held"] = f"n/a (quick mode opens {relay.QUICK.idle_connections:,})"
    return target_rows(figures, RELAY_TARGETS, "n/a", untested)


#: The relay's targets (issue 4), shown in their own section.
RELAY_TARGETS = (
    Target(
        "Durable relay throughput ≥ 0.25x the bare websockets echo",
        "relay_vs_ws_echo",
        0.25,
        "x",
        relay_ceiling,
    ),
    Target(
        "p99 latency < 20 ms at 500 msgs/s offered",
        "relay_p99_ms_at_500",
        20.0,
        " ms",
        no_ceiling,
        below=True,
    ),
    Target(
        "Memory per idle subscribed connection < 64 KiB",
        "relay_idle_conn_kib",
        64.0,
        " KiB",
        no_ceiling,
        True,
    ),
    Target("5,000 concurrent subscribed connections held", "relay_connections_held", 5000.0, "", no_ceiling),
)

LIMITS_AND_PEERS: tuple[tuple[str, Callable[[float], float]], ...] = (
    ("crypto_limit_one_way_msgs_per_s", crypto_limit.symmetric_step_limit_msgs_per_s),
    ("crypto_limit_pq_pingpong_msgs_per_s", crypto_limit.pq_step_limit_msgs_per_s),
    ("crypto_limit_handshakes_per_s", crypto_limit.handshake_limit_per_s),
    ("doubleratchet_one_way_msgs_per_s", peer_doubleratchet.one_way_msgs_per_s),
    ("doubleratchet_pingpong_msgs_per_s", peer_doubleratchet.pingpong_msgs_per_s),
)


METHOD = """\
The figures of the first table (all but the relay's) are measured in one Python process, single-threaded,
with the garbage collector left on. Each figure is warmed up once, then timed in 5 rounds (quick mode:
one, for a shorter time), each round timing every crypto limit, every peer figure and ours once, in that
order; a figure is its median over the rounds, and a ratio the median of each round's ratio, so that the
two figures of a ratio are timed seconds apart (this machine's speed drifts by tens of percent over a
minute, and a ratio of figures timed a minute apart would measure the drift). A timed run calls the
operation in a loop, reads `time.perf_counter()` after each call and divides the calls made by the time
spent. The peer is the PyPI package `doubleratchet`, configured as its documentation recommends (X25519 DH
ratchet, HKDF-SHA-256 root chain, separate-HMAC-SHA-256 message chains, AES-256-CBC + HMAC-SHA-256 AEAD,
at most 1,000 skipped keys) and driven through one asyncio event loop per measurement, with its
initial-message setup outside the clock and 256-byte messages: a one-way message is one encrypt plus one
decrypt on the same chain; a ping-pong message is the same with the direction alternating, so every
receipt takes a DH ratchet step. The crypto limits (`bench/crypto_limit.py`) time only the primitive calls
our design needs, through `burnerkit.crypto`, for our fixed 15,872-byte envelope (2,312-byte header and
13,504-byte body, each sealed with AES-256-GCM): one symmetric chain step per one-way message, one full
hybrid X25519 + ML-KEM-768 ratchet step per ping-pong message, and both sides of a PQXDH-style handshake;
their docstrings list exactly what is counted. Our figures come from `bench/ours.py`. Our messages are
15,872-byte padded envelopes with a post-quantum step where the peer's are 256 bytes and classical, so the
comparison is per message as a user sees it, not per byte.
"""


@dataclass(frozen=True)
class Settings:
    """How long to measure."""

    quick: bool
    seconds: float  # each timed run
    warmup_seconds: float
    runs: int  # rounds, each timing every figure once

    @classmethod
    def from_env(cls) -> Settings:
        """``BENCH_QUICK=1`` (or any value but ``""``/``0``) selects the quick settings."""
        return cls.for_mode(os.environ.get("BENCH_QUICK", "") not in ("", "0"))

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        """The quick or the full settings."""
        if quick:
            return cls(quick=True, seconds=0.5, warmup_seconds=0.2, runs=1)
        return cls(quick=False, seconds=2.0, warmup_seconds=1.0, runs=5)


def round_figure(value: float) -> float:
    """Round to 3 significant digits, but never coarser than 1 decimal.

    ``0.012345 -> 0.0123``, ``5.2345 -> 5.23``, ``123.45 -> 123.5``, ``58757.27 -> 58757.3``.
    """
    if value == 0 or not math.isfinite(value):
        return value
    digits = 2 - math.floor(math.log10(abs(value)))
    return round(value, max(1, digits))


def _check_ours(run: Mapping[str, float]) -> dict[str, float]:
    missing = [key for key in OURS_REQUIRED if key not in run]
    if missing:
        raise ValueError(f"bench.ours.measure() did not return {', '.join(missing)}")
    return {key: float(value) for key, value in run.items()}


def _load_ours() -> Callable[[float], Mapping[str, float]] | None:
    """``bench.ours.measure``, or None (with a printed notice) if the module cannot be imported."""
    try:
        module = importlib.import_module("bench.ours")
    except ImportError as exc:
        print(
            f"NOTICE: skipping burnerkit's own figures: bench/ours.py could not be imported ({exc}).\n"
            "        Peer and crypto-limit figures are still measured; ratios and targets are left out.",
            flush=True,
        )
        return None
    measure: Callable[[float], Mapping[str, float]] = module.measure
    return measure


def measure_all(settings: Settings) -> dict[str, float]:
    """Every figure, unrounded, including the ratios when our figures are available.

    In rounds: each round times every limit, every peer figure and ours once, in that
    order, so that a ratio's two figures are seconds apart; a figure is the median over
    the rounds, a ratio the median of each round's ratio. (This machine's speed drifts by
    tens of percent over a minute: figures timed a minute apart would measure the drift.)
    """
    measure = _load_ours()
    print(
        f"  warming up, then {settings.runs} round(s) of every limit, peer and burnerkit figure ...",
        flush=True,
    )
    for _, fn in LIMITS_AND_PEERS:
        fn(settings.warmup_seconds)
    if measure is not None:
        measure(settings.warmup_seconds)
    rounds: list[dict[str, float]] = []
    for index in range(settings.runs):
        print(f"  round {index + 1} of {settings.runs} ...", flush=True)
        run = {name: fn(settings.seconds) for name, fn in LIMITS_AND_PEERS}
        if measure is not None:
            run.update(_check_ours(measure(settings.seconds)))
        rounds.append(run)
    figures = {key: statistics.median(run[key] for run in rounds) for key in rounds[0]}
    for name, num, den in RATIOS:
        if num in figures and all(run.get(den) for run in rounds):
            figures[name] = statistics.median(run[num] / run[den] for run in rounds)
    figures.update(relay.measure(settings.quick))
    print("  the CLI's start-up ...", flush=True)
    figures.update(cli_startup.measure(settings.quick))
    print(f"  {connections.CONTACTS} contacts, shared vs per-contact connections ...", flush=True)
    figures.update(connections.measure(settings.quick))
    print("  the vault's unlock and key rotation ...", flush=True)
    figures.update(vault_epochs.measure(settings.quick))
    print(f"  unlocking by name in a home of 1 and {home_unlock.BURNERS} burners ...", flush=True)
    figures.update(home_unlock.measure(settings.quick))
    print(f"  `burner burn` end to end, {burn.CONTACTS} contacts ...", flush=True)
    figures.update(burn.measure(settings.quick))
    print(f"  the relay store's NEW and commit, {relay_disk.QUEUES:,} queues ...", flush=True)
    figures.update(relay_disk.measure(settings.quick))
    return figures


def _unit(name: str) -> str:
    if "_vs_" in name:
        return "x"
    if name.endswith("_msgs_per_s"):
        return "msgs/s"
    if name.endswith("handshakes_per_s"):
        return "handshakes/s"
    if name.startswith("sqlite_insert_delete_per_s"):
        return "msgs/s"
    if "_ms_" in name or name.endswith("_ms"):
        return "ms"
    if name.endswith("_us") or "_us_" in name:
        return "us"
    if name.endswith("_kib"):
        return "KiB"
    if name.endswith("_connections_held"):
        return "connections"
    if name.endswith("_cores"):
        return "cores"
    return "/s" if name.endswith("_per_s") else ""


def _fmt(value: float) -> str:
    rounded = round_figure(value)
    if abs(rounded) >= 100:
        return f"{rounded:,.1f}"
    return f"{rounded:,g}"


def _fmt_figure(name: str, value: float) -> str:
    if _unit(name) == "connections":
        return f"{round(value):,}"  # a count
    return _fmt(value)


def _rows(figures: Mapping[str, float]) -> list[tuple[str, str, str]]:
    return [(name, _fmt_figure(name, value), _unit(name)) for name, value in figures.items()]


def split_relay(figures: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """(everything else, the relay's figures), each in measurement order."""
    core = {name: value for name, value in figures.items() if name not in relay.FIGURES}
    return core, {name: value for name, value in figures.items() if name in relay.FIGURES}


def text_table(figures: Mapping[str, float]) -> str:
    """Aligned plain-text table: figure, value, unit."""
    rows = [("figure", "value", "unit"), *_rows(figures)]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in rows]
    lines.insert(1, f"{'-' * w0}  {'-' * w1}  {'-' * max(len(r[2]) for r in rows)}")
    return "\n".join(lines)


def _required(t: Target) -> str:
    value = t.required
    text = f"{value:,g}" if value >= 100 or value != round(value, 1) else f"{value:.1f}"
    return f"{'< ' if t.below else ''}{text}{t.unit}"


def target_rows(
    figures: Mapping[str, float],
    targets: tuple[Target, ...] = TARGETS,
    missing: str = "n/a (no bench/ours.py)",
    untested: Mapping[str, str] | None = None,
) -> list[tuple[str, str, str, str, str]]:
    """(target, required, measured, met, ceiling) for each target, as text.

    ``untested`` maps a figure to what "met" says when this run cannot test its target.
    """
    rows = []
    for t in targets:
        value = figures.get(t.figure)
        measured = "not measured" if value is None else f"{_fmt_figure(t.figure, value)}{t.unit}"
        if value is None:
            met = missing
        elif untested and t.figure in untested:
            met = untested[t.figure]
        else:
            met = "**yes**" if t.met(value) else "**no**"
        ceiling = t.ceiling(figures)
        if ceiling is None:
            ceiling_text = "-" if t.ceiling is no_ceiling else "?"
        else:
            ceiling_text = f"{_fmt(ceiling)}{t.unit}"
        rows.append((t.label, _required(t), measured, met, ceiling_text))
    return rows


def environment() -> dict[str, str]:
    """Versions and machine, for the JSON and the report."""
    return {
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "machine": platform.platform(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _doubleratchet_version() -> str:
    try:
        from importlib.metadata import version

        return version("doubleratchet")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


def results_json(
    figures: Mapping[str, float], settings: Settings, env: Mapping[str, str] | None = None
) -> dict[str, object]:
    """The flat object written to ``bench/results.json`` (``env``: this machine's, unless given)."""
    out: dict[str, object] = {"quick": settings.quick, **(environment() if env is None else env)}
    out.update((name, round_figure(value)) for name, value in figures.items())
    return out


PINGPONG_NOTE = (
    "Every ping-pong receipt runs a full hybrid step: ML-KEM-768 decapsulation, a fresh ML-KEM-768 key pair "
    "(from a 64-byte seed, plus deriving its public key), an encapsulation to the peer's new key (after its "
    "FIPS 203 modulus check), a fresh X25519 key and two X25519 agreements, and two root KDFs. In this "
    "cryptography/OpenSSL build the ML-KEM key pair alone costs about 120 us. Those primitive calls by "
    "themselves (`crypto_limit_pq_pingpong_msgs_per_s`) run at the ceiling shown above, within a few "
    "per cent of the classical Python peer, so the 1.0x target leaves almost nothing for parsing, the "
    "envelope, the hash chain and state bookkeeping. The honest reading of the figure is "
    "`ratchet_pingpong_vs_crypto_limit`: how much of the primitive-bound ceiling the protocol keeps."
)


def markdown_report(
    figures: Mapping[str, float],
    settings: Settings,
    ours_loaded: bool,
    *,
    env: Mapping[str, str] | None = None,
    date: str | None = None,
) -> str:
    """The contents of ``docs/performance.md``; ``env`` and ``date``: this run's, unless given."""
    env = environment() if env is None else env
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if date is None else date
    mode = (
        f"quick (`BENCH_QUICK=1`: 1 round, a run of {settings.seconds:g} s per figure)"
        if settings.quick
        else f"full (median of {settings.runs} rounds, a run of {settings.seconds:g} s per figure in each)"
    )
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`.venv/bin/python -m bench.run`); do not edit by hand.",
        "",
        f"- **Date:** {now}",
        f"- **Machine:** {env['machine']}, {_cpu_model()}, {os.cpu_count()} CPUs",
        f"- **Python:** {env['python']}; **cryptography:** {env['cryptography']}; "
        f"**doubleratchet (peer):** {_doubleratchet_version()}",
        f"- **Mode:** {mode}",
        "",
    ]
    if not ours_loaded:
        lines += [
            "> **burnerkit's own figures were not measured:** `bench/ours.py` is missing or failed to",
            "> import. Only the peer and the crypto limits are shown.",
            "",
        ]
    core, relay_figures = split_relay(figures)
    lines += ["## Figures", "", "| Figure | Value | Unit |", "| --- | ---: | --- |"]
    lines += [f"| `{name}` | {value} | {unit} |" for name, value, unit in _rows(core)]
    lines += [
        "",
        "## Targets",
        "",
        "The ceiling column is the best any implementation of our design could reach on this",
        "machine: the raw-crypto limit divided by the same doubleratchet figure (for handshakes,",
        "the limit itself).",
        "",
        "| Target | Required | Measured | Met | Ceiling |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in target_rows(figures)]
    lines += ["", "## Why the PQ ping-pong target is so tight", "", PINGPONG_NOTE]
    lines += ["", "## Method", "", METHOD]
    lines += [cli_startup.METHOD.format(quick=cli_startup.QUICK_PAIRS, full=cli_startup.FULL_PAIRS), ""]
    lines += [connections.METHOD.format(rounds=connections.rounds_text(settings.quick)), ""]
    lines += [
        vault_epochs.METHOD.format(
            records=vault_epochs.RECORDS, quick=vault_epochs.QUICK_ROUNDS, full=vault_epochs.FULL_ROUNDS
        ),
        "",
    ]
    lines += [
        home_unlock.METHOD.format(
            burners=home_unlock.BURNERS, quick=home_unlock.QUICK_ROUNDS, full=home_unlock.FULL_ROUNDS
        ),
        "",
        burn.METHOD.format(contacts=burn.CONTACTS, quick=burn.QUICK_ROUNDS, full=burn.FULL_ROUNDS),
        "",
        relay_disk.METHOD.format(
            samples=relay_disk.QUICK_SAMPLES if settings.quick else relay_disk.FULL_SAMPLES,
            queues=relay_disk.QUEUES,
        ),
        "",
    ]
    lines += _relay_report(relay_figures, settings)
    return "\n".join(lines)


def _relay_report(figures: Mapping[str, float], settings: Settings) -> list[str]:
    lines = [
        "## Relay",
        "",
        "The relay of issue 4 with its durable SQLite store, and in the same run the raw limits of",
        "this machine it is measured against: a bare websockets echo of the same frames and bare",
        "SQLite inserts and deletes of the same size. Every server runs in a process of its own.",
        "",
        "| Figure | Value | Unit |",
        "| --- | ---: | --- |",
    ]
    lines += [f"| `{name}` | {value} | {unit} |" for name, value, unit in _rows(figures)]
    lines += [
        "",
        "### Relay targets",
        "",
        "The throughput ceiling is issue 4's estimate from this run's own raw limits: a relayed",
        "message is four frames where an echoed one is two, so at most half the echo (with",
        "write-behind, a message acknowledged in time costs SQLite no insert or delete; written",
        "through, the bare group-commit rate of SQLite bounds it too).",
        "",
        "| Target | Required | Measured | Met | Ceiling |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    rows = relay_target_rows(figures, settings)
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    bound = relay_bound_note(figures)
    if bound:
        lines += ["", "### What bounds the relay here", "", bound]
    lines += ["", "### Relay method", "", relay.method(settings.quick)]
    return lines


def relay_bound_note(figures: Mapping[str, float]) -> str:
    """Where the relay's time goes, from this run's own figures ("" if they are missing)."""
    names = (
        "relay_msgs_per_s",
        "relay_server_cpu_us_per_msg",
        "relay_client_cpu_us_per_msg",
        "ws_echo_server_cpu_us_per_msg",
        "relay_event_loop_cpu_cores",
        "relay_store_thread_cpu_cores",
        "relay_memory_store_vs_ws_echo",
        "relay_memory_store_msgs_per_s",
        "relay_write_through_vs_ws_echo",
    )
    if any(name not in figures for name in names):
        return ""
    rate, server, client, echo, loop, store, unstored, unstored_rate, written = (
        figures[name] for name in names
    )
    loop_us = loop * 1e6 / rate
    store_us = store * 1e6 / rate
    verdict = (
        "so storage is not what bounds the durable relay any more: the event loop is."
        if unstored_rate <= rate * 1.1
        else "so the durable path still costs the event loop the difference."
    )
    return " ".join(
        (
            "The relay's event loop, one thread of Python. Per message the relay process spends",
            f"{_fmt(server)} us of CPU (the echo server {_fmt(echo)} us for half the frames):",
            f"{_fmt(loop_us)} us on its event-loop thread (four frames and their parsing, the queue",
            "layer's AES-GCM, the ACK's HMAC, the store's decisions) and",
            f"{_fmt(store_us)} us on its SQLite writer thread. Under write-behind a queue whose",
            "recipient is online is *held* (docs/protocol.md §14.8, store/writebehind.py): its SENDs",
            "and ACKs are decided on the event loop and never reach the writer thread, which then",
            "has nothing to do;",
            "written through (`--write-behind 0`), every body is inserted, zeroed on delete and",
            f"checkpointed out, and the relay reaches {_fmt(written)}x the echo",
            "(`relay_write_through_vs_ws_echo`). The event loop used",
            f"{_fmt(loop)} of a core (`relay_event_loop_cpu_cores`), the clients {_fmt(client)} us per",
            "message. With storage taken out altogether (`--store :memory:`) the same relay moves",
            f"{_fmt(unstored_rate)} msgs/s, {_fmt(unstored)}x the echo; the difference to the durable",
            "figure is a SEND's wait for its recipient's ACK (a future per SEND, which resumes",
            "the command; the memory store answers at once) and the held queue's bookkeeping,",
            verdict,
        )
    )


def _display(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def update_stored(measure: Callable[[bool], Mapping[str, float]], names: tuple[str, ...], what: str) -> int:
    """Measure only ``measure``'s figures and merge them into the last full run's results and report.

    The other figures keep the machine, versions and date they were measured with; the
    report's date line says when ``what`` was measured. For ``python -m bench.<module>``.
    """
    import re

    stored = json.loads(RESULTS_PATH.read_text())
    settings = Settings.for_mode(bool(stored["quick"]))  # the mode of the stored figures
    figures = {
        name: float(value)
        for name, value in stored.items()
        if name not in {"quick", *environment()} and isinstance(value, int | float)
    }
    figures.update(measure(Settings.from_env().quick))
    for name in names:
        print(f"{name}: {round_figure(figures[name])}")
    env = {key: str(stored[key]) for key in environment() if key in stored}
    old = re.search(r"- \*\*Date:\*\* ([^;\n]+)", REPORT_PATH.read_text())
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    date = f"{old.group(1) if old else 'unknown'}; {what}: {now} ({platform.platform()})"
    RESULTS_PATH.write_text(json.dumps(results_json(figures, settings, env), indent=2) + "\n")
    ours_loaded = all(key in figures for key in OURS_REQUIRED)
    REPORT_PATH.write_text(markdown_report(figures, settings, ours_loaded, env=env, date=date))
    return 0


def main() -> int:
    """Measure, print, write both files."""
    settings = Settings.from_env()
    print(
        f"burnerkit bench ({'quick' if settings.quick else 'full'}): "
        f"{settings.runs} round(s), a run of {settings.seconds:g} s per figure in each, after a"
        f" {settings.warmup_seconds:g} s warm-up",
        flush=True,
    )
    figures = measure_all(settings)
    ours_loaded = all(key in figures for key in OURS_REQUIRED)
    core, relay_figures = split_relay(figures)
    print()
    print(text_table(core))
    print()
    print("relay (servers in processes of their own, loopback, 16,384-byte frames):")
    print(text_table(relay_figures))
    print()
    rows = target_rows(figures) + relay_target_rows(figures, settings)
    for label, _required, measured, met, ceiling in rows:
        print(f"target: {label}: measured: {measured}; met: {met.strip('*')}; ceiling: {ceiling}")

    RESULTS_PATH.write_text(json.dumps(results_json(figures, settings), indent=2) + "\n")
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(markdown_report(figures, settings, ours_loaded))
    print(f"\nwrote {_display(RESULTS_PATH)} and {_display(REPORT_PATH)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
