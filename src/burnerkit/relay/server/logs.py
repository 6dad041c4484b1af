"""Structured log lines of the relay: an event name and aggregate fields, nothing else.

docs/protocol.md §14.11. The relay's operator is part of the threat model, so its logs
must not become the record that links people: no IP address, no queue id, no message
id, no per-queue timing. We get there by construction rather than by care:

- our own events go through :func:`log_event`, whose fields are numbers and short
  names chosen in code, never values taken from the wire;
- a record from any other library (websockets, asyncio) is reduced to its logger name
  and level, because its message text may hold a peer address;
- no traceback is ever written, only the exception's class name.
"""

from __future__ import annotations

import json
import logging
from typing import Final

__all__ = ["LOGGER_NAME", "JsonFormatter", "log_event"]

LOGGER_NAME: Final = "burnerkit.relay"

_OUR_PREFIX: Final = "burnerkit."
_FIELDS_ATTR: Final = "burner_fields"
_EVENT_ATTR: Final = "burner_event"

Field = int | float | str | bool | None


def log_event(logger: logging.Logger, event: str, /, *, level: int = logging.INFO, **fields: Field) -> None:
    """Log ``event`` with aggregate ``fields`` (numbers, flags and names chosen in code)."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_EVENT_ATTR: event, _FIELDS_ATTR: fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``event`` and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` without its traceback and, if foreign, without its text."""
        line: dict[str, Field] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
        }
        event = getattr(record, _EVENT_ATTR, None)
        if isinstance(event, str):
            line["event"] = event
            fields = getattr(record, _FIELDS_ATTR, {})
            if isinstance(fields, dict):
                line.update({str(k): v for k, v in fields.items() if k not in line})
        elif record.name.startswith(_OUR_PREFIX):
            # Our modules log lower-case facts without secrets (STYLE.md §3 rule 6).
            line["event"] = "message"
            line["logger"] = record.name
            line["message"] = record.getMessage()
        else:
            line["event"] = "foreign"
            line["logger"] = record.name
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = record.exc_info[0].__name__
        return json.dumps(line, separators=(",", ":"), sort_keys=False)
