"""The figures of RESULTS.md (into figures/), drawn from what the final runs logged (matplotlib, Agg).

Each retraining (``evaluate_on: test``) logs ``test_predictions.npz`` (labels, predictions,
per-class scores, see ``data.predictions_artifact``); ``final_table.py`` downloads it and calls
the functions here. Nothing is evaluated again: a figure shows the run it names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ("proton", "helium", "oxygen", "iron")  # the simulator's labels 0-3


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 4) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return m


def roc_curve(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(false-positive rate, true-positive rate, AUC) of one class against the rest.

    Ties in ``score`` make one step (no order is invented among equal scores); the AUC is the
    trapezoid area, which equals the Mann-Whitney probability with ties counted as one half.
    """
    truth = np.asarray(truth, dtype=bool)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="mergesort")
    s, t = np.asarray(score)[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(s)), t.size - 1]  # the last index of each score value
    tp, fp = np.cumsum(t)[last], np.cumsum(~t)[last]
    pos, neg = max(int(t.sum()), 1), max(int((~t).sum()), 1)
    tpr, fpr = np.r_[0.0, tp / pos], np.r_[0.0, fp / neg]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def draw_confusion(pred: dict[str, np.ndarray], title: str, path: Path) -> None:
    """Counts and row-normalised confusion matrix side by side."""
    plt = _pyplot()
    m = confusion(pred["y_true"], pred["y_pred"], len(CLASSES))
    rows = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    for ax, values, fmt, what in (
        (axes[0], m, "d", "counts"),
        (axes[1], rows, ".2f", "row-normalised"),
    ):
        ax.imshow(values, cmap="Blues", vmin=0, vmax=values.max() or 1)
        for i in range(len(CLASSES)):
            for j in range(len(CLASSES)):
                dark = values[i, j] > 0.6 * (values.max() or 1)
                ax.text(j, i, format(values[i, j], fmt), ha="center", va="center",
                        color="white" if dark else "black", fontsize=9)  # fmt: skip
        ax.set_xticks(range(len(CLASSES)), CLASSES)
        ax.set_yticks(range(len(CLASSES)), CLASSES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(what)
    acc = float(np.trace(m) / max(m.sum(), 1))
    fig.suptitle(f"{title}: test accuracy {acc:.4f} ({m.sum()} stations)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_roc(pred: dict[str, np.ndarray], title: str, path: Path) -> dict[str, float]:
    """One-vs-rest ROC curve per class, AUC in the legend; returns the AUCs."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.4, 5))
    aucs = {}
    for c, name in enumerate(CLASSES):
        fpr, tpr, auc = roc_curve(pred["y_true"] == c, pred["scores"][:, c])
        aucs[name] = auc
        ax.plot(fpr, tpr, label=f"{name} vs rest (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(f"{title}\nscore: {pred['score_kind']}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return aucs


def draw_leakage(
    points: Sequence[tuple[str, str, float, float, float]], chance: float, path: Path
) -> None:
    """Test accuracy with its 99 % Wilson interval per model and data variant.

    ``points``: (model label, variant, accuracy, interval low, interval high); the variants
    of one model sit side by side, so the drop from the random to the grouped split shows.
    """
    plt = _pyplot()
    models = list(dict.fromkeys(p[0] for p in points))
    variants = list(dict.fromkeys(p[1] for p in points))
    width = 0.8 / max(len(variants), 1)
    fig, ax = plt.subplots(figsize=(1.9 * len(models) + 2.5, 4.6))
    for k, variant in enumerate(variants):
        xs, ys, err = [], [], [[], []]
        for model, v, acc, lo, hi in points:
            if v == variant:
                xs.append(models.index(model) + (k - (len(variants) - 1) / 2) * width)
                ys.append(acc)
                err[0].append(acc - lo)
                err[1].append(hi - acc)
        ax.bar(xs, ys, width=width * 0.9, label=variant, alpha=0.85)
        ax.errorbar(xs, ys, yerr=err, fmt="none", color="black", capsize=3, linewidth=1)
        for x, y in zip(xs, ys, strict=True):
            ax.text(x, y + 0.015, f"{y:.3f}", ha="center", fontsize=7)
    ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(range(len(models)), models)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy (99 % Wilson interval)")
    ax.set_title("The same models on the random station split and on showers held out")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
