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
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.models.classifier import STANDARD, Predictor, linear_head
from shiftlab.progress import progress
from shiftlab.registry import FINETUNE
from shiftlab.typed import param


@dataclass
class LinearProbeOptions:
    """The regularisation sweep of the logistic-regression probe."""

    c_min_exp: float = param(-7.0, "smallest C is 10**c_min_exp", within="[-20, 20]")
    c_max_exp: float = param(2.0, "largest C is 10**c_max_exp", within="[-20, 20]")
    num_c: int = param(50, "number of C values, log-spaced", within="[1, inf)")
    max_iter: int = param(200, "L-BFGS iterations per fit", within="[1, inf)")
    trend_points: int = param(
        8,
        "probes at other C (ID val accuracy at least halfway from chance to the best) also "
        "scored, as extra baseline points of the effective-robustness line; 0 for none",
        within="[0, inf)",
    )

    def __post_init__(self) -> None:
        if self.num_c < 1 or self.c_min_exp > self.c_max_exp:
            raise ConfigError("linear probe needs num_c >= 1 and c_min_exp <= c_max_exp")
        if self.trend_points < 0:
            raise ConfigError("linear probe trend_points must be >= 0")


@dataclass
class ProbeResult:
    """A fitted probe: head weights on raw features, the chosen C and its ID val accuracy;
    ``sweep`` holds every C's probe as ``(C, ID val accuracy, weight, bias)``."""

    weight: torch.Tensor  # (K, D)
    bias: torch.Tensor  # (K,)
    c: float
    val_accuracy: float
    sweep: list[tuple[float, float, torch.Tensor, torch.Tensor]] = field(default_factory=list)


def _raw_head(
    coef: np.ndarray,
    intercept: np.ndarray,
    classes: np.ndarray,
    shape: tuple[int, int],
    mean: float,
    std: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's head on normalised features -> weight (K, D) and bias (K,) on raw features."""
    if len(classes) == 2:  # sklearn's binary head scores class 1 only; split it symmetrically
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    weight, bias = np.zeros(shape), np.zeros(shape[0])
    weight[classes] = coef / std  # classes absent from training keep zero rows
    bias[classes] = intercept - coef.sum(axis=1) * mean / std
    return torch.tensor(weight, dtype=torch.float32), torch.tensor(bias, dtype=torch.float32)


def fit_linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    cfg: LinearProbeOptions,
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
    shape = (num_classes, train_x.shape[1])
    sweep = []
    cs = np.logspace(cfg.c_min_exp, cfg.c_max_exp, cfg.num_c)
    with warnings.catch_warnings(), progress("linear probe: C sweep", len(cs), "fits") as advance:
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in cs:
            model.set_params(C=c)
            model.fit(xs, train_y)
            accuracy = float((model.predict(vs) == val_y).mean())
            weight, bias = _raw_head(
                model.coef_, model.intercept_, model.classes_, shape, mean, std
            )
            sweep.append((float(c), accuracy, weight, bias))
            advance(1)
    # The first C with the best accuracy (the most regularised), as the reference's strict >.
    c, accuracy, weight, bias = max(sweep, key=lambda point: point[1])
    return ProbeResult(weight, bias, c, accuracy, sweep)


def trend_probes(
    result: ProbeResult, val_y: np.ndarray, count: int
) -> list[tuple[float, float, torch.Tensor, torch.Tensor]]:
    """Up to ``count`` probes of the sweep at other C, evenly spaced in C among those whose ID
    val accuracy is at least halfway from a constant prediction's to the best probe's (probes
    regularised down to the class prior say nothing of the trend)."""
    chance = float(np.bincount(val_y).max() / len(val_y))
    floor = chance + 0.5 * (result.val_accuracy - chance)
    useful = [p for p in result.sweep if p[1] >= floor and p[1] > chance and p[0] != result.c]
    if count == 0 or not useful:
        return []
    picks = np.unique(np.round(np.linspace(0, len(useful) - 1, min(count, len(useful)))))
    return [useful[int(i)] for i in picks]


_fitted: dict[str, ProbeResult] = {}  # the last few probes, by what determines them


def probe_pretrained(ctx: RecipeContext, cfg: LinearProbeOptions) -> ProbeResult:
    """Fit the probe on the pretrained featurizer's cached train and ID val features. The same
    probe (features, labels, options, seed) is fitted once per process: linear_probe and
    lp_ft's first stage share it."""
    bench = ctx.benchmark
    key = repr(
        (ctx.backbone.fingerprint, bench.train.fingerprint, bench.val.fingerprint, cfg, ctx.seed)
    )
    if key not in _fitted:
        if len(_fitted) >= 4:
            _fitted.pop(next(iter(_fitted)))
        _fitted[key] = fit_linear_probe(
            ctx.features(bench.train).numpy(),
            bench.train.labels,
            ctx.features(bench.val).numpy(),
            bench.val.labels,
            bench.num_classes,
            cfg,
            ctx.seed,
        )
    return _fitted[key]


@FINETUNE.register(
    "linear_probe", options=LinearProbeOptions, kinds=("encoder",), fast={"num_c": 3}
)
def linear_probe(ctx: RecipeContext, cfg: LinearProbeOptions) -> Iterator[Predictor]:
    """Logistic regression on frozen features, C chosen on ID val; only the head is learned."""
    probe = probe_pretrained(ctx, cfg)
    head = linear_head(probe.weight, probe.bias)
    yield Predictor(
        ctx.name, "linear_probe", ctx.head_only(head), params={"C": probe.c}, info=STANDARD
    )
    for c, _, weight, bias in trend_probes(probe, ctx.benchmark.val.labels, cfg.trend_points):
        yield Predictor(
            f"{ctx.name}[C={c:.3g}]",
            "linear_probe",
            ctx.head_only(linear_head(weight, bias)),
            params={"C": c},
            save=False,
            info={**STANDARD, "trend_point": True},
        )
