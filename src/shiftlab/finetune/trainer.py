"""The one shared training loop: batching, optimiser, schedule, clipping, seeding, progress.

Recipes supply a loss on a batch (and say which parameters train); this loop owns everything
else, so every recipe trains the same way and is compared on equal terms. The schedule is
WiSE-FT's ``cosine_lr``: linear warmup to the peak over ``warmup_steps``, then cosine to zero.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from shiftlab.config import param
from shiftlab.data.batches import ImageTransform, channels_last, input_transform, iterate
from shiftlab.errors import ConfigError, TrainingError
from shiftlab.progress import progress
from shiftlab.runtime import log


@dataclass
class TrainConfig:
    """Optimisation settings shared by every recipe that trains (WiSE-FT's defaults)."""

    epochs: int = param(10, "passes over the ID training split")
    lr: float = param(3e-5, "peak learning rate (WiSE-FT README recipe)")
    weight_decay: float = param(0.1, "weight decay (decoupled for AdamW)")
    batch_size: int = param(512, "examples per step")
    warmup_steps: int = param(500, "linear warmup steps before the cosine decay")
    grad_clip: float | None = param(1.0, "max global gradient norm; null disables clipping")
    optimizer: Literal["adamw", "adam", "sgd"] = param("adamw", "optimiser")
    momentum: float = param(0.9, "momentum (SGD only)")
    schedule: Literal["cosine", "constant"] = param("cosine", "lr after warmup")
    select: Literal["last", "id_val_accuracy", "id_val_worst_group_accuracy"] = param(
        "last", "which epoch's weights to keep: the last, or the best by this ID val score"
    )

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}"
            )
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")


@dataclass
class Batch:
    """One step's examples: inputs (texts or an image tensor), labels (B,), and their
    positions in the training split (B,)."""

    inputs: Any
    labels: torch.Tensor
    index: np.ndarray


@dataclass
class TrainResult:
    """What a training run did, and which epoch's weights it kept."""

    steps: int
    seconds: float
    samples_per_second: float
    epoch_losses: list[float] = field(default_factory=list)
    selected_by: str = "last"
    selected_epoch: int = 0  # 1-based
    scores: list[float] = field(default_factory=list)  # each epoch's (first) selection score
    states: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)  # keep_states

    @property
    def selection(self) -> dict[str, Any]:
        """Record keys saying which weights were kept: ``selected_by``, ``selected_epoch``."""
        return {"selected_by": self.selected_by, "selected_epoch": self.selected_epoch}


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> float:
    """Multiplier of the peak lr at ``step`` (0-based), as WiSE-FT's ``cosine_lr``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / decay_steps))


def make_optimizer(params: Iterable[Any], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``cfg.optimizer``, over parameters or parameter groups (dicts
    whose own ``weight_decay`` overrides ``cfg``'s)."""
    params = list(params)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=False
    )


def param_groups(params: Iterable[Any]) -> list[dict[str, Any]]:
    """Parameters (or groups of them, as dicts) as optimiser groups of those requiring grad;
    empty groups are dropped."""
    params = list(params)
    if params and isinstance(params[0], dict):
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in params]
    else:
        groups = [{"params": [p for p in params if p.requires_grad]}]
    return [g for g in groups if g["params"]]


