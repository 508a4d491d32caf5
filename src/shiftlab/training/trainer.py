"""The one shared training loop: batching, optimiser, schedule, clipping, seeding, progress.

Recipes supply a loss on a batch (and say which parameters train); this loop owns everything
else, so every recipe trains the same way and is compared on equal terms. The schedule is
WiSE-FT's ``cosine_lr``: linear warmup to the peak over ``warmup_steps``, then cosine to zero.

Scale lives here too, so every recipe gets it without knowing:

- **precision**: the forward pass runs under :func:`shiftlab.precision.autocast` (bf16, or fp16
  with a gradient scaler); the weights and the optimiser stay fp32.
- **gradient accumulation** (``accumulate_steps: k``): each batch of ``batch_size`` is split into
  k micro-batches whose losses are weighted by their share of the batch, so the step is the one
  step on the whole batch (for losses that are means over examples); the schedule counts steps.
- **data parallelism**: in a run launched on several processes, each process takes its share of
  every batch and the weighted gradients are summed (:mod:`shiftlab.distributed`), so the step
  is again the one-process step on the whole batch.
- **gradient checkpointing** of Hugging Face encoders (``gradient_checkpointing: true``).
- **training checkpoints** (:mod:`shiftlab.training.checkpoints`; ``checkpoint_every``: by
  default after any epoch once a minute of training is unsaved): the whole training state is
  written atomically to the caller's file; a later call with the same file and digest resumes
  after the saved epoch and ends exactly where an uninterrupted call would.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shiftlab import distributed, faults
from shiftlab.data.batches import ImageTransform, channels_last, input_transform, iterate
from shiftlab.errors import ConfigError, TrainingError
from shiftlab.precision import autocast, current_precision, grad_scaler
from shiftlab.progress import progress
from shiftlab.runtime import log
from shiftlab.training.checkpoints import (
    Trained,
    TrainState,
    due,
    scoped_checkpoint,
    signature,
)
from shiftlab.training.gradient_checkpointing import (
    checkpointing_off,
    enable_gradient_checkpointing,
)
from shiftlab.training.options import TrainOptions


@dataclass
class Batch:
    """One step's examples: inputs (texts or an image tensor), labels (B,), and their
    positions in the training split (B,). With accumulation or several processes, one
    micro-batch: a part of the step's batch."""

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
    resumed_epochs: int = 0  # epochs restored from a training checkpoint instead of trained

    @property
    def selection(self) -> dict[str, Any]:
        """Record keys saying which weights were kept: ``selected_by``, ``selected_epoch``."""
        return {"selected_by": self.selected_by, "selected_epoch": self.selected_epoch}


