"""Conjugate prompts under a chat template: the transform rewrites the user's content
(demonstrations and query), then the template is applied, so its special tokens survive."""

from __future__ import annotations

import numpy as np
import pytest

from shiftlab.config.sections import TaskConfig
from shiftlab.data.benchmark import Split
from shiftlab.lm.conjugate import conjugated_split
from shiftlab.lm.tasks import chat_template, task_split
from shiftlab.lm.transforms import make_transform
from shiftlab.registry import TRANSFORMS
from shiftlab.testing import fast_options


@pytest.fixture(scope="module")
def chat(tiny_lm_dir):
    from transformers import AutoTokenizer

    return chat_template(AutoTokenizer.from_pretrained(str(tiny_lm_dir)))


def split() -> Split:
    texts = ["a quiet film about a long winter.", "a dull one.", "no opinion at all."]
    return Split("id_test", "id_test", texts, np.array([1, 0, 0]))


@pytest.mark.parametrize("name", TRANSFORMS.names())
def test_every_special_token_survives_and_the_transformed_text_sits_inside(chat, name):
    words = {"negative": " negative", "positive": " positive"}
    task = TaskConfig(template="Review: {text}\nSentiment:", label_words=words, chat=True)
    prompted = task_split(split(), task, ["negative", "positive"], split(), chat=chat)
    template = chat("CONTENT")
    before, after = template.split("CONTENT")
    assert "<|im_start|>" in before  # SmolLM2's template
    transform = make_transform(name, fast_options(TRANSFORMS[name]))
    for item, mapped in zip(prompted.inputs, conjugated_split(prompted, transform, chat).inputs,
                            strict=True):  # fmt: skip
        assert mapped.prompt == before + transform.forward(item.user) + after
        assert mapped.prompt.startswith(before) and mapped.prompt.endswith(after)
        assert mapped.user == transform.forward(item.user) and mapped.text == item.text
    # transforming the formatted prompt instead would have rewritten the special tokens
    assert make_transform("leetspeak").forward(before) != before
