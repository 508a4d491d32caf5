"""Conjugate prompting as an evaluation transform (Kotha, Springer, Raghunathan, ICLR 2024,
arXiv 2309.10105).

Fine-tuning suppresses capabilities most on tasks close to the fine-tuning distribution;
making the prompt look far from it recovers pretrained behaviour. A transform P maps each prompt
(demonstrations included); for a classification task the model scores P's image of each label
word after the transformed prompt (class k stays class k, so P's inverse is the correspondence
itself); for a generation task the model's answer is mapped back with P's inverse and compared
with the reference. Records carry ``conjugate: <entry name>``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shiftlab.data.benchmark import Split
from shiftlab.lm.tasks import PromptItem


def conjugated_split(split: Split, transform: Any) -> Split:
    """``split`` with every prompt (and label word) mapped by the transform."""
    items = [
        PromptItem(
            transform.forward(item.prompt),
            tuple(transform.forward_all(item.choices)),
            item.answer,
        )
        for item in split.inputs
    ]
    return dataclasses.replace(split, inputs=items, parent=None)


def conjugated_outputs(outputs: list[str], transform: Any) -> list[str]:
    """Generated answers mapped back by the transform's inverse."""
    return [transform.inverse(o) for o in outputs]
