"""Persistent Optuna storage: a journal file beside the knowledge center (multi-process safe)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna.storages import JournalStorage


@functools.cache
def open_storage(path: str) -> JournalStorage:
    """Open (creating if needed) the journal storage at ``path``; one object per process."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # A short grace period: a lock is held for one append, so a stale one means a killed driver.
    lock = JournalFileSymlinkLock(path, grace_period=5)
    return JournalStorage(JournalFileBackend(path, lock_obj=lock))
