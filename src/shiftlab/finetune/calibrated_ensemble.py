"""ID-calibrated ensembles (Kumar, Ma, Liang, Raghunathan, UAI 2022, arXiv 2207.08977).

"Ensembling the standard and robust models, after calibrating on only ID data." Each member
(by default the zero-shot model, robust, and the fully fine-tuned one, standard) is
temperature-scaled on ID validation data alone, then the calibrated probabilities are averaged.
No public code of the paper exists; its authors' prototype (AnanyaKumar/transfer_learning
history) calibrates each model on ID data and, per example, keeps the prediction of the more
confident calibrated model: ``rule: confidence`` does that. Nothing but one temperature per
member is fitted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from shiftlab.errors import ConfigError
from shiftlab.evaluate.calibration import fit_temperature
from shiftlab.finetune.context import RecipeContext
from shiftlab.models.classifier import Predictor
from shiftlab.models.combination import CalibratedEnsemble
from shiftlab.registry import FINETUNE
from shiftlab.typed import param, ref


@dataclass
class CalibratedEnsembleOptions:
    """Which predictors to ensemble, and how to combine their calibrated outputs."""

    members: list[str] = ref(
        ["zero_shot", "full_ft"], "predictors to ensemble: a robust one and a standard one"
    )
    rule: Literal["average", "confidence"] = param(
        "average", "average calibrated probabilities, or take the more confident member"
    )

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ConfigError("calibrated_ensemble needs at least two members")


@FINETUNE.register("calibrated_ensemble", options=CalibratedEnsembleOptions)
def calibrated_ensemble(ctx: RecipeContext, cfg: CalibratedEnsembleOptions) -> Iterator[Predictor]:
    """Temperature-scale each member on ID val, then average calibrated probabilities."""
    val = ctx.benchmark.val
    models = [ctx.predictor(name).model for name in cfg.members]
    temperatures = [fit_temperature(ctx.logits(model, val), val.labels) for model in models]
    yield Predictor(
        ctx.name,
        "calibrated_ensemble",
        CalibratedEnsemble(models, temperatures, cfg.rule),
        params={
            "members": list(cfg.members),
            "temperatures": [round(t, 4) for t in temperatures],
            "rule": cfg.rule,
        },
        save=False,
    )
