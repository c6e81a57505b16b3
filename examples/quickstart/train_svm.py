"""The thesis quickstart: an SVM on iris, instrumented with one decorator."""

import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from ml_experiment import job

SEED = 1234


@job
def main(C: float = 1.0, kernel: str = "rbf", degree: int = 3, gamma: str = "scale"):
    np.random.seed(SEED)
    iris = load_iris()
    X_train, X_val, y_train, y_val = train_test_split(
        iris.data, iris.target, test_size=0.5, random_state=SEED
    )
    model = SVC(C=C, gamma=gamma, kernel=kernel, degree=degree)
    model.fit(X_train, y_train)
    accuracy = model.score(X_val, y_val)
    print(f"C={C} kernel={kernel} degree={degree} gamma={gamma}: val_accuracy={accuracy:.4f}")
    return {"val_accuracy": accuracy}


if __name__ == "__main__":
    main()
