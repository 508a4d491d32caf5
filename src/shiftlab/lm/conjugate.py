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


def conjugate_records(session: Any, spec: Any, targets: list[str]) -> list[Any]:
    """Records of each target predictor on every evaluation split with its prompts (and label
    words) mapped by the entry's transform; generated answers are mapped back and scored."""
    import numpy as np
    from rich.markup import escape

    from shiftlab.evaluate import evaluate_predictor
    from shiftlab.lm.generate import exact_match, rouge_l
    from shiftlab.lm.transforms import make_transform
    from shiftlab.runtime import log

    transform = make_transform(spec.transform, **spec.options)
    splits = [conjugated_split(s, transform) for s in session.benchmark.eval_splits()]
    scored = []
    for name in targets:
        predictor = session.lookup(name)
        log(f"conjugate.{spec.name} on {escape(name)}")
        for item in evaluate_predictor(
            predictor,
            splits,
            session.cache,
            seed=session.cfg.seed,
            group_names=session.benchmark.group_names,
        ):
            if item.outputs is not None:  # generation: answers mapped back, then scored
                outputs = conjugated_outputs(item.outputs, transform)
                answers = [i.answer for i in item.split.inputs]
                pairs = list(zip(outputs, answers, strict=True))
                item.record["exact_match"] = float(np.mean([exact_match(*p) for p in pairs]))
                item.record["rouge_l"] = float(np.mean([rouge_l(*p) for p in pairs]))
                item.outputs = outputs
            item.record["conjugate"] = spec.name
            scored.append(item)
    return scored
