"""Variational autoencoder per primary (thesis section 7.3.5): reparameterisation, MSE + KL.

Input -> Dense(encoding_dim) -> (mu, log var) in R^latent_dim -> Dense(encoding_dim) -> Output,
one VAE per class; a station goes to the class whose VAE (decoding z = mu) reconstructs it
best. Run the thesis's search (50 trials, 200 epochs, TPE):
``ml-experiment run examples/cosmic_rays/vae.yaml``.

The thesis searched only encoding_dim, latent_dim, activation and one_cycle; the learning
rate and optimiser are fixed parameters here (Adam, 1e-3: the thesis's SGD at 1e-4 hardly
moves in 200 epochs).
"""

from __future__ import annotations

from collections.abc import Generator

from autoencoders import Result, VariationalAutoencoders, search_trial

from data import PerClassLoader
from ml_experiment import job


@job(data_loader=PerClassLoader)
def main(
    encoding_dim: int = 13,
    latent_dim: int = 3,
    activation: str = "selu",
    one_cycle: bool = True,
    lr: float = 0.001,
    optimizer: str = "adam",
    max_epochs: int = 200,
    batch_size: int = 256,
    max_train_samples: int | None = None,
    evaluate_on: str = "validation",
) -> Generator[dict[str, float], None, Result]:
    return (
        yield from search_trial(
            lambda n_classes, n_features: VariationalAutoencoders(
                n_classes, n_features, encoding_dim, latent_dim, activation=activation
            ),
            evaluate_on=evaluate_on,
            max_train_samples=max_train_samples,
            epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            one_cycle=one_cycle,
            describe=f"encoding_dim={encoding_dim} latent_dim={latent_dim} {activation}",
        )
    )


if __name__ == "__main__":
    main()
