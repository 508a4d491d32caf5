"""Machine unlearning: methods that make a trained model forget a set of its training examples.

Each method is registered in :data:`UNLEARN` with its options dataclass and the model kinds it
applies to (``encoder``, ``causal_lm``), and is called as::

    unlearned = UNLEARN["scrub"].obj(model, forget, retain, options, seed=0, device=device)

where ``forget`` and ``retain`` are :class:`Data` and ``options`` an instance of the entry's
``config``. It returns an unlearned copy; ``model`` is never modified.
"""

from __future__ import annotations

from shiftlab.registry import UNLEARN
from shiftlab.unlearn import (  # the modules register into UNLEARN
    finetune_retain,
    grad_diff,
    gradient_ascent,
    neggrad_plus,
    npo,
    rmu,
    scrub,
    simnpo,
    ssd,
    task_vector,
    whp,
)
from shiftlab.unlearn.base import Data, model_kind

__all__ = [
    "UNLEARN",
    "Data",
    "finetune_retain",
    "grad_diff",
    "gradient_ascent",
    "model_kind",
    "neggrad_plus",
    "npo",
    "rmu",
    "scrub",
    "simnpo",
    "ssd",
    "task_vector",
    "whp",
]
