"""Data curation on arrays: out-of-sample probabilities, label issues (confident learning),
example difficulty (EL2N, GraNd, forgetting), near duplicates, planted label noise, and how well
flags recover it. Pure functions; a run's curation plan (:mod:`.plan`) wires them in. cleanlab
(the ``curation`` extra) is imported only when :func:`label_issues` runs.
"""

from shiftlab.curation import actions
from shiftlab.curation.data_diet import (
    DEFAULT_SEEDS,
    HeadTrainOptions,
    initial_linear_head,
    linear_head_factory,
    linear_head_trainer,
    train_linear_head,
)
from shiftlab.curation.detection import detection_metrics
from shiftlab.curation.duplicates import dedupe_drop, near_duplicates
from shiftlab.curation.el2n import el2n, el2n_scores
from shiftlab.curation.forgetting import ForgettingTracker, forgetting_counts
from shiftlab.curation.grand import grand, grand_scores
from shiftlab.curation.label_issues import LabelIssues, label_issues
from shiftlab.curation.oof import (
    out_of_sample_generic,
    out_of_sample_probabilities,
    stratified_folds,
)

__all__ = [
    "DEFAULT_SEEDS",
    "ForgettingTracker",
    "HeadTrainOptions",
    "LabelIssues",
    "actions",
    "dedupe_drop",
    "detection_metrics",
    "el2n",
    "el2n_scores",
    "forgetting_counts",
    "grand",
    "grand_scores",
    "initial_linear_head",
    "label_issues",
    "linear_head_factory",
    "linear_head_trainer",
    "near_duplicates",
    "out_of_sample_generic",
    "out_of_sample_probabilities",
    "stratified_folds",
    "train_linear_head",
]
