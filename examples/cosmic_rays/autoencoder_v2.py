"""Autoencoder v2 (thesis section 7.3.4): stacked denoising autoencoders per primary, OneCycle.

2-4 layers of 2-20 units on each side of the code (``encoding_dim`` is the encoder including
the code, mirrored by the decoder), input dropout ``ps``, tied weights, UnitNorm and
orthogonality options, and an optional OneCycle learning-rate policy peaking at ``lr``.
Run the thesis's search (90 trials, 200 epochs, TPE):
``ml-experiment run examples/cosmic_rays/autoencoder_v2.yaml``.

The job file searches ``n_layers`` in range(2, 5) and four layer widths; the first
``n_layers`` widths are used (a fixed-length list keeps the space expressible in the job
file). Called with ``n_layers: null``, the whole ``encoding_dim`` list is the encoder.
"""

from __future__ import annotations

from collections.abc import Generator

from autoencoders import Result, StackedAutoencoders, search_trial

from data import PerClassLoader
from ml_experiment import job


@job(data_loader=PerClassLoader)
def main(
    encoding_dim: list[int] | None = None,
    n_layers: int | None = None,
    ps: float = 0.0,
    lr: float = 0.001,
    activation: str = "selu",
    tied_weights: bool = True,
    one_cycle: bool = True,
    unit_norm_constraint: bool = False,
    weight_orthogonality: bool = False,
    orthogonality_weight: float = 1.0,
    optimizer: str = "adam",
    max_epochs: int = 200,
    batch_size: int = 256,
    max_train_samples: int | None = None,
    evaluate_on: str = "validation",
) -> Generator[dict[str, float], None, Result]:
    dims = [int(u) for u in (encoding_dim or [9, 9, 7])]
    if n_layers is not None:
        if not 1 <= n_layers <= len(dims):
            raise ValueError(f"n_layers must be in 1..{len(dims)}, got {n_layers}")
        dims = dims[:n_layers]
    return (
        yield from search_trial(
            lambda n_classes, n_features: StackedAutoencoders(
                n_classes,
                n_features,
                dims,
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
            describe=f"layers={dims} ps={ps:.3g} lr={lr:.3g} {activation} one_cycle={one_cycle}",
        )
    )


if __name__ == "__main__":
    main()
