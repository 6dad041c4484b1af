"""What the chat UI says to people: alert advice, durations, times, key help."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

__all__ = [
    "ADVICE",
    "KEYS",
    "TIMER_CHOICES",
    "LocalTime",
    "advice",
    "clock_time",
    "stamp",
]

#: How the UI turns seconds since the epoch into a local time (injected by tests).
LocalTime = Callable[[float], time.struct_time]

#: What each alert kind means and what to do about it (the alerts panel).
ADVICE: Final[dict[str, str]] = {
    "fork": "two devices sent as {alias}: their burner may be cloned. "
    "Check with them by voice or in person (F6) and think of re-pairing.",
    "displaced": "another device subscribed to one of our queues: THIS burner's keys may be "
    "cloned (a copy taken at a border?). Consider burning it (F9) and starting again.",
    "replay": "a message from {alias} came again: someone may be replaying traffic. "
    "Shown once only; watch for more.",
    "undecryptable": "a message on {alias}'s queue did not decrypt: forged or damaged.",
    "key-changed": "{alias} re-paired with another identity key: sending is blocked until you "
    "compare safety codes (F6).",
    "second-acceptance": "your invitation to {alias} was accepted twice: it may have been "
    "intercepted. Compare safety codes (F6).",
    "code-mismatch": "the safety code you typed did not match {alias}'s: someone may be in the "
    "middle. Do not trust this contact; pair again in person.",
    "sender-refused": "someone other than {alias} tried to send on their queue; the relay refused it.",
    "invitation-used": "an invitation was used by someone else first: it may have been "
    "intercepted. Ask for a new one.",
    "counter-bomb": "a message from {alias} claimed an impossible jump in numbering: refused, "
    "likely an attack.",
    "undeliverable": "{alias}'s relay no longer has their queue: they probably burned their "
    "burner. Messages to them are dropped.",
}

#: The disappearing timers offered, as (label, seconds).
TIMER_CHOICES: Final[tuple[tuple[str, int], ...]] = (
    ("off", 0),
    ("30 seconds", 30),
    ("5 minutes", 300),
    ("1 hour", 3600),
    ("1 day", 86400),
    ("1 week", 604800),
)

#: The keys, as the help overlay lists them.
KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("F1 or ?", "this help"),
    ("F2", "invite: a one-time link and its QR code"),
    ("F3", "accept a link someone gave you"),
    ("F4", "pair by short code: show a code"),
    ("F5", "pair by short code: type their code"),
    ("F6", "verify the contact: compare safety codes"),
    ("F7", "disappearing messages for this contact"),
    ("F8", "alerts: what happened, what to do, clear"),
    ("F9", "burn this burner (asks first)"),
    ("F10", "debrief: every anomaly so far, cleared ones too"),
    ("Tab / Shift+Tab", "move between contacts and the message line"),
    ("Up / Down", "choose a contact"),
    ("Enter", "send the message (on the message line)"),
    ("Escape", "close a window"),
    ("Ctrl+Q", "quit (the burner stays locked on disk)"),
)


def advice(kind: str, alias: str) -> str:
    """What ``kind`` means for ``alias``, and what to do."""
    text = ADVICE.get(kind, "an anomaly was recorded: {alias}. Keep it for the debrief.")
    return text.format(alias=alias or "a contact")


def stamp(seconds: float, localtime: LocalTime) -> str:
    """``2026-11-25 14:03 CET``: a date and local time, with its zone."""
    return time.strftime("%Y-%m-%d %H:%M %Z", localtime(seconds))


def clock_time(seconds: float, localtime: LocalTime) -> str:
    """``14:03`` in local time."""
    return time.strftime("%H:%M", localtime(seconds))
