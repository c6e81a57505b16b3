"""Helpers for the example tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import yaml


def load_example(folder: Path, filename: str, key: str) -> ModuleType:
    """An example's module by path, once, as ``sys.modules[key]`` (a private name).

    Its folder is on ``sys.path`` only while it loads, for the modules it imports beside it.
    """
    if key in sys.modules:
        return sys.modules[key]
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(key, folder / filename)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def without_report(job: Path, folder: Path) -> list[str]:
    """``job`` copied into ``folder`` with ``report: false``, then its scripts by path (for
    ``ml-experiment run``).

    The example tests look at the models, not at the report: it has its own tests (tests/report)
    and one that cannot be made fails no run. It cost 5-30 s per group on 2 cores.
    """
    copy = folder / job.name
    copy.write_text(job.read_text() + "\nreport: false\n")
    return [str(copy), *(str(job.parent / s) for s in yaml.safe_load(copy.read_text())["run"])]
