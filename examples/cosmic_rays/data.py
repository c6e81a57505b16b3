"""Data for the cosmic-ray models: generated on demand, split, standardised, shared.

Two ``DataLoader`` classes, as in the thesis (its Listings 7.1 and 7.2):

* ``UnifiedLoader``: all primaries in one table, for the supervised models (SVM, XGBoost).
* ``PerClassLoader``: the same data with the training part split by primary, for the
  autoencoders (one per class); validation and test stay shared, with their labels.

Which data set is loaded is chosen by environment variables (``DataLoader.load_data`` takes no
arguments, and in a group it runs once, in the driver):

``COSMIC_PRESET``   ``physical`` (default) or ``thesis`` (see README.md, "Two presets")
``COSMIC_SCALE``    size factor of the simulation (default 1: 4 x 16,000 train, 4 x 4,000 test)
``COSMIC_DATA_DIR`` where the CSVs live (default: ``data/`` next to this file, git-ignored)
``COSMIC_SPLIT``    ``preset`` (default: the files' train/test split) or ``shower``: for
                    ``thesis``, train and test files pooled and re-split by ``shower_id``
                    (20 % of the showers to test, seed 1234; validation grouped too), the
                    leak-free counterpart on the same stations. ``physical`` files are already
                    split by shower, so there it changes nothing.

A missing data set is simulated with ``simulate.write_dataset`` (seed 1234, a few seconds at
full size); nothing is downloaded. Scale 1 lives in ``<dir>/<preset>/``, other scales in
``<dir>/scale<scale>/<preset>/``.

Splits and scaling (no information from validation or test reaches the scaler):

* validation: 20 % of the training file, seed 1234. For ``physical`` the split is grouped by
  ``shower_id`` (sklearn ``GroupShuffleSplit``): the 1-3 stations of a shower stay on one
  side, so validation measures what generalises to new showers. For ``thesis`` it is the
  thesis's random station-level split (``train_test_split``), leak included: that preset
  exists to show what such a split does.
* ``X_train`` / ``X_val``: standardised with a ``StandardScaler`` fitted on ``X_train`` only.
* ``X_full`` / ``X_test``: the whole training file and the test file, standardised with a
  scaler fitted on the whole training file only. Only the final table (``evaluate_on:
  test``) touches them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ml_experiment import DataLoader

HERE = Path(__file__).resolve().parent
SEED = 1234  # simulation, validation split, model initialisation (as in the thesis)
VALIDATION_FRACTION = 0.2
PRESETS = ("physical", "thesis")
SPLITS = ("preset", "shower")
Part = tuple[np.ndarray, np.ndarray, np.ndarray]  # X, y, shower_id of a file (or split)


def settings() -> tuple[str, float, Path]:
    """(preset, scale, data folder) from the environment, validated."""
    preset = (os.environ.get("COSMIC_PRESET") or "physical").strip().lower()
    if preset not in PRESETS:
        raise ValueError(f"COSMIC_PRESET must be one of {', '.join(PRESETS)}, got {preset!r}")
    raw = (os.environ.get("COSMIC_SCALE") or "1").strip()
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"COSMIC_SCALE must be a positive number, got {raw!r}") from None
    if not scale > 0:
        raise ValueError(f"COSMIC_SCALE must be a positive number, got {raw!r}")
    folder = Path(os.environ.get("COSMIC_DATA_DIR") or HERE / "data").expanduser().resolve()
    return preset, scale, folder


def split_setting() -> str:
    """``COSMIC_SPLIT`` from the environment, validated (see the module docstring)."""
    split = (os.environ.get("COSMIC_SPLIT") or "preset").strip().lower()
    if split not in SPLITS:
        raise ValueError(f"COSMIC_SPLIT must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


def _simulator() -> Any:
    """``simulate.py`` from this folder (by path: the folder need not be on ``sys.path``)."""
    name = "cosmic_rays_simulate"
    module = sys.modules.get(name)
    if module is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location(name, HERE / "simulate.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses need the module registered
        spec.loader.exec_module(module)
    return module


def dataset_dir(preset: str, scale: float, folder: Path) -> Path:
    """The preset folder holding ``train/`` and ``test/``; simulated first if missing or stale."""
    sim = _simulator()
    base = folder if scale == 1 else folder / f"scale{scale:g}"
    root = base / preset
    meta_path = root / "metadata.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if (
            meta.get("seed") == SEED
            and meta.get("scale") == scale
            and meta.get("simulator_version") == sim.SIMULATOR_VERSION
        ):
            return root
    base.mkdir(parents=True, exist_ok=True)
    # Simulate into a private folder and move it in place: a concurrent reader never sees half
    # a data set, and two writers produce the same bytes anyway.
    tmp = Path(tempfile.mkdtemp(prefix=f".{preset}-", dir=base))
    try:
        sim.write_dataset(tmp, preset, seed=SEED, scale=scale)
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
        try:
            (tmp / preset).rename(root)
        except OSError:
            if not (root / "metadata.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"cosmic data: simulated {preset} (scale {scale:g}) into {root}", flush=True)
    return root


def _read(root: Path, split: str) -> Part:
    sim = _simulator()
    df = sim.read_split(root, split)
    X = df[list(sim.FEATURES)].to_numpy(dtype=np.float64)
    return X, df["label"].to_numpy(dtype=np.int64), df["shower_id"].to_numpy(dtype=np.int64)


def _standardise(fit_on: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(fit_on)
    return [scaler.transform(a).astype(np.float32) for a in (fit_on, *others)]


def validation_split(
    preset: str, y: np.ndarray, showers: np.ndarray, grouped: bool = False
) -> tuple[Any, Any]:
    """Indices (train, validation) of the training file: grouped for physical (or ``grouped``),
    random for thesis."""
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    idx = np.arange(y.shape[0])
    if preset == "physical" or grouped:
        gss = GroupShuffleSplit(n_splits=1, test_size=VALIDATION_FRACTION, random_state=SEED)
        train, val = next(gss.split(idx, y, groups=showers))
        return np.sort(train), np.sort(val)
    train, val = train_test_split(idx, test_size=VALIDATION_FRACTION, random_state=SEED)
    return np.sort(train), np.sort(val)


def split_by_shower(train: Part, test: Part) -> tuple[Part, Part]:
    """(X, y, shower_id) of the train and test files pooled and re-split by shower: the same
    share of showers goes to test as the files' share of stations, seed ``SEED``."""
    from sklearn.model_selection import GroupShuffleSplit

    pooled = [np.concatenate([a, b]) for a, b in zip(train, test, strict=True)]
    size = test[1].shape[0] / pooled[1].shape[0]
    gss = GroupShuffleSplit(n_splits=1, test_size=size, random_state=SEED)
    tr, te = next(gss.split(pooled[0], pooled[1], groups=pooled[2]))
    X, y, g = pooled
    return (X[tr], y[tr], g[tr]), (X[te], y[te], g[te])


