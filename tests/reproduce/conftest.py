"""Fixtures of the reproduce tests: a client on any folder's default knowledge center."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def client_at() -> Callable[[Path], Any]:
    from mlflow.tracking import MlflowClient

    return lambda folder: MlflowClient(f"sqlite:///{folder / 'mlruns.db'}")
