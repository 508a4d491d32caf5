"""Co-teaching: two networks, each updated on the examples its peer finds easiest (Han et al.,
"Co-teaching: Robust Training of Deep Neural Networks with Extremely Noisy Labels", NeurIPS
2018, arXiv 1804.06872).

Follows ``bhanML/Co-teaching``: ``loss.py`` (``loss_coteaching``) and ``main.py``. Each step,
each network ranks the batch by its own cross-entropy and keeps the ``int((1 - R(T)) B)``
smallest-loss examples; the *other* network is updated on them, its loss the mean cross-entropy
over the kept examples divided by their number, as the reference returns it (Adam, the
reference's optimiser, is invariant to that constant scale up to its epsilon). The forget rate
``R(T)`` ramps linearly from 0 at the first epoch to ``forget_rate ** exponent`` at epoch
``num_gradual`` (``np.linspace(0, forget_rate ** exponent, num_gradual)``), then stays at
``forget_rate``. Both networks are trained by one optimiser on the sum of their losses: their
parameters are disjoint and each loss depends on one network only, so the updates are the
reference's two optimisers' (no gradient clipping, which would couple them).

The forget rate defaults to the noise rate, which users rarely know (the reference's most asked
question, issue #11): left unset, it is estimated as the off-diagonal mass of cleanlab's
confident joint (``cleanlab.count.estimate_joint``) on the run's out-of-sample probabilities
(K-fold linear probes on cached features, as curation computes them), and recorded.
``peers: false`` is the ablation of one network on its own small-loss examples with the same
schedule (the reference's issue #6 asks whether the exchange or the schedule does the work).

Defaults (``main.py``): Adam, lr 1e-3, batch 128, 200 epochs, ``num_gradual`` 10,
``exponent`` 1; the lr decays linearly to 0 from epoch 80 of 200 (``schedule: linear_tail``).
Not reproduced: Adam's beta1 moving from 0.9 to 0.1 over the decay. The networks are the
backbone with two heads drawn with different seeds (the reference: two randomly initialised
CNNs), so they differ from the first step. Net 1 is the recipe's predictor (the reference
reports both; net 2 is ``NAME[net=2]``). Where the training labels' truth is known, the record
gives the share of clean labels among the examples each network kept in the last epoch (the
reference's "pure ratio"); which examples those were is written to ``curation/NAME.csv``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab._optional import require
from shiftlab.data.batches import ImageTransform, channels_last, input_transform
from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.registry import FINETUNE
from shiftlab.training import Batch, TrainOptions
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class CoteachingOptions(TrainOptions):
    """bhanML/Co-teaching main.py's settings."""

    epochs: int = param(200, "passes over the ID training split (n_epoch)")
    lr: float = param(1e-3, "learning rate (main.py)")
    weight_decay: float = param(0.0, "weight decay (none in main.py)")
    batch_size: int = param(128, "examples per step (main.py)")
    warmup_steps: int = param(0, "no warmup (main.py)")
    grad_clip: float | None = param(None, "no clipping: it would couple the two networks")
    optimizer: Literal["adamw", "adam", "sgd"] = param("adam", "optimiser (main.py: Adam)")
    schedule: Literal["cosine", "constant", "linear_tail"] = param(
        "linear_tail", "constant, then linear to 0 from 40% of training (epoch_decay_start 80)"
    )
    forget_rate: float | None = param(
        None,
        "share of each batch left out at full ramp; null: the noise rate estimated by "
        "confident learning (main.py: the noise rate)",
        within="[0, 1)",
    )
    num_gradual: int = param(
        10, "epochs over which the forget rate ramps up from 0 (T_k)", within="[1, inf)"
    )
    exponent: float = param(1.0, "c in the ramp to forget_rate ** c", within="(0, inf)")
    peers: bool = param(True, "two networks teaching each other; false: one on its own picks")
    head_only: bool = param(False, "train heads on cached pretrained features (fast)")


def forget_schedule(
    forget_rate: float, epochs: int, num_gradual: int, exponent: float
) -> np.ndarray:
    """The forget rate of each epoch (main.py's ``rate_schedule``)."""
    rates = np.full(epochs, forget_rate, dtype=np.float64)
    ramp = np.linspace(0, forget_rate**exponent, num_gradual)
    rates[: min(epochs, num_gradual)] = ramp[:epochs]
    return rates


