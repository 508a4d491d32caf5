"""GraNd: the norm of each example's loss gradient over all parameters, at initialisation.

Paul, Ganguli and Dziugaite, "Deep Learning on a Data Diet: Finding Important Examples Early in
Training" (NeurIPS 2021, arXiv 2107.07075). Follows ``mansheej/data_diet``: ``data_diet/scores.py``
``get_grad_norm_fn`` (lines 37-46): the per-example cross-entropy's gradient with respect to the
whole parameter tree (``jacrev``, flattened), its L2 norm, the model in test mode; runs averaged
by ``scripts/get_mean_score.py``. Here per-example gradients come from ``torch.func``
(``vmap(grad(loss))`` over ``functional_call``), or a loop of autograd calls where ``vmap``
cannot run the module (data-dependent control flow, in-place ops on inputs).

For a linear head the gradient has the closed form ``(p - y) [x, 1]^T``, so GraNd is
``||p - onehot(y)|| * sqrt(||x||^2 + 1)``: EL2N times the input's norm. At initialisation ``p``
is close to uniform, so GraNd mostly measures the input's norm; Kirsch (arXiv 2303.14753) could
not reproduce GraNd at initialisation beating random pruning. EL2N is the safer default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from shiftlab.curation.context import CurationContext, ScoreResult
from shiftlab.curation.data_diet import DEFAULT_SEEDS, linear_head_factory
from shiftlab.errors import ConfigError, DataError
from shiftlab.registry import CURATE
from shiftlab.runtime import log
from shiftlab.typed import param

Tensors = dict[str, torch.Tensor]


def _vmap_sq_norms(
    model: nn.Module, params: Tensors, buffers: Tensors, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    def loss(p: Tensors, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return sum(g.reshape(len(x), -1).double().pow(2).sum(1) for g in grads.values())


def _loop_sq_norms(
    model: nn.Module, params: Tensors, buffers: Tensors, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    norms = []
    with torch.enable_grad():
        for i in range(len(x)):
            logits = functional_call(model, (leaves, buffers), (x[i : i + 1],))
            loss = F.cross_entropy(logits, y[i : i + 1])
            grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
            norms.append(sum(g.double().pow(2).sum() for g in grads if g is not None))
    return torch.stack([torch.as_tensor(n, dtype=torch.float64) for n in norms])


def grand(
    model: nn.Module,
    inputs: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 256,
) -> np.ndarray:
    """Per-example L2 norm of the cross-entropy's gradient w.r.t. every parameter of ``model``.

    Every parameter counts, frozen (``requires_grad=False``) ones included, as the reference
    differentiates the whole parameter tree. The model runs in eval mode (its mode is restored).

    Args:
        model: maps a batch of inputs (B, ...) to logits (B, K).
        inputs: (N, ...) inputs (floating inputs are cast to the parameters' dtype).
        labels: (N,) class indices.
        batch_size: examples per vectorised call.

    Returns:
        (N,) float64 gradient norms.
    """
    params = dict(model.named_parameters())
    if not params:
        raise ConfigError("GraNd needs a model with parameters")
    first = next(iter(params.values()))
    x_all = torch.as_tensor(inputs)
    if x_all.is_floating_point():
        x_all = x_all.to(first.dtype)
    y_all = torch.as_tensor(labels, dtype=torch.long)
    if len(x_all) != len(y_all) or y_all.ndim != 1:
        raise DataError(f"GraNd needs N inputs and (N,) labels, got {len(x_all)} and {y_all.shape}")
    params = {k: v.detach() for k, v in params.items()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    was_training = model.training
    model.eval()
    use_loop = False
    norms = []
    try:
        for start in range(0, len(x_all), batch_size):
            x = x_all[start : start + batch_size].to(first.device)
            y = y_all[start : start + batch_size].to(first.device)
            if not use_loop:
                try:
                    norms.append(_vmap_sq_norms(model, params, buffers, x, y).cpu())
                    continue
                except Exception as exc:  # vmap cannot run every module
                    log(f"GraNd: vmap failed ({type(exc).__name__}); per-example loop instead")
                    use_loop = True
            norms.append(_loop_sq_norms(model, params, buffers, x, y).cpu())
    finally:
        model.train(was_training)
    return torch.cat(norms).sqrt().numpy() if norms else np.zeros(0)


def grand_scores(
    make_head: Callable[[int], nn.Module],
    features: np.ndarray,
    labels: np.ndarray,
    *,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    batch_size: int = 256,
) -> np.ndarray:
    """Mean GraNd over heads at initialisation from different seeds.

    Args:
        make_head: ``make_head(seed)`` returns an untrained head (e.g.
            :func:`shiftlab.curation.data_diet.linear_head_factory`).
        features: (N, D) cached features.
        labels: (N,) class indices.
        seeds: one initialisation per seed (default 10, the reference's recommended minimum).
        batch_size: examples per vectorised call.

    Returns:
        (N,) mean gradient norm.
    """
    if len(seeds) == 0:
        raise ConfigError("GraNd needs at least one seed")
    total = np.zeros(len(features))
    for seed in seeds:
        total += grand(make_head(seed), features, labels, batch_size=batch_size)
    return total / len(seeds)


@dataclass
class GraNdOptions:
    """Heads at initialisation, averaged over runs."""

    runs: int = param(10, "heads averaged (data_diet README: at least 10 runs)", within="[1, inf)")


@CURATE.register("grand", options=GraNdOptions, fast={"runs": 2})
def grand_score(ctx: CurationContext, cfg: GraNdOptions) -> ScoreResult:
    """GraNd of linear heads at initialisation on cached features, averaged over seeds."""
    features, labels = ctx.train_features(), ctx.train.labels
    make = linear_head_factory(features.shape[1], ctx.benchmark.num_classes)
    seeds = [ctx.seed + i for i in range(cfg.runs)]
    values = grand_scores(make, features, labels, seeds=seeds)
    return ScoreResult(values, "GraNd at initialisation (high: hard)", summary={"runs": cfg.runs})