def load_unified() -> dict[str, Any]:
    """The data of the environment's preset, scale and split (see the module docstring)."""
    preset, scale, folder = settings()
    regroup = split_setting() == "shower" and preset != "physical"
    root = dataset_dir(preset, scale, folder)
    meta = json.loads((root / "metadata.json").read_text())
    version, fingerprint = meta["data_version"], meta["fingerprint"]
    train, test = _read(root, "train"), _read(root, "test")
    if regroup:
        train, test = split_by_shower(train, test)
        # other data than the files' split: a search and a retraining must not be mixed
        version += "-split-shower"
        fingerprint = hashlib.sha256(f"{fingerprint} split=shower".encode()).hexdigest()
    (X, y, showers), (X_test, y_test, _) = train, test
    tr, va = validation_split(preset, y, showers, grouped=regroup)
    X_train, X_val = _standardise(X[tr], X[va])
    X_full, X_test_s = _standardise(X, X_test)
    shared = np.intersect1d(showers[tr], showers[va]).size
    print(
        f"cosmic data: {version} (fingerprint {fingerprint[:12]}): "
        f"{tr.size} train / {va.size} validation stations ({shared} showers on both sides), "
        f"{y_test.size} test",
        flush=True,
    )
    return {
        "preset": preset,
        "scale": scale,
        "data_version": version,
        "files_fingerprint": fingerprint,
        "features": list(_simulator().FEATURES),
        "X_train": X_train,
        "y_train": y[tr],
        "X_val": X_val,
        "y_val": y[va],
        "X_full": X_full,
        "y_full": y,
        "X_test": X_test_s,
        "y_test": y_test,
    }


