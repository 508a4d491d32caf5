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
    lora,
    lp_ft,
    model_soup,
    sft,
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
    "lora",
    "lp_ft",
    "model_soup",
    "sft",
    "train",
    "wise_ft",
    "zero_shot",
]
