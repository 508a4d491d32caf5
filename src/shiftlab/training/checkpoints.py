"""Training checkpoints: where a training run is (:class:`TrainState`), written atomically and
read back so that a killed run resumes after its last saved epoch and ends exactly where an
uninterrupted one would.

A run gives every :func:`shiftlab.training.train` call inside an entry a file of its own
(:func:`checkpoints`: the n-th call of a deterministic recipe is the same training on a rerun).
When files are written is ``checkpoint_every``: every N epochs (and after the last), ``auto``
(the default) after any epoch once :data:`AUTO_SECONDS` of training are unsaved, so that only
training long enough to lose is checkpointed, or ``null`` for never.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shiftlab import distributed
from shiftlab.atomic import atomic_path
from shiftlab.runtime import log
from shiftlab.training.options import TrainOptions

#: ``checkpoint_every: auto`` writes a checkpoint after an epoch once this many seconds of
#: training are unsaved ($SHIFTLAB_CHECKPOINT_SECONDS overrides it; 0 checkpoints every epoch).
AUTO_SECONDS = 60.0


def auto_seconds() -> float:
    """The unsaved training time after which ``auto`` checkpoints (see :data:`AUTO_SECONDS`)."""
    return float(os.environ.get("SHIFTLAB_CHECKPOINT_SECONDS", AUTO_SECONDS))


def due(every: int | str | None, epoch: int, epochs: int, unsaved_seconds: float) -> bool:
    """Whether to write a checkpoint after 0-based ``epoch`` of ``epochs``.

    Args:
        every: ``checkpoint_every``: N (every N epochs and after the last), ``auto`` or None.
        unsaved_seconds: training time since the last checkpoint (or the start).
    """
    if every is None:
        return False
    if every == "auto":
        return unsaved_seconds >= auto_seconds()
    return (epoch + 1) % int(every) == 0 or epoch + 1 == epochs


@dataclass
class _Scope:
    directory: Path
    digest: str
    calls: int = 0


_scope: _Scope | None = None


@contextlib.contextmanager
def checkpoints(directory: Path, digest: str) -> Iterator[None]:
    """Give every training call in the block a checkpoint file, unless it names its own: the
    n-th call's is ``directory/NN-<description>.pt`` with ``digest``. A recipe is
    deterministic, so its n-th call on a rerun is the same training, and resumes from its file."""
    global _scope
    previous, _scope = _scope, _Scope(Path(directory), digest)
    try:
        yield
    finally:
        _scope = previous


def scoped_checkpoint(description: str) -> tuple[Path, str] | None:
    """The next training call's file and digest in the current :func:`checkpoints` block."""
    if _scope is None:
        return None
    _scope.calls += 1
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", description)[:80]
    return _scope.directory / f"{_scope.calls:02d}-{name}.pt", _scope.digest


def signature(plan: Sequence[np.ndarray], n: int, cfg: TrainOptions, description: str) -> str:
    """What a checkpoint must match besides the caller's digest: the data size, the epochs'
    lengths and the optimisation settings (``checkpoint_every`` aside)."""
    settings = {k: v for k, v in vars(cfg).items() if k != "checkpoint_every"}
    text = repr((n, [len(p) for p in plan], sorted(settings.items()), description))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """Every random generator a training step may draw from (torch, CUDA, NumPy, Python)."""
    legacy = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": rng.bit_generator.state,
        "numpy_global": [legacy[0], torch.from_numpy(legacy[1].astype(np.int64)), *legacy[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any], rng: np.random.Generator) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    rng.bit_generator.state = state["numpy"]
    name, keys, *rest = state["numpy_global"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def get_state(obj: Any) -> Any:
    """The state of a ``stateful`` object: ``state_dict()``, a generator's state, an array's or
    a tensor's values."""
    if isinstance(obj, np.random.Generator):
        return obj.bit_generator.state
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    return obj.state_dict() if hasattr(obj, "state_dict") else obj.get_state()


def set_state(obj: Any, state: Any) -> None:
    """Restore what :func:`get_state` returned, in place."""
    if isinstance(obj, np.random.Generator):
        obj.bit_generator.state = state
    elif isinstance(obj, np.ndarray):
        obj[...] = state.numpy()
    elif isinstance(obj, torch.Tensor):
        with torch.no_grad():
            obj.copy_(state)
    elif hasattr(obj, "load_state_dict"):
        obj.load_state_dict(state)
    else:
        obj.set_state(state)


@dataclass
class Trained:
    """What a training call acts on, saved in and restored from its checkpoints."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    plan: list[np.ndarray]
    rng: np.random.Generator
    stateful: Sequence[Any] = ()


@dataclass
class TrainState:
    """Where a training call is: its last finished epoch (0-based; -1 before the first), steps,
    examples seen, each epoch's mean loss and selection score, the weights kept per epoch
    (``keep_states``) and the best epoch's (model selection)."""

    epoch: int = -1
    step: int = 0
    seen: int = 0
    losses: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    states: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    best: tuple[tuple[float, ...], int, dict[str, torch.Tensor]] | None = None

    def save(self, path: Path, digest: str, sign: str, trained: Trained) -> None:
        """Write the whole training state to ``path`` atomically (the main process writes;
        every process's random state goes in)."""
        rngs = distributed.gather_objects(rng_state(trained.rng))
        with distributed.main_writes() as main:
            if not main:
                return
            scaler = trained.scaler
            checkpoint = {
                "digest": digest,
                "signature": sign,
                "epoch": self.epoch,
                "step": self.step,
                "seen": self.seen,
                "losses": self.losses,
                "scores": self.scores,
                "states": self.states,
                "best": None if self.best is None else (list(self.best[0]), *self.best[1:]),
                "model": trained.model.state_dict(),
                "optimizer": trained.optimizer.state_dict(),
                "scheduler": trained.scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {},
                "plan": [torch.from_numpy(np.asarray(p)) for p in trained.plan],
                "rng": rngs,
                "stateful": [get_state(obj) for obj in trained.stateful],
            }
            with atomic_path(path) as tmp:
                torch.save(checkpoint, tmp)

    @classmethod
    def resume(
        cls, path: Path, digest: str, sign: str, trained: Trained, description: str
    ) -> TrainState | None:
        """The state saved at ``path`` for this digest and signature, restored into
        ``trained`` in place; None when there is none (a foreign or damaged file, or other
        settings: training starts afresh)."""
        if not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a foreign or damaged file: train from the start
            why = type(exc).__name__
            log(f"{description}: ignoring unreadable training checkpoint {path} ({why})")
            return None
        if saved.get("digest") != digest or saved.get("signature") != sign:
            log(f"{description}: training checkpoint {path} is of other settings; starting afresh")
            return None
        trained.model.load_state_dict(saved["model"])
        trained.optimizer.load_state_dict(saved["optimizer"])
        trained.scheduler.load_state_dict(saved["scheduler"])
        if trained.scaler is not None and saved["scaler"]:
            trained.scaler.load_state_dict(saved["scaler"])
        for e, order in enumerate(saved["plan"]):
            trained.plan[e][:] = order.numpy()
        rngs = saved["rng"]
        set_rng_state(rngs[min(distributed.rank(), len(rngs) - 1)], trained.rng)
        for obj, state in zip(trained.stateful, saved["stateful"], strict=True):
            set_state(obj, state)
        best = saved["best"]
        return cls(
            epoch=saved["epoch"],
            step=saved["step"],
            seen=saved["seen"],
            losses=list(saved["losses"]),
            scores=list(saved["scores"]),
            states=saved["states"],
            best=None if best is None else (tuple(best[0]), best[1], best[2]),
        )
