"""SVM: Nystroem kernel approximation + LinearSVC (thesis section 7.3.1, Listing 7.3).

Run the thesis's search (50 trials, TPE): ``ml-experiment run examples/cosmic_rays/svm.yaml``.
``evaluate_on: test`` fits on the whole training set and scores the test set once (the final
table does that with the best trial's parameters).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.kernel_approximation import Nystroem
from sklearn.svm import LinearSVC

from data import SEED, UnifiedLoader, accuracy_metrics, pick, predictions_artifact, subsample_rows
from ml_experiment import job


@job(data_loader=UnifiedLoader)
def main(
    C: float = 1.0,
    kernel: str = "rbf",
    degree: int = 3,
    gamma: Any = "scale",
    n_components: int = 100,
    max_iter: int = 1000,
    max_train_samples: int | None = None,
    evaluate_on: str = "validation",
) -> dict[str, float] | tuple[dict[str, float], dict[str, str]]:
    np.random.seed(SEED)
    data = UnifiedLoader.load_data()
    X_fit, y_fit, X_eval, y_eval = pick(data, evaluate_on)
    X_fit, y_fit = subsample_rows(X_fit, y_fit, max_train_samples)
    t0 = time.perf_counter()
    if isinstance(gamma, str):
        # as in the thesis (and sklearn's SVC): 'scale' uses the data's variance
        gamma = 1.0 / (X_fit.shape[1] * X_fit.var()) if gamma == "scale" else 1.0 / X_fit.shape[1]
    if kernel != "linear":
        feature_map = Nystroem(
            kernel=kernel,
            gamma=gamma,
            degree=degree if kernel == "poly" else None,
            n_components=n_components,
            random_state=SEED,
        )
        X_fit = feature_map.fit_transform(X_fit)
        X_eval = feature_map.transform(X_eval)
    model = LinearSVC(C=C, max_iter=max_iter, random_state=SEED)
    model.fit(X_fit, y_fit)
    scores = model.decision_function(X_eval)
    pred = model.classes_[scores.argmax(axis=1)]
    metrics = accuracy_metrics(y_eval, pred, evaluate_on)
    metrics["fit_time_s"] = time.perf_counter() - t0
    print(f"C={C:.4g} kernel={kernel} degree={degree} gamma={gamma}: {metrics}")
    if evaluate_on == "test":  # the final table's figures
        return metrics, predictions_artifact(y_eval, pred, scores, "decision value")
    return metrics


if __name__ == "__main__":
    main()
