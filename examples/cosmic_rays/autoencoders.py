"""The autoencoder classifiers of the thesis (sections 7.3.3-7.3.5), in PyTorch (CPU).

One autoencoder per primary is trained on that primary's stations only; a station is assigned
to the class whose autoencoder reconstructs it with the lowest error (mean squared error over
the nine standardised features).

The per-class networks are independent (own weights, own optimiser state, own data), but
they are stored as stacked tensors (one slice per class) and trained in lock-step, one
mini-batch of each class per step: the maths is that of four separate networks (the loss is a
sum of per-class terms, Adam and SGD update element-wise), at a quarter of the Python
overhead. The data are standardised, so decoders end with a linear layer (the thesis's
min-max-scaled data allowed a sigmoid).

What the thesis's Keras code did, and its PyTorch form here:

* denoising: dropout with probability ``ps`` on the input, training only;
* tied weights: decoder layer i uses the transpose of encoder layer i (own biases);
* ``UnitNorm`` (Keras ``UnitNorm(axis=0)`` kernel constraint): after every step each code
  unit's incoming weight vector is rescaled to length 1;
* weight orthogonality (thesis Listing 7.5, a Keras kernel regulariser): a penalty
  ``weightage * ||W^T W - I||_F`` per encoder layer is added to the loss;
* OneCycle: ``torch.optim.lr_scheduler.OneCycleLR`` with ``max_lr = lr`` over all steps;
* VAE: reparameterisation ``z = mu + exp(logvar / 2) * eps`` and the loss
  ``input_dim * MSE + KL`` (thesis Listing 7.7); classification uses ``z = mu``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

Result = dict[str, float] | tuple[dict[str, float], dict[str, str]]  # metrics[, artifacts]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "selu": torch.selu,
    "elu": nn.functional.elu,
    "tanh": torch.tanh,
    "linear": lambda x: x,
}


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None


def _glorot(n_classes: int, fan_in: int, fan_out: int) -> nn.Parameter:
    # Keras's default Dense initialiser, one independent draw per class.
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return nn.Parameter(torch.empty(n_classes, fan_in, fan_out).uniform_(-bound, bound))


def _bias(n_classes: int, size: int) -> nn.Parameter:
    return nn.Parameter(torch.zeros(n_classes, 1, size))


class StackedAutoencoders(nn.Module):
    """``n_classes`` symmetric denoising autoencoders ``d -> dims[0] -> ... -> dims[-1] -> ... -> d``.

    ``dims`` is the encoder including the code (thesis: ``encoding_dim = [9, 9, 7]`` means
    Input + Dense(9) + Dense(9) + Dense(7) + Dense(9) + Dense(9) + Output). Autoencoder v1 is
    the case ``len(dims) == 1``. Inputs and outputs have shape ``(n_classes, batch, d)``.
    """

    def __init__(
        self,
        n_classes: int,
        input_dim: int,
        dims: list[int],
        *,
        activation: str = "relu",
        tied_weights: bool = False,
        ps: float = 0.0,
        unit_norm_constraint: bool = False,
        weight_orthogonality: bool = False,
        orthogonality_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if not dims or any(int(u) < 1 for u in dims):
            raise ValueError(f"encoding dimensions must be positive integers, got {dims!r}")
        sizes = [input_dim, *(int(u) for u in dims)]
        self.act = _activation(activation)
        self.ps = float(ps)
        self.tied = bool(tied_weights)
        self.unit_norm = bool(unit_norm_constraint)
        self.orthogonality = bool(weight_orthogonality)
        self.orthogonality_weight = float(orthogonality_weight)
        pairs = list(itertools.pairwise(sizes))
        self.enc_w = nn.ParameterList([_glorot(n_classes, i, o) for i, o in pairs])
        self.enc_b = nn.ParameterList([_bias(n_classes, o) for _, o in pairs])
        # decoder layer j mirrors encoder layer L-1-j: out -> in
        self.dec_w = nn.ParameterList(
            [] if self.tied else [_glorot(n_classes, o, i) for i, o in reversed(pairs)]
        )
        self.dec_b = nn.ParameterList([_bias(n_classes, i) for i, _ in reversed(pairs)])
        if self.unit_norm:
            self.apply_constraints()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.dropout(x, self.ps, self.training) if self.ps > 0 else x
        for w, b in zip(self.enc_w, self.enc_b, strict=True):
            h = self.act(torch.baddbmm(b, h, w))
        n = len(self.enc_w)
        for j in range(n):
            w = self.enc_w[n - 1 - j].transpose(1, 2) if self.tied else self.dec_w[j]
            h = torch.baddbmm(self.dec_b[j], h, w)
            if j < n - 1:
                h = self.act(h)
        return h

    def penalty(self) -> torch.Tensor:
        """The weight-orthogonality regulariser (zero when switched off)."""
        if not self.orthogonality:
            return torch.zeros(())
        total = torch.zeros(())
        for w in self.enc_w:
            k = w.shape[2]
            m = torch.bmm(w.transpose(1, 2), w) - torch.eye(k)
            total = total + self.orthogonality_weight * m.square().sum(dim=(1, 2)).sqrt().sum()
        return total

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """UnitNorm: every unit's incoming weight vector back to length 1."""
        if self.unit_norm:
            for w in self.enc_w:
                w.div_(w.norm(dim=1, keepdim=True).clamp_min(1e-7))

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over classes of each class's mean squared error on its own batch."""
        return (self(x) - x).square().mean(dim=(1, 2)).sum()

    @torch.no_grad()
    def errors(self, X: torch.Tensor) -> torch.Tensor:
        """Reconstruction error of every station by every class's autoencoder: (N, n_classes)."""
        xs = X.unsqueeze(0).expand(len(self.enc_b[0]), -1, -1)
        return (self(xs) - xs).square().mean(dim=2).T


