"""Linear probing: logistic regression on frozen features (as in LP-FT, arXiv 2202.10054).

Follows ``AnanyaKumar/transfer_learning`` (``log_reg_sk.py``): features are normalised by one
scalar mean and standard deviation over the whole training matrix; scikit-learn's
``LogisticRegression(warm_start=True, max_iter=200)`` is swept over ``C`` in
``logspace(-7, 2, 50)``; the ``C`` with the best ID val accuracy is kept; the weights are mapped
back to raw features. Only the head is learned.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from shiftlab.config import param
from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.models.classifier import Predictor, linear_head
from shiftlab.progress import progress
from shiftlab.registry import FINETUNE


@dataclass
class LinearProbeConfig:
    """The regularisation sweep of the logistic-regression probe."""

    c_min_exp: float = param(-7.0, "smallest C is 10**c_min_exp")
    c_max_exp: float = param(2.0, "largest C is 10**c_max_exp")
    num_c: int = param(50, "number of C values, log-spaced")
    max_iter: int = param(200, "L-BFGS iterations per fit")

    def __post_init__(self) -> None:
        if self.num_c < 1 or self.c_min_exp > self.c_max_exp:
            raise ConfigError("linear probe needs num_c >= 1 and c_min_exp <= c_max_exp")


@dataclass
class ProbeResult:
    """A fitted probe: head weights on raw features, the chosen C and its ID val accuracy."""

    weight: torch.Tensor  # (K, D)
    bias: torch.Tensor  # (K,)
    c: float
    val_accuracy: float


def fit_linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    cfg: LinearProbeConfig,
    seed: int,
) -> ProbeResult:
    """Sweep C, keep the best on ID val, return the head for un-normalised features.

    Args:
        train_x: (N, D) training features. train_y: (N,) labels.
        val_x: (M, D) validation features. val_y: (M,) labels.
    """
    mean, std = float(train_x.mean()), float(train_x.std()) or 1.0
    scale = lambda x: (x - mean) / std  # noqa: E731
    xs, vs = scale(train_x), scale(val_x)
    model = LogisticRegression(warm_start=True, max_iter=cfg.max_iter, random_state=seed)
    best: tuple[float, float, np.ndarray, np.ndarray] | None = None
    cs = np.logspace(cfg.c_min_exp, cfg.c_max_exp, cfg.num_c)
    with warnings.catch_warnings(), progress("linear probe: C sweep", len(cs), "fits") as advance:
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in cs:
            model.set_params(C=c)
            model.fit(xs, train_y)
            accuracy = float((model.predict(vs) == val_y).mean())
            if best is None or accuracy > best[1]:
                best = (float(c), accuracy, model.coef_.copy(), model.intercept_.copy())
            advance(1)
    assert best is not None
    c, accuracy, coef, intercept = best
    classes = model.classes_
    if len(classes) == 2:  # sklearn's binary head scores class 1 only; split it symmetrically
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    weight = np.zeros((num_classes, train_x.shape[1]))
    bias = np.zeros(num_classes)
    weight[classes] = coef / std  # classes absent from training keep zero rows
    bias[classes] = intercept - coef.sum(axis=1) * mean / std
    return ProbeResult(
        torch.tensor(weight, dtype=torch.float32),
        torch.tensor(bias, dtype=torch.float32),
        c,
        accuracy,
    )


def probe_pretrained(ctx: RecipeContext, cfg: LinearProbeConfig) -> ProbeResult:
    """Fit the probe on the pretrained featurizer's cached train and ID val features."""
    bench = ctx.benchmark
    return fit_linear_probe(
        ctx.features(bench.train).numpy(),
        bench.train.labels,
        ctx.features(bench.val).numpy(),
        bench.val.labels,
        bench.num_classes,
        cfg,
        ctx.seed,
    )


@FINETUNE.register("linear_probe", config=LinearProbeConfig)
def linear_probe(ctx: RecipeContext, cfg: LinearProbeConfig) -> Iterator[Predictor]:
    """Logistic regression on frozen features, C chosen on ID val; only the head is learned."""
    probe = probe_pretrained(ctx, cfg)
    head = linear_head(probe.weight, probe.bias)
    yield Predictor(ctx.name, "linear_probe", ctx.head_only(head), params={"C": probe.c})
