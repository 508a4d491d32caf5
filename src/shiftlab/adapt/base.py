"""The shared shape of every adapter (TENT's): ``forward(x)`` adapts and returns logits,
``reset()`` restores the state it started from.

Online mode carries the adapted state from batch to batch within a stream; episodic mode resets
before every batch. The adapt stage resets between streams. A guard resets the adapter when the
loss is not finite, and (when ``collapse_fraction`` is set; off by default, as in TENT and the
conjugate reference, since it also fires on imbalanced streams predicted correctly) when its
predictions collapse onto one class; it counts the resets.

Adapters that learn put the model in train mode, as TENT's ``configure_model`` does
(``train_mode: auto`` on a model without dropout; BatchNorm uses test-batch statistics in
either mode). A model with dropout (text encoders) stays in eval mode under ``auto``: that is
shiftlab's choice, not the references' (they adapt BatchNorm CNNs, which have none), so that
adaptation does not add dropout noise to the predictions it scores.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from shiftlab.adapt.params import norm_affine_parameters, use_batch_statistics
from shiftlab.errors import ConfigError
from shiftlab.runtime import log
from shiftlab.typed import param


@dataclass
class AdaptOptions:
    """Optimisation and safety settings shared by adapters (TENT's defaults)."""

    lr: float = param(1e-3, "learning rate", within="[0, inf)")
    optimizer: Literal["adam", "sgd"] = param("adam", "optimiser")
    momentum: float = param(0.9, "SGD momentum (Adam's beta1 is 0.9)", within="[0, 1)")
    nesterov: bool = param(False, "Nesterov momentum (SGD only)")
    weight_decay: float = param(0.0, "weight decay", within="[0, inf)")
    steps: int = param(1, "updates per batch", within="[1, inf)")
    episodic: bool = param(False, "reset before every batch (else carry state along the stream)")
    batch_size: int = param(200, "examples per test batch", within="[1, inf)")
    predict_after_update: bool = param(False, "predict with the updated model (re-forward)")
    collapse_fraction: float | None = param(
        None,
        "reset when one class takes this share of the last collapse_window predictions "
        "(e.g. 0.95); off, as in the references",
        within="(0, 1]",
    )
    collapse_window: int = param(400, "predictions the collapse guard looks at", within="[1, inf)")
    train_mode: Literal["auto", "train", "eval"] = param(
        "auto", "model mode while adapting; auto: train (as TENT) unless the model has dropout"
    )

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr < 0:
            raise ConfigError("adapters need steps >= 1, batch_size >= 1 and lr >= 0")

    def for_model(self, params: dict[str, Any]) -> AdaptOptions:
        """These options with anything left to the model (its training loss) filled in from
        the predictor's ``params``."""
        return self


@dataclass
class ConjugateReferenceOptions(AdaptOptions):
    """The optimisation of the conjugate pseudo-label paper's adapters (``locuslab/tta_conjugate``
    ``cfgs/cifar.yaml``): SGD with Nesterov momentum, one step, predictions after the update."""

    optimizer: Literal["adam", "sgd"] = param("sgd", "optimiser")
    nesterov: bool = param(True, "Nesterov momentum (SGD only)")
    predict_after_update: bool = param(True, "predict with the updated model (re-forward)")


class Adapter(nn.Module):
    """Wraps a copy of a model; subclasses choose what adapts (``configure``) and the loss."""

    def __init__(self, model: nn.Module, cfg: AdaptOptions) -> None:
        super().__init__()
        self.cfg = cfg.for_model({})  # options left to the model, when not filled in: defaults
        self.model = copy.deepcopy(model).eval()
        self.params = self.configure(self.model)
        self.optimizer = self._optimizer(self.params) if self.params else None
        self._model_state = copy.deepcopy(self.model.state_dict())
        self._optimizer_state = (
            copy.deepcopy(self.optimizer.state_dict()) if self.optimizer is not None else None
        )
        self._recent: deque[int] = deque(maxlen=cfg.collapse_window)
        self.resets: list[str] = []

    def configure(self, model: nn.Module) -> list[nn.Parameter]:
        """Prepare the model copy and return the parameters to update (none by default)."""
        return []

    def loss(self, logits: torch.Tensor) -> torch.Tensor | None:
        """Mean adaptation loss of a batch of logits (B, K); None means no update."""
        return None

    def _optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        cfg = self.cfg
        if cfg.optimizer == "adam":
            return torch.optim.Adam(
                params, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay
            )
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov,
        )

    def reset(self) -> None:
        """Restore the model and optimiser to their state before any adaptation."""
        self.model.load_state_dict(self._model_state)
        if self.optimizer is not None:
            self.optimizer.load_state_dict(copy.deepcopy(self._optimizer_state))
        self._recent.clear()

    def _guard(self, reason: str) -> None:
        self.resets.append(reason)
        log(f"{type(self).__name__.lower()}: {reason}; reset to the source model")
        self.reset()

    def forward(self, inputs: Any) -> torch.Tensor:
        """Adapt on this batch (per the mode) and return its logits (B, K)."""
        if self.cfg.episodic:
            self.reset()
        outputs = None
        for _ in range(self.cfg.steps if self.optimizer is not None else 1):
            outputs = self.model(inputs)
            loss = self.loss(outputs) if self.optimizer is not None else None
            if loss is None:
                break
            if not torch.isfinite(loss):
                self._guard(f"the loss became {float(loss.detach())}")
                outputs = None
                break
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        if outputs is None or (self.cfg.predict_after_update and self.optimizer is not None):
            with torch.no_grad():
                outputs = self.model(inputs)
        outputs = outputs.detach()
        if self._collapsed(outputs):
            self._guard(f"predictions collapsed onto one class (>= {self.cfg.collapse_fraction:g})")
            with torch.no_grad():
                outputs = self.model(inputs).detach()
        return outputs

    def _collapsed(self, outputs: torch.Tensor) -> bool:
        if self.cfg.collapse_fraction is None or self.optimizer is None:
            return False
        self._recent.extend(outputs.argmax(dim=1).tolist())
        if len(self._recent) < self._recent.maxlen:
            return False
        top = max(self._recent.count(c) for c in set(self._recent))
        return top / len(self._recent) >= self.cfg.collapse_fraction


def has_dropout(model: nn.Module) -> bool:
    """Whether any dropout layer of ``model`` would drop something in train mode."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


class NormAdapter(Adapter):
    """Adapters that update normalisation layers with test-batch statistics (TENT's setup)."""

    def configure(self, model: nn.Module) -> list[nn.Parameter]:
        use_batch_statistics(model)
        mode = self.cfg.train_mode
        model.train(mode == "train" or (mode == "auto" and not has_dropout(model)))
        return norm_affine_parameters(model)
