"""Label-word and token log-probabilities on a tiny random Llama with SmolLM2's tokenizer."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from tiny_lm import smollm2_tokenizer, tiny_llama

from shiftlab.errors import ConfigError, DataError
from shiftlab.lm.logprobs import (
    boundary_mismatches,
    label_word_logprobs,
    token_logprobs,
    vocab_stats,
)
from shiftlab.lm.lora import add_lora, apply_delta, merged_delta

PROMPTS = [
    "Review: a warm, funny film.\nSentiment:",
    "Review: dull.\nSentiment:",
    "Review: the plot wanders, the acting is wooden and the ending drags on for far too long."
    "\nSentiment:",
    "Is the sky blue? Answer:",
    "Q: 2 + 2 =\nA:",
]
WORDS = [" positive", " negative", " very positive", " mixed feelings"]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return smollm2_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer: Any) -> torch.nn.Module:
    return tiny_llama(len(tokenizer))


def hand_logprob(model: Any, prompt_ids: list[int], word_ids: list[int]) -> float:
    """Sum of log p(word token | everything before it), from one unpadded forward pass."""
    ids = torch.tensor([prompt_ids + word_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    start = len(prompt_ids)
    return sum(float(logp[start + j - 1, t]) for j, t in enumerate(word_ids))


def test_multi_token_word_equals_hand_summed_token_logprobs(model: Any, tokenizer: Any) -> None:
    scores = label_word_logprobs(model, tokenizer, PROMPTS, WORDS, batch_size=3)
    assert scores.shape == (len(PROMPTS), len(WORDS))
    assert len(tokenizer(" mixed feelings", add_special_tokens=False)["input_ids"]) == 2
    for i, prompt in enumerate(PROMPTS):
        prompt_ids = tokenizer(prompt)["input_ids"]
        for k, word in enumerate(WORDS):
            word_ids = tokenizer(word, add_special_tokens=False)["input_ids"]
            expected = hand_logprob(model, prompt_ids, word_ids)
            assert scores[i, k].item() == pytest.approx(expected, abs=1e-4)


def test_scores_do_not_depend_on_the_batch(model: Any, tokenizer: Any) -> None:
    alone = torch.cat([label_word_logprobs(model, tokenizer, [p], WORDS) for p in PROMPTS])
    together = label_word_logprobs(model, tokenizer, PROMPTS, WORDS, batch_size=len(PROMPTS))
    reordered = label_word_logprobs(model, tokenizer, PROMPTS[::-1], WORDS, batch_size=2)
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=0)
    torch.testing.assert_close(reordered.flip(0), alone, atol=1e-4, rtol=0)


def test_one_token_words_need_no_second_pass_and_agree(model: Any, tokenizer: Any) -> None:
    single = label_word_logprobs(model, tokenizer, PROMPTS, [" positive", " negative"])
    mixed = label_word_logprobs(model, tokenizer, PROMPTS, [" positive", " negative", " mixed"])
    torch.testing.assert_close(single, mixed[:, :2], atol=1e-5, rtol=0)


def test_trailing_space_of_the_prompt_moves_onto_the_word(model: Any, tokenizer: Any) -> None:
    spaced = label_word_logprobs(model, tokenizer, ["Sentiment: "], ["positive"])
    plain = label_word_logprobs(model, tokenizer, ["Sentiment:"], [" positive"])
    torch.testing.assert_close(spaced, plain)


def test_usual_templates_tokenise_like_their_concatenation(tokenizer: Any) -> None:
    assert boundary_mismatches(tokenizer, [*PROMPTS, "Label: "], WORDS) == []
    # a word glued to a letter merges across the boundary: reported, and scored as its own tokens
    assert boundary_mismatches(tokenizer, ["It was pos"], ["itive"]) == [(0, 0)]


def test_bad_label_words_and_empty_prompts_are_user_errors(model: Any, tokenizer: Any) -> None:
    with pytest.raises(ConfigError, match="label_words is empty"):
        label_word_logprobs(model, tokenizer, PROMPTS, [])
    with pytest.raises(ConfigError, match="has no tokens"):
        label_word_logprobs(model, tokenizer, PROMPTS, [""])
    with pytest.raises(DataError, match="prompt 1 has no tokens"):
        label_word_logprobs(model, tokenizer, ["ok:", ""], WORDS)


def test_token_logprobs_match_one_forward_pass_and_any_batch(model: Any, tokenizer: Any) -> None:
    together = token_logprobs(model, tokenizer, PROMPTS, batch_size=len(PROMPTS))
    for text, logp in zip(PROMPTS, together, strict=True):
        ids = tokenizer(text)["input_ids"]
        (alone,) = token_logprobs(model, tokenizer, [text])
        with torch.no_grad():
            full = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], dim=-1)
        expected = full[:-1].gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)
        assert logp.shape == (len(ids) - 1,)
        torch.testing.assert_close(logp, expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(logp, alone, atol=1e-5, rtol=0)


def test_vocab_stats_are_min_k_plus_plus_mean_and_std(model: Any, tokenizer: Any) -> None:
    text = PROMPTS[2]
    (logp, mean, std), (short, *_) = token_logprobs(
        model, tokenizer, [text, "Hi"], with_vocab_stats=True
    )
    ids = tokenizer(text)["input_ids"]
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1], dim=-1)
    p = full.exp()
    torch.testing.assert_close(mean, (p * full).sum(-1), atol=1e-4, rtol=1e-5)
    variance = (p * full.square()).sum(-1) - (p * full).sum(-1).square()
    torch.testing.assert_close(std, variance.sqrt(), atol=1e-4, rtol=1e-4)
    assert mean.shape == std.shape == logp.shape == (len(ids) - 1,)
    assert short.shape == (len(tokenizer("Hi")["input_ids"]) - 1,)
    assert bool((logp <= 0).all()) and bool((std >= 0).all())


def test_vocab_stats_of_known_distributions() -> None:
    point = torch.log(torch.tensor([1.0, 0.0, 0.0, 0.0]))  # log 0 = -inf contributes nothing
    uniform = torch.log(torch.full((4,), 0.25))
    skewed = torch.log(torch.tensor([0.5, 0.25, 0.25, 0.0]))
    mean, std = vocab_stats(torch.stack([point, uniform, skewed]))
    log2 = torch.log(torch.tensor(2.0)).item()
    # skewed: log p is -log 2 with prob 1/2 and -2 log 2 with prob 1/2
    assert mean.tolist() == pytest.approx([0.0, -2 * log2, -1.5 * log2], abs=1e-6)
    assert std.tolist() == pytest.approx([0.0, 0.0, 0.5 * log2], abs=1e-6)


def test_scoring_restores_training_mode(model: Any, tokenizer: Any) -> None:
    model.train()
    try:
        label_word_logprobs(model, tokenizer, PROMPTS[:1], WORDS[:1])
        assert model.training
    finally:
        model.eval()


def test_a_peft_model_scores_like_its_merged_weights(model: Any, tokenizer: Any) -> None:
    adapted = add_lora(copy.deepcopy(model), rank=4, alpha=8)
    with torch.no_grad():
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.3)
    merged = apply_delta(model, merged_delta(adapted), 1.0)
    through_peft = label_word_logprobs(adapted, tokenizer, PROMPTS, WORDS, batch_size=2)
    torch.testing.assert_close(
        through_peft, label_word_logprobs(merged, tokenizer, PROMPTS, WORDS), atol=1e-3, rtol=0
    )
    assert not torch.allclose(through_peft, label_word_logprobs(model, tokenizer, PROMPTS, WORDS))