class UnifiedLoader(DataLoader):
    """All primaries together, standardised (thesis Listing 7.2, with a grouped split)."""

    @classmethod
    def load_data(cls) -> dict[str, Any]:
        return load_unified()


class PerClassLoader(DataLoader):
    """As ``UnifiedLoader`` plus the training arrays split by class (thesis Listing 7.1).

    One scaler for all classes (fitted on the training part): every station is fed to every
    class's autoencoder in the same coordinates, so reconstruction errors are comparable and
    the scaling of a validation station does not depend on its (unknown) label.
    """

    @classmethod
    def load_data(cls) -> dict[str, Any]:
        data = load_unified()
        n_classes = int(data["y_full"].max()) + 1
        data["X_train_by_class"] = [data["X_train"][data["y_train"] == c] for c in range(n_classes)]
        data["X_full_by_class"] = [data["X_full"][data["y_full"] == c] for c in range(n_classes)]
        return data


def subsample_rows(
    X: np.ndarray, y: np.ndarray, max_samples: int | None, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_samples`` rows, stratified by class (a budget knob; None keeps all)."""
    if max_samples is None or max_samples >= y.shape[0]:
        return X, y
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(
        np.arange(y.shape[0]), train_size=int(max_samples), random_state=seed, stratify=y
    )
    keep = np.sort(keep)
    return X[keep], y[keep]


def pick(data: dict[str, Any], evaluate_on: str) -> tuple[np.ndarray, ...]:
    """(X_fit, y_fit, X_eval, y_eval): train/validation, or full training set/test."""
    if evaluate_on == "validation":
        return data["X_train"], data["y_train"], data["X_val"], data["y_val"]
    if evaluate_on == "test":
        return data["X_full"], data["y_full"], data["X_test"], data["y_test"]
    raise ValueError(f"evaluate_on must be 'validation' or 'test', got {evaluate_on!r}")


def accuracy_metrics(y_true: np.ndarray, y_pred: np.ndarray, evaluate_on: str) -> dict[str, float]:
    """``val_accuracy`` (or ``test_accuracy``) plus the counts a confidence interval needs."""
    prefix = "val" if evaluate_on == "validation" else "test"
    correct = int((np.asarray(y_true) == np.asarray(y_pred)).sum())
    n = int(np.asarray(y_true).shape[0])
    return {f"{prefix}_accuracy": correct / n, f"{prefix}_correct": correct, f"{prefix}_n": n}


PREDICTIONS = "test_predictions.npz"


def predictions_artifact(
    y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, score_kind: str
) -> dict[str, str]:
    """The test set's labels, predictions and per-class scores as a returned artifact.

    ``final_table.py`` draws the confusion matrices and ROC curves from it, so the figures
    come from the knowledge center, not from a second evaluation. ``scores`` is (N, classes),
    higher meaning more likely (probabilities, decision values or negative reconstruction
    errors; ``score_kind`` says which). A few hundred kB at full size (16,000 stations).
    """
    folder = Path(tempfile.mkdtemp(prefix="cosmic-pred-"))
    np.savez_compressed(
        folder / PREDICTIONS,
        y_true=np.asarray(y_true, dtype=np.int8),
        y_pred=np.asarray(y_pred, dtype=np.int8),
        scores=np.asarray(scores, dtype=np.float32),
        score_kind=np.array(score_kind),
    )
    return {PREDICTIONS: str(folder / PREDICTIONS)}


if __name__ == "__main__":
    d = UnifiedLoader.load_data()
    print({k: getattr(v, "shape", v) for k, v in d.items()})
