"""Demonstrations: the main scenario (``burner demo``) and the core's (``burner demo --core``).

Both run the real code, not a mock-up, so a demo that passes shows the product working
(docs/architecture.md §6).
"""

from __future__ import annotations

from burnerkit.demo.trip import run

__all__ = ["run"]
