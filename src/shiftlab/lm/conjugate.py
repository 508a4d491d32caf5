"""Conjugate prompting as an evaluation transform (Kotha, Springer, Raghunathan, ICLR 2024,
arXiv 2309.10105).

Fine-tuning suppresses capabilities most on tasks close to the fine-tuning distribution;
making the prompt look far from it recovers pretrained behaviour. A transform P maps each prompt
(demonstrations included); for a classification task the model scores P's image of each label
word after the transformed prompt (class k stays class k, so P's inverse is the correspondence
itself); for a generation task the model's answer is mapped back with P's inverse and compared
with the reference. The run's conjugate stage (:mod:`shiftlab.stages.conjugate`) uses these.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from shiftlab.data.benchmark import Split
from shiftlab.evaluate.generation import exact_match, rouge_l
from shiftlab.lm.tasks import PromptItem


def conjugated_split(split: Split, transform: Any, chat: Any = None) -> Split:
    """``split`` with every prompt (and label word) mapped by the transform. The transform
    rewrites the user's content (demonstrations and query) and the chat template, when the task
    has one (``chat``: ``text -> formatted text``), is applied after: its special tokens stay."""
    items = []
    for item in split.inputs:
        user = transform.forward(item.user if item.user is not None else item.prompt)
        prompt = chat(user) if chat is not None else user
        choices = tuple(transform.forward_all(item.choices))
        items.append(PromptItem(prompt, choices, item.answer, user=user, text=item.text))
    return dataclasses.replace(split, inputs=items, parent=None)


def conjugated_outputs(outputs: list[str], transform: Any) -> list[str]:
    """Generated answers mapped back by the transform's inverse."""
    return [transform.inverse(o) for o in outputs]


def rescore_generation(item: Any, outputs: list[str]) -> None:
    """Score a generation record (a :class:`shiftlab.predictions.Scored`) again with other
    outputs (the answers mapped back): its ``exact_match``, ``rouge_l`` and outputs."""
    answers = [i.answer for i in item.split.inputs]
    pairs = list(zip(outputs, answers, strict=True))
    item.record["exact_match"] = float(np.mean([exact_match(*p) for p in pairs]))
    item.record["rouge_l"] = float(np.mean([rouge_l(*p) for p in pairs]))
    item.outputs = outputs
