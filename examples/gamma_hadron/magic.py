"""The MAGIC gamma/hadron data as a ``DataLoader``: split once, standardised without leaks.

``data/magic04.csv`` (19,020 events, 10 image parameters, 65 % gamma; see data/README.md) is
split, stratified and with seed 1234, into a test set (20 %) kept for the final evaluation,
and a training set whose last 20 % is the validation set of the searches. Both scalers are
fitted on training data only: ``X_train``/``X_val`` with the one fitted on ``X_train``,
``X_full``/``X_test`` with the one fitted on the whole training set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from data_loading import FEATURE_NAMES, load_magic

from ml_experiment import DataLoader

SEED = 1234
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.2


class MagicLoader(DataLoader):
    """Train / validation / test arrays of the MAGIC data, standardised (float32)."""

    @classmethod
    def load_data(cls) -> dict[str, Any]:
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        X, y = load_magic()
        X_full, X_test, y_full, y_test = train_test_split(
            X, y, test_size=TEST_FRACTION, random_state=SEED, stratify=y
        )
        X_train, X_val, y_train, y_val = train_test_split(
            X_full, y_full, test_size=VALIDATION_FRACTION, random_state=SEED, stratify=y_full
        )
        s1 = StandardScaler().fit(X_train)
        s2 = StandardScaler().fit(X_full)
        f32 = np.float32
        print(
            f"magic data: {y_train.size} train / {y_val.size} validation / {y_test.size} test "
            f"events ({y.mean():.3f} gamma)",
            flush=True,
        )
        return {
            "features": list(FEATURE_NAMES),
            "X_train": s1.transform(X_train).astype(f32),
            "y_train": y_train,
            "X_val": s1.transform(X_val).astype(f32),
            "y_val": y_val,
            "X_full": s2.transform(X_full).astype(f32),
            "y_full": y_full,
            "X_test": s2.transform(X_test).astype(f32),
            "y_test": y_test,
        }


def pick(data: dict[str, Any], evaluate_on: str) -> tuple[np.ndarray, ...]:
    """(X_fit, y_fit, X_eval, y_eval): train/validation, or full training set/test."""
    if evaluate_on == "validation":
        return data["X_train"], data["y_train"], data["X_val"], data["y_val"]
    if evaluate_on == "test":
        return data["X_full"], data["y_full"], data["X_test"], data["y_test"]
    raise ValueError(f"evaluate_on must be 'validation' or 'test', got {evaluate_on!r}")


def binary_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray, evaluate_on: str
) -> dict[str, float]:
    """Accuracy (with its counts, for an interval) and ROC AUC of a gamma score."""
    from sklearn.metrics import roc_auc_score

    prefix = "val" if evaluate_on == "validation" else "test"
    correct = int((y_true == y_pred).sum())
    return {
        f"{prefix}_accuracy": correct / y_true.size,
        f"{prefix}_correct": correct,
        f"{prefix}_n": int(y_true.size),
        f"{prefix}_auc": float(roc_auc_score(y_true, score)),
    }
