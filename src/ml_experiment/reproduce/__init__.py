"""Readers of the run record: reproduce, verify, audit and diff recorded runs."""

from __future__ import annotations

__all__: list[str] = []
