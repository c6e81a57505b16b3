"""Loader for the MAGIC Gamma Telescope data set shipped in ``data/magic04.csv``.

Only numpy and the standard library are needed (no pandas). See ``data/README.md`` for the
source, licence (CC BY 4.0) and column descriptions.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

FEATURE_NAMES: tuple[str, ...] = (
    "fLength",
    "fWidth",
    "fSize",
    "fConc",
    "fConc1",
    "fAsym",
    "fM3Long",
    "fM3Trans",
    "fAlpha",
    "fDist",
)
LABEL_NAME = "class"
DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "magic04.csv"

# Class encoding: gamma (signal) -> 1, hadron (background) -> 0.
_CLASS_TO_INT = {"g": 1, "h": 0}


def load_magic(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load the MAGIC gamma/hadron events.

    Args:
        path: CSV file to read; defaults to ``data/magic04.csv`` next to this module.

    Returns:
        ``(X, y)``: ``X`` is float64 with shape ``(n_events, 10)`` in the column order of
        :data:`FEATURE_NAMES`; ``y`` is int64 with shape ``(n_events,)``, 1 for gamma (``g``)
        and 0 for hadron (``h``). For the shipped file ``n_events == 19020``.
    """
    csv_path = Path(path) if path is not None else DEFAULT_PATH
    with csv_path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        expected = [*FEATURE_NAMES, LABEL_NAME]
        if header != expected:
            raise ValueError(f"{csv_path}: expected header {expected}, got {header}")
        features: list[list[float]] = []
        labels: list[int] = []
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(expected):
                raise ValueError(
                    f"{csv_path}:{lineno}: expected {len(expected)} fields, got {len(row)}"
                )
            try:
                labels.append(_CLASS_TO_INT[row[-1].strip()])
            except KeyError:
                raise ValueError(f"{csv_path}:{lineno}: unknown class {row[-1]!r}") from None
            features.append([float(v) for v in row[:-1]])

    X = np.asarray(features, dtype=np.float64).reshape(-1, len(FEATURE_NAMES))
    y = np.asarray(labels, dtype=np.int64)
    return X, y


if __name__ == "__main__":
    X, y = load_magic()
    print(
        f"X {X.shape} {X.dtype}, y {y.shape} {y.dtype}: gamma={int(y.sum())} hadron={int((y == 0).sum())}"
    )
