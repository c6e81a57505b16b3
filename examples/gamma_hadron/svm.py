"""SVM on the MAGIC gamma/hadron data: Nystroem kernel approximation + LinearSVC.

The cosmic-ray example's (and the thesis's) SVM search on a real data set.
``ml-experiment run examples/gamma_hadron/svm.yaml``; ``evaluate_on: test`` fits on the whole
training set and scores the test set once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magic import SEED, MagicLoader, binary_metrics, pick
from sklearn.kernel_approximation import Nystroem
from sklearn.svm import LinearSVC

from ml_experiment import job


@job(data_loader=MagicLoader)
def main(
    C: float = 1.0,
    kernel: str = "rbf",
    degree: int = 3,
    gamma: Any = "scale",
    n_components: int = 100,
    max_iter: int = 1000,
    evaluate_on: str = "validation",
) -> dict[str, float]:
    np.random.seed(SEED)
    X_fit, y_fit, X_eval, y_eval = pick(MagicLoader.load_data(), evaluate_on)
    if isinstance(gamma, str):
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
    model = LinearSVC(C=C, max_iter=max_iter, random_state=SEED).fit(X_fit, y_fit)
    score = model.decision_function(X_eval)
    metrics = binary_metrics(y_eval, model.predict(X_eval), score, evaluate_on)
    print(f"C={C:.4g} kernel={kernel} degree={degree} gamma={gamma:.4g}: {metrics}")
    return metrics


if __name__ == "__main__":
    main()