def coteaching_losses(
    logits_1: torch.Tensor, logits_2: torch.Tensor, labels: torch.Tensor, forget_rate: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of co-teaching (``loss_coteaching``): each network's loss on the examples its
    peer keeps, and the positions each network keeps.

    Returns:
        loss of net 1, loss of net 2, positions kept by net 1, positions kept by net 2.
    """
    kept_1 = small_loss(logits_1, labels, forget_rate)
    kept_2 = small_loss(logits_2, labels, forget_rate)
    count = len(kept_1)
    loss_1 = F.cross_entropy(logits_1[kept_2], labels[kept_2]) / count
    loss_2 = F.cross_entropy(logits_2[kept_1], labels[kept_1]) / count
    return loss_1, loss_2, kept_1, kept_2


def small_loss(logits: torch.Tensor, labels: torch.Tensor, forget_rate: float) -> torch.Tensor:
    """Positions of the ``int((1 - forget_rate) B)`` examples of smallest cross-entropy."""
    losses = F.cross_entropy(logits.detach(), labels, reduction="none")
    count = int((1 - forget_rate) * len(losses))
    return torch.argsort(losses, stable=True)[:count]


def estimate_noise_rate(labels: np.ndarray, pred_probs: np.ndarray) -> float:
    """The share of wrong labels, estimated by confident learning: one minus the trace of the
    calibrated confident joint of given and true labels (``cleanlab.count.estimate_joint``)."""
    count = require("cleanlab.count", "curation")
    joint = count.estimate_joint(np.asarray(labels), np.asarray(pred_probs, dtype=np.float64))
    return float(1.0 - np.trace(joint))


class Networks(nn.Module):
    """The networks trained together: each a head on cached features or on its own copy of
    the featurizer."""

    def __init__(self, ctx: RecipeContext, count: int, head_only: bool) -> None:
        super().__init__()
        heads = []
        for n in range(count):
            torch.manual_seed(ctx.seed + n)
            heads.append(nn.Linear(ctx.feature_dim(), ctx.benchmark.num_classes).to(ctx.device))
        self.head_only = head_only
        self.nets = nn.ModuleList(
            heads if head_only else [Classifier(ctx.trainable_copy(), h) for h in heads]
        )

    @property
    def transform(self) -> ImageTransform | None:
        """The image transform the trainer decodes image files with (the backbone's)."""
        return input_transform(self.nets[0])

    @property
    def channels_last(self) -> bool:
        return channels_last(self.nets[0])

    def forward(self, inputs: Any) -> list[torch.Tensor]:
        return [net(inputs) for net in self.nets]

    def classifier(self, ctx: RecipeContext, n: int) -> Classifier:
        net = self.nets[n]
        return ctx.head_only(net) if self.head_only else net


def forget_rate_of(ctx: RecipeContext, cfg: CoteachingOptions) -> tuple[float, dict[str, Any]]:
    """The forget rate, and the record keys that say where it came from."""
    if cfg.forget_rate is not None:
        return cfg.forget_rate, {"forget_rate": cfg.forget_rate}
    if ctx.out_of_sample is None:
        raise ConfigError(
            f"recipe '{ctx.name}': no out-of-sample probabilities to estimate the noise rate; "
            "set forget_rate"
        )
    estimate = estimate_noise_rate(ctx.benchmark.train.labels, ctx.out_of_sample())
    rate = min(max(estimate, 0.0), 0.95)
    return rate, {"forget_rate": rate, "noise_rate_estimate": estimate}


@FINETUNE.register(
    "coteaching",
    options=CoteachingOptions,
    kinds=("encoder",),
    fast={**FAST, "forget_rate": 0.2, "num_gradual": 1},
)
def coteaching(ctx: RecipeContext, cfg: CoteachingOptions) -> Iterator[Predictor]:
    """Two networks exchanging their small-loss examples (or one, ``peers: false``)."""
    train = ctx.benchmark.train
    n = len(train)
    rate, info = forget_rate_of(ctx, cfg)
    rates = forget_schedule(rate, cfg.epochs, cfg.num_gradual, cfg.exponent)
    count = 2 if cfg.peers else 1
    model = Networks(ctx, count, cfg.head_only)
    seen = np.zeros(1, dtype=np.int64)  # examples trained on so far: saved in checkpoints
    kept = np.zeros((count, n), dtype=bool)  # kept by each network in the last epoch
    last = cfg.epochs - 1

    def loss_fn(batch: Batch) -> torch.Tensor:
        epoch = min(int(seen[0]) // n, last)
        seen[0] += len(batch.index)
        logits = model(batch.inputs)
        if cfg.peers:
            loss_1, loss_2, *picks = coteaching_losses(*logits, batch.labels, rates[epoch])
            loss = loss_1 + loss_2
        else:
            picks = [small_loss(logits[0], batch.labels, rates[epoch])]
            loss = F.cross_entropy(logits[0][picks[0]], batch.labels[picks[0]]) / len(picks[0])
        if epoch == last:
            for net, positions in enumerate(picks):
                kept[net, batch.index[positions.cpu().numpy()]] = True
        return loss

    inputs = ctx.features(train).numpy() if cfg.head_only else None
    result = ctx.train(
        model,
        loss_fn,
        cfg,
        classifier=lambda: model.classifier(ctx, 0),
        inputs=inputs,
        splittable=False,  # each network ranks the whole batch
        stateful=[seen, kept],
    )
    info = {**info, **result.selection, **kept_summary(kept, train.labels, train.true_labels)}
    params = {"peers": cfg.peers, "head_only": cfg.head_only, "num_gradual": cfg.num_gradual}
    examples = {f"kept_by_net_{i + 1}": kept[i].astype(int) for i in range(count)}
    yield Predictor(ctx.name, "coteaching", model.classifier(ctx, 0), params, info=info,
                    examples=examples)  # fmt: skip
    if cfg.peers:
        yield Predictor(
            f"{ctx.name}[net=2]", "coteaching", model.classifier(ctx, 1), params, save=False,
            info=info,
        )  # fmt: skip


def kept_summary(
    kept: np.ndarray, labels: np.ndarray, true_labels: np.ndarray | None
) -> dict[str, Any]:
    """Each network's kept share in the last epoch, and the share of clean labels among the
    examples it kept where the truth is known (the reference's pure ratio)."""
    summary: dict[str, Any] = {"kept_fraction": [float(k.mean()) for k in kept]}
    if true_labels is not None:
        clean = labels == true_labels
        summary["kept_precision"] = [float(clean[k].mean()) if k.any() else None for k in kept]
        summary["label_precision"] = float(clean.mean())  # of the whole training set
    return summary