#: Where ``linear_tail`` starts to decay: co-teaching's ``epoch_decay_start`` 80 of 200 epochs.
LINEAR_TAIL_START = 0.4


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> float:
    """Multiplier of the peak lr at ``step`` (0-based), as WiSE-FT's ``cosine_lr``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "linear_tail":  # co-teaching main.py: lr x (T - t) / (T - 0.4 T) from 0.4 T
        start = warmup_steps + LINEAR_TAIL_START * (total_steps - warmup_steps)
        return min(1.0, (total_steps - step) / max(total_steps - start, 1e-12))
    decay_steps = max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / decay_steps))


def make_optimizer(params: Iterable[Any], cfg: TrainOptions) -> torch.optim.Optimizer:
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


def input_lengths(inputs: Any) -> np.ndarray | None:
    """Characters of each text input (prompt and answer of a language model's), or None
    when the inputs are not texts (images and feature rows have one size)."""
    if len(inputs) == 0:
        return None
    first = inputs[0]
    if isinstance(first, str):
        return np.fromiter((len(t) for t in inputs), dtype=np.int64, count=len(inputs))
    if hasattr(first, "prompt"):
        return np.array([len(i.prompt) + len(i.answer or "") for i in inputs], dtype=np.int64)
    return None


def length_grouped(
    batches: list[np.ndarray], lengths: np.ndarray | None, seed: int, epoch: int, mega: int = 50
) -> list[np.ndarray]:
    """Batches of similar-length examples, as Hugging Face Trainer's ``group_by_length``:
    consecutive runs of ``mega`` batches of the epoch's random order are sorted by length and
    cut again into batches of the same sizes, and the batches are then shuffled (a generator
    of their own, seeded by ``seed`` and the epoch, so the run's other randomness is unchanged).
    Each epoch still visits every example once; only which examples share a batch changes."""
    if lengths is None or len(batches) < 2:
        return batches
    sizes = [len(b) for b in batches]
    grouped: list[np.ndarray] = []
    for start in range(0, len(batches), mega):
        run = np.concatenate(batches[start : start + mega])
        run = run[np.argsort(-lengths[run], kind="stable")]
        cuts = np.cumsum(sizes[start : start + mega])[:-1]
        grouped += np.split(run, cuts)
    order = np.random.default_rng([seed, epoch, 1711]).permutation(len(grouped))
    return [grouped[i] for i in order]


def epoch_batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Consecutive batches of ``order`` (one epoch's example order), as the loop steps."""
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    # A final batch of one breaks batch normalisation in train mode; fold it into the previous.
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = np.concatenate([chunks[-1], last])
    return chunks


def batches_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps of an epoch of ``n`` examples: ``len(epoch_batches(order, batch_size))``
    (a final batch of one is folded into the previous)."""
    steps = -(-n // batch_size)
    return steps - 1 if steps > 1 and n - (steps - 1) * batch_size == 1 else steps


def micro_batches(index: np.ndarray, parts: int, splittable: bool = True) -> list[np.ndarray]:
    """What this process computes of one step's batch: its share (several processes), split
    into ``parts`` micro-batches (sizes differ by at most one; empty ones dropped). A batch whose
    loss cannot be split is computed whole, on every process."""
    if not splittable:
        return [index]
    mine = distributed.share(index)
    if parts == 1:
        return [mine] if len(mine) else []
    return [m for m in np.array_split(mine, parts) if len(m)]


# The loop ----------------------------------------------------------------------------------


def train(
    model: nn.Module,
    loss_fn: Callable[[Batch], torch.Tensor],
    inputs: Any,
    labels: np.ndarray,
    cfg: TrainOptions,
    *,
    seed: int,
    device: torch.device,
    description: str,
    params: Iterable[nn.Parameter] | None = None,
    eval_mode: bool = False,
    plan: list[np.ndarray] | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    score: Callable[[], float | tuple[float, ...]] | None = None,
    keep_states: bool = False,
    transform: ImageTransform | None = None,
    precision: str | None = None,
    splittable: bool = True,
    checkpoint: Path | None = None,
    checkpoint_digest: str = "",
    stateful: Sequence[Any] = (),
) -> TrainResult:
    """Minimise ``loss_fn`` over the training examples.

    Args:
        model: the module being trained (put in train mode, or eval mode if ``eval_mode``).
        loss_fn: maps a Batch to a scalar loss: the mean over the batch's examples.
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
        on_step: called after each optimiser step (and its scheduler step) with the number of
            steps taken so far (1-based), e.g. to average weights along the trajectory. What it
            keeps goes in ``stateful`` to survive a resume.
        score: the ID val score of the model as it is, a number or a tuple compared in order
            (needed unless ``cfg.select`` is "last"); the weights of the epoch scoring highest
            (the first, on ties) are kept.
        keep_states: keep a CPU copy of the weights after every epoch (``result.states``, by
            1-based epoch).
        transform: the image transform of raw image inputs (with its augmentation); default
            the model's own (none for cached features).
        precision: fp32, bf16 or fp16 (autocast); default the run's
            (:func:`shiftlab.precision.current_precision`).
        splittable: whether the loss of a batch is the mean of per-example losses computed
            independently, so a batch may be split into micro-batches and across processes.
            False for losses that couple a batch's examples (contrastive, worst-group, top-k)
            or that watch each batch (online error sets, forgetting events, adversaries):
            every process then computes each whole batch, and ``accumulate_steps`` must be 1.
        checkpoint: a file for training checkpoints (written every ``cfg.checkpoint_every``
            epochs and after the last; resumed from when it exists with ``checkpoint_digest``);
            default the one :func:`checkpoints` gives, if any.
        checkpoint_digest: what the checkpoint must have been written for (the caller's digest
            of the recipe's settings and inputs).
        stateful: what the training changes besides the model and its own RNGs, for exact
            resumes: torch or NumPy generators the loss or ``on_epoch_end`` draws from, arrays
            or tensors they update in place, objects with ``state_dict``. Saved in the
            checkpoint and restored in place on resume.

    Raises:
        TrainingError: the loss became NaN or infinite.
        ConfigError: fp16 on a CPU; gradient checkpointing without a Hugging Face encoder;
            accumulation of a loss that cannot be split.
    """
    distributed.setup(device)  # a no-op unless launched on several processes (joined once)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    precision = precision or current_precision()
    autocast(precision, device)  # checks the device can run it
    if not splittable and cfg.accumulate_steps > 1:
        raise ConfigError(
            f"{description}: accumulate_steps: {cfg.accumulate_steps} would split each batch, "
            "but this loss couples the examples of a batch; use accumulate_steps: 1"
        )
    last = channels_last(model)
    transform = transform if transform is not None else input_transform(model)
    plan = plan if plan is not None else epoch_plan(len(labels), cfg.epochs, rng)
    lengths = input_lengths(inputs) if cfg.group_by_length else None
    if cfg.group_by_length and lengths is None:
        log(f"{description}: group_by_length applies to texts; these inputs keep random batches")
    groups = param_groups(params if params is not None else model.parameters())
    params = [p for group in groups for p in group["params"]]
    if not params:
        raise TrainingError(f"{description}: no parameter requires grad; nothing to train")
    optimizer = make_optimizer(groups, cfg)
    scaler = grad_scaler(precision, device)
    sizes = [len(order) for order in plan]
    total = sum(batches_per_epoch(len(order), cfg.batch_size) for order in plan)
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
    parallel = distributed.is_distributed()
    if parallel:
        plan_digest = hashlib.sha256(str(len(labels)).encode())
        for order in plan:
            plan_digest.update(np.ascontiguousarray(order, dtype=np.int64).tobytes())
        _agree(description, "the training plan", plan_digest.hexdigest())
        distributed.broadcast_module(model, params)
    if checkpoint is None:
        scoped = scoped_checkpoint(description)
        if scoped is not None:
            checkpoint, checkpoint_digest = scoped
    sign = signature(plan, len(labels), cfg, description)
    trained = Trained(model, optimizer, scheduler, scaler, plan, rng, stateful)
    state = None
    if checkpoint is not None:
        state = TrainState.resume(checkpoint, checkpoint_digest, sign, trained, description)
    if state is not None:
        log(f"{description}: resumed after epoch {state.epoch + 1} from {checkpoint}")
    state = state or TrainState()
    first_epoch = state.epoch + 1
    labels_tensor = torch.as_tensor(labels, dtype=torch.long)
    hf_checkpointing = (
        enable_gradient_checkpointing(model, description) if cfg.gradient_checkpointing else []
    )
    model.train(not eval_mode)
    start = unsaved_since = time.perf_counter()
    try:
        with progress(description, sum(sizes)) as advance:
            if first_epoch:
                advance(sum(sizes[:first_epoch]))
            for epoch in range(first_epoch, len(sizes)):
                if len(plan[epoch]) != sizes[epoch]:
                    raise ValueError(f"{description}: epoch {epoch + 1}'s plan changed its length")
                batches = epoch_batches(plan[epoch], cfg.batch_size)
                if cfg.group_by_length:
                    batches = length_grouped(batches, lengths, seed, epoch)
                parts = [micro_batches(b, cfg.accumulate_steps, splittable) for b in batches]
                batch_inputs = iterate(
                    inputs,
                    [m for step_parts in parts for m in step_parts],
                    transform=transform,
                    device=device,
                    train=True,
                    last=last,
                )
                epoch_loss = 0.0
                for index, step_parts in zip(batches, parts, strict=True):
                    value = _step(
                        loss_fn,
                        index,
                        step_parts,
                        batch_inputs,
                        labels_tensor,
                        params,
                        optimizer,
                        scaler,
                        precision=precision,
                        device=device,
                        parallel=parallel and splittable,
                        broadcast=parallel and not splittable,
                        grad_clip=cfg.grad_clip,
                        nonfinite=lambda v, at=state.step + 1: (
                            f"{description}: the loss became {v} at step {at}; "
                            f"lower the learning rate (lr={cfg.lr:g}) or check the data"
                        ),
                    )
                    scheduler.step()
                    state.step += 1
                    if on_step is not None:
                        on_step(state.step)
                    faults.point("train_step")
                    state.seen += len(index)
                    epoch_loss += value * len(index)
                    advance(len(index), loss=value)
                state.epoch = epoch
                state.losses.append(epoch_loss / max(1, sum(len(i) for i in batches)))
                if parallel:
                    distributed.average_buffers(model)
                if on_epoch_end is not None:
                    on_epoch_end(epoch)
                if keep_states:
                    state.states[epoch + 1] = {
                        k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                    }
                if cfg.select != "last":
                    _select(state, score(), model)
                    model.train(not eval_mode)
                unsaved = time.perf_counter() - unsaved_since
                if checkpoint is not None and due(cfg.checkpoint_every, epoch, len(sizes), unsaved):
                    state.save(checkpoint, checkpoint_digest, sign, trained)
                    unsaved_since = time.perf_counter()
    finally:
        checkpointing_off(hf_checkpointing)
    if parallel:  # dropout drew from each process's share: continue from the main's draws
        torch.set_rng_state(distributed.broadcast_object(torch.get_rng_state()))
    seconds = time.perf_counter() - start
    result = TrainResult(
        state.step,
        seconds,
        state.seen / seconds if seconds > 0 else float("inf"),
        state.losses,
        cfg.select,
        len(sizes),
        state.scores,
        state.states,
        resumed_epochs=first_epoch,
    )
    if state.best is not None:
        model.load_state_dict(state.best[2])
        result.selected_epoch = state.best[1] + 1
    model.eval()
    return result


def _select(state: TrainState, score: float | tuple[float, ...], model: nn.Module) -> None:
    """Record this epoch's selection score; keep the weights if they score best so far (the
    first, on ties)."""
    key = score if isinstance(score, tuple) else (score,)
    state.scores.append(key[0])
    if state.best is None or key > state.best[0]:
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        state.best = (key, state.epoch, weights)


def _step(
    loss_fn: Callable[[Batch], torch.Tensor],
    index: np.ndarray,
    parts: list[np.ndarray],
    batch_inputs: Iterator[Any],
    labels: torch.Tensor,
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    *,
    precision: str,
    device: torch.device,
    parallel: bool,
    broadcast: bool,
    grad_clip: float | None,
    nonfinite: Callable[[float], str],
) -> float:
    """One optimiser step on the batch ``index`` from this process's micro-batches ``parts``;
    returns the batch's mean loss."""
    optimizer.zero_grad(set_to_none=True)
    whole = len(parts) == 1 and len(parts[0]) == len(index)
    weighted, bad, value = 0.0, 0.0, float("nan")
    for part in parts:
        batch = Batch(next(batch_inputs), labels[part].to(device), part)
        with autocast(precision, device):
            loss = loss_fn(batch)
        value = float(loss.detach())
        if not math.isfinite(value):
            if not (parallel or broadcast):
                raise TrainingError(nonfinite(value))
            bad += 1
            continue
        if not whole:  # this part's share of the batch's mean
            loss = loss * (len(part) / len(index))
        (scaler.scale(loss) if scaler is not None else loss).backward()
        weighted += value * len(part)
    if parallel:
        stats = distributed.sum_gradients(params, torch.tensor([weighted, bad]))
        weighted, bad = float(stats[0]), float(stats[1])
    elif broadcast:
        bad = float(distributed.sum_across(torch.tensor([bad]))[0])
    if bad:
        raise TrainingError(nonfinite(value if not math.isfinite(value) else float("nan")))
    if broadcast:
        distributed.broadcast_gradients(params)
    if scaler is not None:
        scaler.unscale_(optimizer)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return value if whole and not parallel else weighted / len(index)


def _agree(description: str, what: str, digest: str) -> None:
    """Raise unless every process holds the same ``digest`` (a plan that differs between
    processes would hang the collectives, or train on different data)."""
    if len(set(distributed.gather_objects(digest))) > 1:
        raise TrainingError(
            f"{description}: the processes disagree on {what}; a loss that watches its batches "
            "(online error sets, forgetting events) must be trained with splittable=False"
        )
