"""Greedy generation (batched == one at a time) and the answer metrics."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tiny_lm import smollm2_tokenizer, tiny_llama

from shiftlab.evaluate.generation import exact_match, normalize_answer, rouge_l
from shiftlab.lm.generate import greedy_generate

PROMPTS = [
    "The capital of France is",
    "Q: What is 2 + 2?\nA:",
    "Once upon a time, in a land far away, there lived a very old king who",
    "Hi",
    "List three colours:",
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return smollm2_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer: Any) -> torch.nn.Module:
    return tiny_llama(len(tokenizer), seed=1)


def argmax_loop(model: Any, tokenizer: Any, prompt: str, steps: int) -> str:
    """Greedy decoding by hand: full forward pass, argmax, append, until EOS."""
    ids = tokenizer(prompt)["input_ids"]
    new: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([ids + new])).logits[0, -1]
            token = int(logits.argmax())
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True)


def test_batched_greedy_equals_one_at_a_time(model: Any, tokenizer: Any) -> None:
    batched = greedy_generate(model, tokenizer, PROMPTS, max_new_tokens=8, batch_size=3)
    alone = [greedy_generate(model, tokenizer, [p], max_new_tokens=8)[0] for p in PROMPTS]
    assert batched == alone
    assert all(text for text in batched)
    assert alone[0] == argmax_loop(model, tokenizer, PROMPTS[0], 8)
    assert alone[2] == argmax_loop(model, tokenizer, PROMPTS[2], 8)


def test_stop_strings_cut_the_output(model: Any, tokenizer: Any) -> None:
    (full,) = greedy_generate(model, tokenizer, PROMPTS[:1], max_new_tokens=8)
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    (cut,) = greedy_generate(model, tokenizer, PROMPTS[:1], max_new_tokens=8, stop=[stop])
    assert cut == full[: full.find(stop)]
    (same,) = greedy_generate(model, tokenizer, PROMPTS[:1], max_new_tokens=8, stop=["\x00"])
    assert same == full


def test_exact_match_normalises_case_and_whitespace_only() -> None:
    assert normalize_answer("  Paris\n\tFrance ") == "paris france"
    assert exact_match(" PARIS ", "paris") == 1.0
    assert exact_match("New  York", "new york") == 1.0
    assert exact_match("Paris.", "Paris") == 0.0
    assert exact_match("", "  ") == 1.0


def test_rouge_l_is_lcs_f1_with_stemming() -> None:
    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert rouge_l("dogs bark", "a cat sat") == 0.0
    assert rouge_l("running cats", "run cat") == pytest.approx(1.0)  # Porter stemmer
    # LCS "the cat mat" = 3 of 4 prediction tokens and of 6 reference tokens
    precision, recall = 3 / 4, 3 / 6
    expected = 2 * precision * recall / (precision + recall)
    assert rouge_l("the cat red mat", "the cat sat on the mat") == pytest.approx(expected)
    assert rouge_l("", "anything") == 0.0
