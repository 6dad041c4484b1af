"""The chat's contact list marks a contact silent past its dead-man window (docs/protocol.md §17.8)."""

from __future__ import annotations

from burnerkit.app.views import ContactView
from burnerkit.tui.widgets.contacts import contact_label


def view(silent_since: int) -> ContactView:
    return ContactView("alice", "ws://127.0.0.1:7000", True, False, 0, False, "1234", [], silent_since)


def test_contact_list_marks_a_silent_contact_and_only_it() -> None:
    assert contact_label(view(1_900_000_000), 0, False).plain == "✓ alice silent"
    assert contact_label(view(0), 0, False).plain == "✓ alice"
