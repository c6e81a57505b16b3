"""Text a person reads at a glance, shared by the notifiers' messages and the HTML report."""

from __future__ import annotations

import math
from typing import Any


def format_duration(seconds: Any) -> str | None:
    """``0.53`` -> ``'0.5s'``, ``65`` -> ``'1m 05s'``, ``3725`` -> ``'1h 02m 05s'``; else None."""
    s = float(seconds) if isinstance(seconds, int | float) else math.nan
    if not math.isfinite(s) or s < 0:
        return None
    minutes, sec = divmod(round(s), 60)
    h, m = divmod(minutes, 60)
    return f"{s:.1f}s" if s < 59.95 else f"{h}h {m:02d}m {sec:02d}s" if h else f"{m}m {sec:02d}s"
