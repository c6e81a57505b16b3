"""Figures in benchmarks/README.md between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def put_block(name: str, text: str, heading: str, readme: Path = README) -> None:
    """Replace the ``name`` block with ``text``; append it under ``heading`` the first time."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text}{end}"
    body = readme.read_text()
    if start in body:
        body = re.sub(f"{re.escape(start)}.*?{re.escape(end)}", lambda _: block, body, flags=re.S)
    else:
        body = body.rstrip() + f"\n\n## {heading}\n\n{block}\n"
    readme.write_text(body)
