"""Demonstrations: the main scenario (``burner demo``) and the core's (``burner demo --core``)."""

from __future__ import annotations

from burnerkit.demo.trip import run

__all__ = ["run"]
