"""Fine-tuning recipes: each registers itself in ``FINETUNE`` on import."""

from shiftlab.finetune import flyp, full_ft, linear_probe, lp_ft, wise_ft, zero_shot
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.trainer import Batch, TrainConfig, train

__all__ = [
    "Batch",
    "RecipeContext",
    "TrainConfig",
    "flyp",
    "full_ft",
    "linear_probe",
    "lp_ft",
    "train",
    "wise_ft",
    "zero_shot",
]
