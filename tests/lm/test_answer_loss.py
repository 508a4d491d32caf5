"""Answer-only batches and loss on a tiny random Llama with SmolLM2's tokenizer."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tiny_lm import smollm2_tokenizer, tiny_llama

from shiftlab.errors import DataError
from shiftlab.lm.answer_loss import IGNORE_INDEX, answer_loss, answer_only_batch

PROMPTS = ["Review: loved it\nSentiment:", "Q: capital of France?\nA: ", "Translate 'chat':"]
ANSWERS = [" positive", "Paris, of course", " cat"]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return smollm2_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer: Any) -> torch.nn.Module:
    return tiny_llama(len(tokenizer), seed=2)


def pieces(tokenizer: Any, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """Prompt and answer ids as the batch should hold them (trailing space moved, EOS added)."""
    head = prompt.rstrip()
    tail = prompt[len(head) :] + answer
    answer_ids = tokenizer(tail, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return tokenizer(head)["input_ids"], answer_ids


def test_every_prompt_token_and_padding_is_masked(tokenizer: Any) -> None:
    batch = answer_only_batch(tokenizer, PROMPTS, ANSWERS, max_length=64)
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # EOS must be kept by position
    for i, (prompt, answer) in enumerate(zip(PROMPTS, ANSWERS, strict=True)):
        prompt_ids, answer_ids = pieces(tokenizer, prompt, answer)
        n, m = len(prompt_ids), len(answer_ids)
        labels, ids = batch["labels"][i], batch["input_ids"][i]
        assert ids[: n + m].tolist() == prompt_ids + answer_ids
        assert (labels[:n] == IGNORE_INDEX).all()  # every prompt token
        assert labels[n : n + m].tolist() == answer_ids  # every answer token, the EOS included
        assert (labels[n + m :] == IGNORE_INDEX).all()  # padding
        assert batch["attention_mask"][i].tolist() == [1] * (n + m) + [0] * (ids.numel() - n - m)
    assert all(v.shape == batch["input_ids"].shape for v in batch.values())


def test_loss_equals_a_hand_computation(model: Any, tokenizer: Any) -> None:
    batch = answer_only_batch(tokenizer, PROMPTS, ANSWERS, max_length=64)
    total, count = 0.0, 0
    for prompt, answer in zip(PROMPTS, ANSWERS, strict=True):
        prompt_ids, answer_ids = pieces(tokenizer, prompt, answer)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt_ids + answer_ids])).logits[0]
        logp = torch.log_softmax(logits, dim=-1)
        for j, token in enumerate(answer_ids):
            total -= float(logp[len(prompt_ids) + j - 1, token])
            count += 1
    loss = answer_loss(model, batch)
    assert loss.requires_grad and loss.ndim == 0
    assert loss.item() == pytest.approx(total / count, rel=1e-5)


def test_long_prompts_lose_tokens_from_the_left(tokenizer: Any) -> None:
    prompt = "word " * 50 + "Answer:"
    batch = answer_only_batch(tokenizer, [prompt], [" yes"], max_length=10)
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    answer_ids = tokenizer(" yes", add_special_tokens=False)["input_ids"] + [2]
    assert len(ids) == 10
    assert ids[-len(answer_ids) :] == answer_ids
    assert ids[: 10 - len(answer_ids)] == tokenizer(prompt)["input_ids"][-(10 - len(answer_ids)) :]
    assert labels.count(IGNORE_INDEX) == 10 - len(answer_ids)


def test_unusable_rows_are_data_errors(tokenizer: Any) -> None:
    with pytest.raises(DataError, match="answer 0 has"):
        answer_only_batch(tokenizer, ["Q:"], [" a b c d e f"], max_length=4)
    with pytest.raises(DataError, match="prompt 0 has no tokens"):
        answer_only_batch(tokenizer, [""], [" a"], max_length=8)
    no_eos = answer_only_batch(tokenizer, ["Q:"], [" a"], max_length=8, eos=False)
    assert no_eos["labels"][0].tolist()[-1] != tokenizer.eos_token_id
