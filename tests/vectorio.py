"""Load the JSON test vectors in ``tests/vectors/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_DIR = Path(__file__).parent / "vectors"


def load(name: str) -> dict[str, Any]:
    """Return the parsed ``tests/vectors/<name>`` (``.json`` is added when missing)."""
    if not name.endswith(".json"):
        name += ".json"
    with (VECTORS_DIR / name).open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data
