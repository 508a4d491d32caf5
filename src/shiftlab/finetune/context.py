"""What a recipe sees: the benchmark, the backbone, cached features and earlier predictors."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shiftlab import distributed
from shiftlab.atomic import atomic_path
from shiftlab.data.benchmark import Benchmark, Split
from shiftlab.errors import ConfigError
from shiftlab.evaluate.metrics import classification_metrics
from shiftlab.evaluate.records import model_logits
from shiftlab.features import FeatureCache
from shiftlab.models.backbone import Backbone
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.models.zero_shot import zero_shot_head
from shiftlab.training import Batch, TrainOptions, TrainResult, train


@dataclass
class RecipeContext:
    """Everything a recipe may use. Recipes never read files.

    Attributes:
        name: this recipe entry's name: the base of its predictors' names.
        benchmark: the splits.
        backbone: the pretrained model (never modified; train a ``trainable_copy``).
        cache: features per (featurizer weights, split).
        prompts: class prompt templates, each with ``{class_name}``.
        seed: the seed of this entry (the run's, or a repeat's under ``seeds:``).
        device: where training runs.
        lookup: a predictor of an earlier entry by name.
        stash: a folder where this entry keeps its parts (see :meth:`part`); None: none kept.
        out_of_sample: (N, K) probabilities of every training example from models that never
            saw it (the curation plan's K-fold ones; computed once per run, on first use).
    """

    name: str
    benchmark: Benchmark
    backbone: Backbone
    cache: FeatureCache
    prompts: list[str]
    seed: int
    device: torch.device
    lookup: Callable[[str], Predictor]
    stash: Path | None = None
    out_of_sample: Callable[[], np.ndarray] | None = None

    def predictor(self, name: str) -> Predictor:
        """A predictor made by an earlier recipe of this run."""
        return self.lookup(name)

    def part(
        self,
        name: str,
        make: Callable[[], tuple[nn.Module, dict[str, Any]]],
        like: Callable[[], nn.Module],
    ) -> tuple[nn.Module, dict[str, Any]]:
        """A piece of this recipe trained on its own (a model-soup ingredient): ``make()`` trains
        it and returns the model and a JSON-able ``info``. It is kept in :attr:`stash`, so a
        rerun after a crash, or an executor that trained it in another process, loads it into
        ``like()`` (the untrained model) instead of training it again."""
        path = self.stash / f"{part_file(name)}.pt" if self.stash is not None else None
        if path is not None and path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model = like()
            model.load_state_dict(saved["state"])
            return model.to(self.device), json.loads(saved["info"])
        model, info = make()
        if path is not None:
            with distributed.main_writes() as main:
                if main:
                    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
                    with atomic_path(path) as tmp:
                        torch.save({"state": state, "info": json.dumps(info)}, tmp)
        return model, info

    def has_part(self, name: str) -> bool:
        """Whether part ``name`` is in the stash already."""
        return self.stash is not None and (self.stash / f"{part_file(name)}.pt").is_file()

    def features(self, split: Split, featurizer: nn.Module | None = None) -> torch.Tensor:
        """Features (N, D) of ``split``; the pretrained featurizer's by default."""
        if featurizer is None:
            return self.cache.get(self.backbone.featurizer, split, self.backbone.fingerprint)
        return self.cache.get(featurizer, split)

    def feature_dim(self) -> int:
        """Width of the pretrained featurizer's output (encodes ID val once if it does not say)."""
        dim = getattr(self.backbone.featurizer, "dim", None)
        return int(dim) if dim is not None else int(self.features(self.benchmark.val).shape[1])

    def require_text_side(self, why: str) -> None:
        """Raise a ConfigError if the backbone cannot encode class prompts."""
        if not self.backbone.has_text_side:
            raise ConfigError(
                f"recipe '{self.name}' {why}, but backbone '{self.backbone.name}' has no text "
                "side to encode class prompts"
            )

    def zero_shot_head(self, featurizer: nn.Module | None = None, scale: float | None = None):
        """Zero-shot head (K x D linear) from the class prompts, on ``featurizer``'s text side."""
        self.require_text_side("needs a zero-shot head")
        module = featurizer or self.backbone.featurizer
        was_training = module.training
        module.eval()
        head = zero_shot_head(
            Backbone.text_side(module),
            self.benchmark.class_names,
            self.prompts,
            self.backbone.logit_scale if scale is None else scale,
        )
        module.train(was_training)
        return head

    def head_only(self, head: nn.Linear) -> Classifier:
        """A classifier sharing the pretrained featurizer, with ``head``."""
        return Classifier(self.backbone.featurizer, head)

    def train(
        self,
        model: nn.Module,
        loss_fn: Callable[[Batch], torch.Tensor],
        cfg: TrainOptions,
        *,
        classifier: Callable[[], nn.Module] | None = None,
        inputs: Any = None,
        **kwargs: Any,
    ) -> TrainResult:
        """Train ``model`` on the ID training split with the shared loop, seeded by the run
        (pass ``seed=`` or ``description=`` to override).

        Args:
            classifier: returns the model to score on ID val when ``cfg.select`` is not
                "last" (default: ``model`` itself).
            inputs: stand-ins for the training inputs (e.g. cached features for a head).
        """
        options = {"seed": self.seed, "device": self.device, "description": self.name, **kwargs}
        if cfg.select != "last":
            options["score"] = self.scorer(cfg.select, classifier or (lambda: model))
        train_split = self.benchmark.train
        inputs = train_split.inputs if inputs is None else inputs
        return train(model, loss_fn, inputs, train_split.labels, cfg, **options)

    def scorer(
        self, rule: str, classifier: Callable[[], nn.Module]
    ) -> Callable[[], tuple[float, ...]]:
        """A function scoring the current model on ID val: ``(accuracy,)``, or
        ``(worst-group accuracy, accuracy)`` so that ties on the worst group (common early in
        training, when a rare group is always wrong) go to the more accurate epoch.

        Raises:
            ConfigError: worst-group selection without groups in ID val.
        """
        val = self.benchmark.val
        if rule == "id_val_worst_group_accuracy" and val.groups is None:
            raise ConfigError(
                f"recipe '{self.name}': select: {rule} needs groups (data.groups or a group column)"
            )

        def score() -> tuple[float, ...]:
            metrics = classification_metrics(
                self.logits(classifier(), val),
                val.labels,
                val.groups,
                group_names=self.benchmark.group_names,
            )
            if rule == "id_val_worst_group_accuracy":
                return (float(metrics["worst_group_accuracy"]), float(metrics["accuracy"]))
            return (float(metrics["accuracy"]),)

        return score

    def logits(self, model: nn.Module, split: Split) -> torch.Tensor:
        """Logits (N, K) of a Classifier or Combination on ``split``, from cached features."""
        return model_logits(model, split, self.cache)

    def accuracy(self, model: nn.Module, split: Split) -> float:
        """Accuracy of ``model`` on ``split`` (features cached, so scoring it later is free)."""
        predictions = self.logits(model, split).argmax(dim=1).numpy()
        return float((predictions == split.labels).mean())

    def trainable_copy(self) -> nn.Module:
        """A deep copy of the pretrained featurizer on the training device."""
        return copy.deepcopy(self.backbone.featurizer).to(self.device)


def part_file(name: str) -> str:
    """A file-name-safe form of a part's name."""
    import re

    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)
