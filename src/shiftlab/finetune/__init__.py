"""Fine-tuning recipes: each registers itself in ``FINETUNE`` on import."""

from shiftlab.finetune import (
    br_dro,
    calibrated_ensemble,
    cvar_dro,
    erm,
    flyp,
    full_ft,
    group_dro,
    jtt,
    linear_probe,
    lp_ft,
    model_soup,
    wise_ft,
    zero_shot,
)
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.trainer import Batch, TrainConfig, train

__all__ = [
    "Batch",
    "RecipeContext",
    "TrainConfig",
    "br_dro",
    "calibrated_ensemble",
    "cvar_dro",
    "erm",
    "flyp",
    "full_ft",
    "group_dro",
    "jtt",
    "linear_probe",
    "lp_ft",
    "model_soup",
    "train",
    "wise_ft",
    "zero_shot",
]