def epoch_plan(n: int, epochs: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A fresh random permutation of the ``n`` training examples for each epoch."""
    return [rng.permutation(n) for _ in range(epochs)]


def _batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    # A final batch of one breaks batch normalisation in train mode; fold it into the previous.
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = np.concatenate([chunks[-1], last])
    return chunks


def train(
    model: nn.Module,
    loss_fn: Callable[[Batch], torch.Tensor],
    inputs: Any,
    labels: np.ndarray,
    cfg: TrainConfig,
    *,
    seed: int,
    device: torch.device,
    description: str,
    params: Iterable[nn.Parameter] | None = None,
    eval_mode: bool = False,
    plan: list[np.ndarray] | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    score: Callable[[], float | tuple[float, ...]] | None = None,
    keep_states: bool = False,
    transform: ImageTransform | None = None,
) -> TrainResult:
    """Minimise ``loss_fn`` over the training examples.

    Args:
        model: the module being trained (put in train mode, or eval mode if ``eval_mode``).
        loss_fn: maps a Batch to a scalar loss.
        inputs: N training inputs (list of texts or array of images).
        labels: (N,) class indices.
        cfg: optimisation settings.
        seed: seeds shuffling and any randomness in the forward pass (dropout).
        device: where labels (and image inputs) are moved.
        description: label of the progress bar and of errors.
        params: parameters to optimise, or parameter groups (dicts, e.g. with their own
            ``weight_decay``); default, those of ``model`` requiring grad.
        eval_mode: keep the model in eval mode (frozen norm statistics, no dropout), as LP-FT.
        plan: the example indices of each epoch (e.g. upsampled); default a permutation each.
            ``plan[e]`` is read when epoch ``e`` starts, so ``on_epoch_end`` may refill later
            epochs in place (keeping their lengths), e.g. to resample by weights learned so far.
        on_epoch_end: called with the 0-based epoch after each epoch.
        score: the ID val score of the model as it is, a number or a tuple compared in order
            (needed unless ``cfg.select`` is "last"); the weights of the epoch scoring highest
            (the first, on ties) are kept.
        keep_states: keep a CPU copy of the weights after every epoch (``result.states``, by
            1-based epoch).
        transform: the image transform of raw image inputs (with its augmentation); default
            the model's own (none for cached features).

    Raises:
        TrainingError: the loss became NaN or infinite.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    last = channels_last(model)
    transform = transform if transform is not None else input_transform(model)
    plan = plan if plan is not None else epoch_plan(len(labels), cfg.epochs, rng)
    groups = param_groups(params if params is not None else model.parameters())
    params = [p for group in groups for p in group["params"]]
    if not params:
        raise TrainingError(f"{description}: no parameter requires grad; nothing to train")
    optimizer = make_optimizer(groups, cfg)
    sizes = [len(order) for order in plan]
    total = sum(len(_batches(order, cfg.batch_size)) for order in plan)
    if cfg.warmup_steps >= total:
        log(
            f"{description}: warmup_steps={cfg.warmup_steps} >= the {total} training steps, "
            f"so the lr never reaches its peak; e.g. --set recipes.{description}.warmup_steps="
            f"{max(1, total // 10)}"
        )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cfg.warmup_steps, total, cfg.schedule)
    )
    if cfg.select != "last" and score is None:
        raise ConfigError(f"{description}: select: {cfg.select} needs a scorer of the model")
    best: tuple[tuple[float, ...], int, dict[str, torch.Tensor]] | None = None
    scores: list[float] = []
    states: dict[int, dict[str, torch.Tensor]] = {}
    labels_tensor = torch.as_tensor(labels, dtype=torch.long)
    model.train(not eval_mode)
    step, seen, losses = 0, 0, []
    start = time.perf_counter()
    with progress(description, sum(sizes)) as advance:
        for epoch, size in enumerate(sizes):
            if len(plan[epoch]) != size:
                raise ValueError(f"{description}: epoch {epoch + 1}'s plan changed its length")
            batches = _batches(plan[epoch], cfg.batch_size)
            epoch_loss = 0.0
            batch_inputs = iterate(
                inputs, batches, transform=transform, device=device, train=True, last=last
            )
            for index, x in zip(batches, batch_inputs, strict=True):
                batch = Batch(x, labels_tensor[index].to(device), index)
                loss = loss_fn(batch)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingError(
                        f"{description}: the loss became {value} at step {step + 1}; "
                        f"lower the learning rate (lr={cfg.lr:g}) or check the data"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                seen += len(index)
                epoch_loss += value * len(index)
                advance(len(index), loss=value)
            losses.append(epoch_loss / max(1, sum(len(i) for i in batches)))
            if on_epoch_end is not None:
                on_epoch_end(epoch)
            if keep_states:
                states[epoch + 1] = {
                    k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                }
            if cfg.select != "last":
                value = score()
                key = value if isinstance(value, tuple) else (value,)
                scores.append(key[0])
                model.train(not eval_mode)
                if best is None or key > best[0]:
                    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    best = (key, epoch, state)
    seconds = time.perf_counter() - start
    result = TrainResult(
        step,
        seconds,
        seen / seconds if seconds > 0 else float("inf"),
        losses,
        cfg.select,
        len(sizes),
        scores,
        states,
    )
    if best is not None:
        model.load_state_dict(best[2])
        result.selected_epoch = best[1] + 1
    model.eval()
    return result
