"""The shared training machinery below every method family: the one training loop
(:mod:`.trainer`), its options (:mod:`.options`), training checkpoints (:mod:`.checkpoints`) and
the classification losses (:mod:`.losses`). Recipes, curation, unlearning and adapters import it;
it imports none of them."""

from shiftlab.training.checkpoints import checkpoints
from shiftlab.training.options import ReferenceSGD, TrainOptions
from shiftlab.training.trainer import Batch, TrainResult, make_optimizer, train

__all__ = [
    "Batch",
    "ReferenceSGD",
    "TrainOptions",
    "TrainResult",
    "checkpoints",
    "make_optimizer",
    "train",
]
