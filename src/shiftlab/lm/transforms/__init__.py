"""Conjugate prompting: invertible transforms of a whole prompt and of the model's answer.

Kotha, Springer and Raghunathan, "Understanding Catastrophic Forgetting in Language Models via
Implicit Inference", ICLR 2024, arXiv 2309.10105. Reference implementation followed:
kothasuhas/understanding-forgetting (``icl_vs_if/create_datasets.py``, ``generate.py``,
``evaluate_accuracy.py``). A conjugate prompt applies an (approximately) invertible transform
``T`` to the whole prompt, demonstrations included, so that the task looks less like what
fine-tuning taught the model; the answer is read back with ``T``'s inverse.

Every transform is registered in :data:`TRANSFORMS` with its options dataclass and built by
:func:`make_transform`::

    t = make_transform("leetspeak")
    t.forward("Repeat the input.")        # 'R3p347 7h3 1npu7.'
    t.inverse(" P05171v3")                 # ' positive'

``leetspeak`` and ``pig_latin`` follow the reference's data; ``translate`` reads translations
the user supplies (columns of the data, a table, or a ``module:function`` callable).
"""

from __future__ import annotations

from shiftlab.lm.transforms.base import PromptTransform, load_callable, make_transform
from shiftlab.lm.transforms.leetspeak import Leetspeak
from shiftlab.lm.transforms.pig_latin import PigLatin
from shiftlab.lm.transforms.translate import Translate

# One registry, defined in shiftlab.registry; importing this package fills it.
from shiftlab.registry import TRANSFORMS

__all__ = [
    "TRANSFORMS",
    "Leetspeak",
    "PigLatin",
    "PromptTransform",
    "Translate",
    "load_callable",
    "make_transform",
]
