"""The study journal survives torn records (power cut, full disk) without losing the study."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest

from ml_experiment.hpo._storage import _backend_class, repair_journal


def _storage(path: Path) -> optuna.storages.JournalStorage:
    from optuna.storages.journal import JournalFileSymlinkLock

    # A fresh backend each time: what a new process (a --resume) sees.
    return optuna.storages.JournalStorage(
        _backend_class()(str(path), JournalFileSymlinkLock(str(path), grace_period=5))
    )


def _objective(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0, 1)


def _study(path: Path, n: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=_storage(path), load_if_exists=True)
    study.optimize(_objective, n_trials=n)


def test_torn_last_record_is_dropped_with_a_copy_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = tmp_path / "optuna-studies.journal"
    _study(journal, 5)
    data = journal.read_bytes()
    journal.write_bytes(data[:-100])  # an append the disk never got whole
    torn_tail = data[:-100].rsplit(b"\n", 1)[1]
    assert torn_tail, "the cut must end inside a record"

    with caplog.at_level(logging.WARNING):
        study = optuna.load_study(study_name="s", storage=_storage(journal))
    assert "torn record" in caplog.text
    copies = list(tmp_path.glob("optuna-studies.journal.torn-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == data[:-100]
    assert journal.read_bytes().endswith(b"\n")
    assert len(study.trials) >= 4  # the last trial's records at most

    # Appends start on a fresh line, and every later reader is happy.
    study.optimize(_objective, n_trials=3)
    again = optuna.load_study(study_name="s", storage=_storage(journal))
    assert len(again.trials) == len(study.trials)
    assert sum(t.state.name == "COMPLETE" for t in again.trials) >= 7
    assert len(list(tmp_path.glob("optuna-studies.journal.torn-*"))) == 1  # nothing more to do


def test_plain_optuna_fails_on_a_torn_record_followed_by_an_append(tmp_path: Path) -> None:
    """The damage the unrepaired journal made, and the repair of a journal already damaged."""
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "j.journal"
    _study(journal, 3)
    data = journal.read_bytes()
    last = data[:-1].rsplit(b"\n", 1)[1] + b"\n"
    # Optuna's own append after a torn record: glued to it, then more records.
    damaged = data[:-100] + last + last
    journal.write_bytes(damaged)
    with pytest.raises(ValueError):  # JSONDecodeError: every later group failed here
        optuna.load_study(
            study_name="s", storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        )

    assert repair_journal(journal) >= 1
    repaired = journal.read_bytes()
    assert repaired.endswith(last + last)  # the glued complete record was kept
    assert optuna.load_study(study_name="s", storage=_storage(journal)).trials


def test_append_after_a_writer_died_mid_record_starts_a_fresh_line(tmp_path: Path) -> None:
    journal = tmp_path / "j.journal"
    storage = _storage(journal)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(_objective, n_trials=2)
    with open(journal, "ab") as f:
        f.write(b'{"op_code":6,"worker_id":"dead","trial_')  # another process, cut short
    study.optimize(_objective, n_trials=2)  # the same open storage appends
    assert all(line.startswith(b'{"op_code":') for line in journal.read_bytes().splitlines())
    assert len(optuna.load_study(study_name="s", storage=_storage(journal)).trials) == 4


def test_intact_journal_is_left_alone(tmp_path: Path) -> None:
    journal = tmp_path / "j.journal"
    _study(journal, 2)
    before = journal.read_bytes()
    assert repair_journal(journal) == 0
    assert journal.read_bytes() == before
    assert not list(tmp_path.glob("*.torn-*"))


def test_records_of_another_shape_are_kept(tmp_path: Path) -> None:
    """A future Optuna writing another first key: valid lines are never dropped, only torn ones."""
    journal = tmp_path / "j.journal"
    journal.write_bytes(b'{"op":1,"a":2}\n{"op":2}\n{"op":3,"b"')
    assert repair_journal(journal) == 1
    assert journal.read_bytes() == b'{"op":1,"a":2}\n{"op":2}\n'