class VariationalAutoencoders(nn.Module):
    """``n_classes`` VAEs ``d -> hidden -> (mu, logvar) in R^latent -> hidden -> d`` (thesis Fig. 7.4)."""

    def __init__(
        self, n_classes: int, input_dim: int, hidden: int, latent: int, *, activation: str = "relu"
    ) -> None:
        super().__init__()
        self.act = _activation(activation)
        self.input_dim = input_dim
        c = n_classes
        self.w1, self.b1 = _glorot(c, input_dim, hidden), _bias(c, hidden)
        self.w_mu, self.b_mu = _glorot(c, hidden, latent), _bias(c, latent)
        self.w_lv, self.b_lv = _glorot(c, hidden, latent), _bias(c, latent)
        self.w2, self.b2 = _glorot(c, latent, hidden), _bias(c, hidden)
        self.w3, self.b3 = _glorot(c, hidden, input_dim), _bias(c, input_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.act(torch.baddbmm(self.b1, x, self.w1))
        return torch.baddbmm(self.b_mu, h, self.w_mu), torch.baddbmm(self.b_lv, h, self.w_lv)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.act(torch.baddbmm(self.b2, z, self.w2))
        return torch.baddbmm(self.b3, h, self.w3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encode(x)
        return self.decode(mu)

    def penalty(self) -> torch.Tensor:
        return torch.zeros(())

    def apply_constraints(self) -> None:
        return None

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per class: mean over the batch of ``input_dim * MSE + KL``; summed over classes."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = (self.decode(z) - x).square().mean(dim=2) * self.input_dim
        kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(dim=2)
        return (recon + kl).mean(dim=1).sum()

    @torch.no_grad()
    def errors(self, X: torch.Tensor) -> torch.Tensor:
        xs = X.unsqueeze(0).expand(self.w1.shape[0], -1, -1)
        return (self(xs) - xs).square().mean(dim=2).T


def per_class_split(
    data: dict[str, Any], evaluate_on: str, max_train_samples: int | None, seed: int = 1234
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Per-class training arrays (at most max_train_samples in all) and the evaluation set."""
    if evaluate_on == "validation":
        by_class, X_eval, y_eval = data["X_train_by_class"], data["X_val"], data["y_val"]
    elif evaluate_on == "test":
        by_class, X_eval, y_eval = data["X_full_by_class"], data["X_test"], data["y_test"]
    else:
        raise ValueError(f"evaluate_on must be 'validation' or 'test', got {evaluate_on!r}")
    if max_train_samples is not None:
        per_class = max(1, int(max_train_samples) // len(by_class))
        rng = np.random.default_rng(seed)
        by_class = [
            x if x.shape[0] <= per_class else x[np.sort(rng.choice(x.shape[0], per_class, False))]
            for x in by_class
        ]
    return by_class, X_eval, y_eval


def _optimizer(name: str, params: Any, lr: float) -> torch.optim.Optimizer:
    key = name.lower()
    if key == "adam":
        return torch.optim.Adam(params, lr=lr)
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")


def train_and_classify(
    model: nn.Module,
    X_by_class: list[np.ndarray],
    X_eval: np.ndarray,
    y_eval: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str = "adam",
    one_cycle: bool = False,
    evaluate_every_epoch: bool = True,
    metrics_of: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    seed: int = 1234,
    on_scores: Callable[[np.ndarray], None] | None = None,
) -> Iterator[dict[str, float]]:
    """Train every class's network on its own stations; yield metrics once per epoch.

    Each epoch draws ``ceil(max_c n_c / batch_size)`` steps; every step takes one mini-batch
    per class (classes with fewer stations wrap around their shuffled order). With
    ``evaluate_every_epoch`` the epoch's metrics include the classification of ``X_eval``
    (the validation set, for the pruner and the learning curve); otherwise only the training
    loss is yielded and ``X_eval`` is classified once, at the end (the test set).
    The generator returns the final metrics. ``on_scores`` receives the last classification's
    per-class scores (negative reconstruction errors, (N, classes)).
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    gen = np.random.default_rng(seed)
    # copies: the shared arrays of a group are read-only
    data = [torch.tensor(np.asarray(x), dtype=torch.float32) for x in X_by_class]
    sizes = [d.shape[0] for d in data]
    if min(sizes) < 1:
        raise ValueError(f"every class needs training stations, got sizes {sizes}")
    bs = min(batch_size, max(sizes))
    steps = math.ceil(max(sizes) / bs)
    X_eval_t = torch.tensor(np.asarray(X_eval), dtype=torch.float32)
    opt = _optimizer(optimizer, model.parameters(), lr)
    sched = (
        torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
        if one_cycle
        else None
    )

    def classify() -> dict[str, float]:
        model.eval()
        errors = model.errors(X_eval_t).numpy()
        model.train()
        if on_scores is not None:
            on_scores(-errors)
        return metrics_of(y_eval, errors.argmin(axis=1))

    t0 = time.perf_counter()
    model.train()
    last: dict[str, float] = {}
    for epoch in range(epochs):
        order = [
            torch.as_tensor(np.resize(gen.permutation(n), steps * bs), dtype=torch.long)
            for n in sizes
        ]
        total = 0.0
        for s in range(steps):
            batch = torch.stack(
                [d[o[s * bs : (s + 1) * bs]] for d, o in zip(data, order, strict=True)]
            )
            opt.zero_grad(set_to_none=True)
            loss = model.reconstruction_loss(batch) + model.penalty()
            loss.backward()
            opt.step()
            model.apply_constraints()
            if sched is not None:
                sched.step()
            total += float(loss.detach())
        train_loss = total / steps / len(data)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"the training loss diverged at epoch {epoch}: {train_loss}")
        last = {"train_loss": train_loss}
        if evaluate_every_epoch:
            last.update(classify())
        yield last
    final = dict(last) if evaluate_every_epoch else {"train_loss": last["train_loss"]}
    if not evaluate_every_epoch:
        final.update(classify())
    final["fit_time_s"] = time.perf_counter() - t0
    return final


def search_trial(
    build: Callable[[int, int], nn.Module],
    *,
    evaluate_on: str,
    max_train_samples: int | None,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    one_cycle: bool,
    describe: str = "",
) -> Generator[dict[str, float], None, Result]:
    """One trial of an autoencoder search, shared by the three job scripts.

    Seeds torch and numpy, takes the per-class data of the group's DataLoader, builds the model
    with ``build(n_classes, n_features)`` and trains it, yielding each epoch's metrics (the
    validation accuracy the pruner sees); prints ``describe`` with the final metrics and
    returns them, with the test predictions as an artifact when ``evaluate_on`` is ``test``.
    """
    from data import SEED, PerClassLoader, accuracy_metrics, predictions_artifact

    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(1)
    data = PerClassLoader.load_data()
    by_class, X_eval, y_eval = per_class_split(data, evaluate_on, max_train_samples)
    scores: list[np.ndarray] = []
    final = yield from train_and_classify(
        build(len(by_class), X_eval.shape[1]),
        by_class,
        X_eval,
        y_eval,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        one_cycle=one_cycle,
        evaluate_every_epoch=evaluate_on == "validation",
        metrics_of=lambda y, p: accuracy_metrics(y, p, evaluate_on),
        seed=SEED,
        on_scores=scores.append if evaluate_on == "test" else None,
    )
    print(f"{describe}: {final}")
    if evaluate_on == "test":  # the final table's figures
        return final, predictions_artifact(
            y_eval, scores[-1].argmax(axis=1), scores[-1], "negative reconstruction error"
        )
    return final
