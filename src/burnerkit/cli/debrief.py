"""``burner debrief``: every anomaly of the burner's life, without content (docs/protocol.md §17.10)."""

from __future__ import annotations

import typer

from burnerkit.cli.context import BurnerOpt, HomeOpt, JsonOpt, open_messenger
from burnerkit.cli.output import console, print_json, stamp

__all__ = ["debrief", "register"]


def debrief(burner: BurnerOpt = None, home: HomeOpt = None, json_out: JsonOpt = False) -> None:
    """List every anomaly so far (clones, gaps, replays, ...): when, who, what; never content.

    Cleared alerts stay listed. --json is the stable form for the issuing office
    (docs/protocol.md §17.10).
    """
    with open_messenger(home, burner, quiet=json_out) as messenger:
        report = messenger.debrief()
    if json_out:
        print_json(report.to_json())
        return
    if not report.events:
        console.print(f"debrief of {report.burner}: nothing to report, no anomaly recorded", markup=False)
        return
    console.print(
        f"debrief of {report.burner}: {len(report.events)} event(s), {report.alerts} alert(s)", markup=False
    )
    for contact in report.contacts:
        console.print(f"  {contact.summary}", markup=False)
    console.print("", markup=False)
    for e in report.events:
        who, mark = e.contact or "this burner", "ALERT " if e.alert else ""
        console.print(f"[{stamp(e.at)}] {who}: {mark}{e.kind}: {e.detail}", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``debrief`` to ``app``."""
    app.command("debrief")(debrief)
