"""A QR code drawn with half blocks, dark on light whatever the terminal's theme."""

from __future__ import annotations

from typing import Final

import segno
from rich.text import Text
from textual.widgets import Static

__all__ = ["QUIET_ZONE", "QrCode", "qr_text", "qr_width"]

#: Light modules around the code: scanners need a margin, and a dark theme is no margin.
QUIET_ZONE: Final = 2
_BLOCKS: Final = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def _matrix(data: str) -> list[list[bool]]:
    qr = segno.make(data, error="l", micro=False)
    rows = [[bool(cell) for cell in row] for row in qr.matrix]
    width = len(rows[0]) + 2 * QUIET_ZONE
    blank = [False] * width
    margin = [False] * QUIET_ZONE
    return (
        [list(blank) for _ in range(QUIET_ZONE)]
        + [margin + row + margin for row in rows]
        + [list(blank) for _ in range(QUIET_ZONE)]
    )


def qr_width(data: str) -> int:
    """Columns the code of ``data`` takes (one per module, quiet zone included)."""
    return len(_matrix(data)[0])


def qr_text(data: str) -> Text:
    """``data`` as a QR code: two module rows per line, black on white."""
    rows = _matrix(data)
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    lines = [
        "".join(_BLOCKS[top, bottom] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(rows[::2], rows[1::2], strict=True)
    ]
    return Text("\n".join(lines), style="#000000 on #ffffff", no_wrap=True, overflow="crop")


class QrCode(Static):
    """A QR code of ``data``, or a note where it would not fit ``max_width`` columns."""

    def __init__(self, data: str, *, max_width: int = 78, id: str | None = None) -> None:
        width = qr_width(data)
        self.fits = width <= max_width
        content: Text | str = (
            qr_text(data)
            if self.fits
            else f"(this link needs a {width}-column QR code: too wide here; pass the link on as text)"
        )
        super().__init__(content, id=id)
