"""Autoencoder v1 (thesis section 7.3.3): one denoising autoencoder per primary, one code layer.

Input dropout ``ps``, optional tied weights, UnitNorm and weight-orthogonality constraints,
relu or selu; a station goes to the class whose autoencoder reconstructs it best. Run the
thesis's search (100 trials, 200 epochs, TPE): ``ml-experiment run examples/cosmic_rays/autoencoder_v1.yaml``.
Every epoch yields the validation accuracy (a step in the knowledge center, and the value the
pruner sees). ``evaluate_on: test`` trains on the whole training set and classifies the test
set once, after the last epoch.
"""

from __future__ import annotations

from collections.abc import Generator

from autoencoders import Result, StackedAutoencoders, search_trial

from data import PerClassLoader
from ml_experiment import job


@job(data_loader=PerClassLoader)
def main(
    encoding_dim: int = 10,
    ps: float = 0.0,
    lr: float = 0.001,
    activation: str = "selu",
    tied_weights: bool = True,
    unit_norm_constraint: bool = False,
    weight_orthogonality: bool = False,
    orthogonality_weight: float = 1.0,
    one_cycle: bool = False,
    optimizer: str = "adam",
    max_epochs: int = 200,
    batch_size: int = 256,
    max_train_samples: int | None = None,
    evaluate_on: str = "validation",
) -> Generator[dict[str, float], None, Result]:
    return (
        yield from search_trial(
            lambda n_classes, n_features: StackedAutoencoders(
                n_classes,
                n_features,
                [encoding_dim],
                activation=activation,
                tied_weights=tied_weights,
                ps=ps,
                unit_norm_constraint=unit_norm_constraint,
                weight_orthogonality=weight_orthogonality,
                orthogonality_weight=orthogonality_weight,
            ),
            evaluate_on=evaluate_on,
            max_train_samples=max_train_samples,
            epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            one_cycle=one_cycle,
            describe=f"encoding_dim={encoding_dim} ps={ps:.3g} lr={lr:.3g} {activation}",
        )
    )


if __name__ == "__main__":
    main()
