"""The contact list: verification, unread count and alert mark for each contact."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Label, ListItem, ListView

from burnerkit.app.views import ContactView

__all__ = ["ContactItem", "ContactList", "contact_label"]


def contact_label(view: ContactView, unread: int, gone: bool) -> Text:
    """``✓ bob (2) ⚠``: verified or not, the alias, unread count, alert and silence marks."""
    text = Text()
    if view.verified:
        text.append("✓ ", style="green")
    else:
        text.append("? ", style="yellow")
    text.append(view.alias, style="bold" if unread else "")
    if unread:
        text.append(f" ({unread})", style="bold cyan")
    if view.alerts:
        text.append(" ⚠", style="bold red")
    if view.silent_since:  # past its dead-man window (docs/protocol.md §17.8)
        text.append(" silent", style="bold yellow")
    if gone:
        text.append(" ✗", style="red")
    if view.burned:
        text.append(" burned", style="bold red")
    return text


class ContactItem(ListItem):
    """One contact's row."""

    def __init__(self, alias: str, label: Text) -> None:
        super().__init__(Label(label))
        self.alias = alias

    def relabel(self, label: Text) -> None:
        """Redraw the row."""
        self.query_one(Label).update(label)


class ContactList(ListView):
    """The contacts, by alias; rows are updated in place while the aliases stay the same."""

    def aliases(self) -> list[str]:
        """The aliases shown, top to bottom."""
        return [item.alias for item in self.query(ContactItem)]

    async def show(self, rows: list[tuple[str, Text]], selected: str | None) -> None:
        """Show ``rows`` (alias, label), keeping ``selected`` highlighted."""
        if [alias for alias, _ in rows] == self.aliases():
            for item, (_, label) in zip(self.query(ContactItem), rows, strict=True):
                item.relabel(label)
            return
        await self.clear()
        await self.extend([ContactItem(alias, label) for alias, label in rows])
        aliases = [alias for alias, _ in rows]
        if selected in aliases:
            self.index = aliases.index(selected)
        elif aliases:
            self.index = 0
