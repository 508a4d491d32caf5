"""Log-probabilities from a causal LM: label words given a prompt, and every token of a text.

``label_word_logprobs`` scores verbalizers the way in-context-learning evaluations do (the class
whose label word is most probable wins; GPT-3, Brown et al., NeurIPS 2020, arXiv 2005.14165), as
lm-evaluation-harness's ``loglikelihood`` requests (``lm_eval/models/huggingface.py``): the sum of
the log-probabilities of the word's tokens, each given the prompt and the word's earlier tokens.

Tokenisation. The prompt is tokenised alone (with the tokenizer's special tokens) and each word
with no special tokens; the row scored is ``prompt ids + word ids``. Trailing whitespace of the
prompt is moved onto the word first (``"Label: " + "yes"`` is scored as ``"Label:" + " yes"``),
as lm-evaluation-harness's ``_encode_pair`` does, because BPE attaches a space to the word after
it. With that, ``prompt ids + word ids`` equals the tokenisation of ``prompt + word`` whenever
the word starts with a space or the prompt ends in punctuation or a newline (the usual
templates). Where a BPE merge would cross the boundary (a word glued to a letter), the word's own
tokenisation is still scored: every word then has the same tokens after every prompt, which is
what lets the prompt be run once. ``boundary_mismatches`` lists such pairs.

Shared prefix. Each batch of prompts is run once (left padding, explicit position ids); the
first token of every word is scored from the prompt's last logits, and only when some word has
more tokens is the prompt's KV cache repeated once per word for a second, short pass. Measured on
SmolLM2-135M (CPU, one thread shared with other jobs, 16 prompts of 46-112 tokens, batch 8), this
took 4.8-5.1 s against 10.0-10.6 s for scoring every prompt+word row separately with 2 one-token
words, and 6.0-8.3 s against 31-33 s with 6 words of 1-2 tokens, with scores equal to 1e-5.

``token_logprobs`` gives log p(x_t | x_<t) for every token of a text and, with
``with_vocab_stats=True``, the mean and standard deviation of log p over the vocabulary at each
position, which Min-K%++ (Zhang et al., ICLR 2025, arXiv 2404.02936) divides by; it follows
``zjysteven/mink-plus-plus`` (``run.py``): ``mu = sum_v p_v log p_v`` and
``sigma = sqrt(sum_v p_v (log p_v)^2 - mu^2)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from shiftlab.errors import ConfigError, DataError
from shiftlab.lm.tokens import (
    batches,
    encode,
    encode_continuation,
    evaluating,
    model_device,
    pad,
    pad_id,
    split_continuation,
)


def _prompt_and_words(
    tokenizer: Any, prompt: str, label_words: Sequence[str]
) -> tuple[list[int], list[list[int]]]:
    head, _ = split_continuation(prompt, "")
    words = [encode_continuation(tokenizer, split_continuation(prompt, w)[1]) for w in label_words]
    return encode(tokenizer, head), words


def boundary_mismatches(
    tokenizer: Any, prompts: Sequence[str], label_words: Sequence[str]
) -> list[tuple[int, int]]:
    """(prompt index, word index) pairs whose concatenation tokenises differently from the
    prompt's tokens followed by the word's (a BPE merge across the boundary)."""
    found = []
    for i, prompt in enumerate(prompts):
        ids, words = _prompt_and_words(tokenizer, prompt, label_words)
        for k, word in enumerate(label_words):
            if encode(tokenizer, prompt + word) != ids + words[k]:
                found.append((i, k))
    return found


def cache_field(output: Any) -> str:
    """Name of the KV cache in a model output: ``cache`` (transformers 5.2x+) or the older
    ``past_key_values``; passed back to the model under the same name."""
    for name in ("cache", "past_key_values"):
        if getattr(output, name, None) is not None:
            return name
    raise TypeError(f"{type(output).__name__} returned no KV cache")


def label_word_logprobs(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    label_words: Sequence[str],
    *,
    batch_size: int = 8,
) -> torch.Tensor:
    """Sum of the log-probabilities of each label word's tokens after each prompt.

    Args:
        model: a causal LM (``AutoModelForCausalLM``, or a PEFT model around one).
        tokenizer: its tokenizer.
        prompts: N prompt strings.
        label_words: K verbalizers, such as ``" positive"`` (any number of tokens).
        batch_size: prompts per forward pass (the second pass holds batch_size x K rows).

    Returns:
        (N, K) float32 tensor on the CPU of log p(word | prompt).

    Raises:
        ConfigError: no label words, or a label word with no tokens.
        DataError: a prompt with no tokens (nothing to condition the first word token on).
    """
    if not label_words:
        raise ConfigError("label_words is empty: give at least one label word")
    for word in label_words:
        if not encode_continuation(tokenizer, word):
            raise ConfigError(f"label word {word!r} has no tokens")
    device, pad_token = model_device(model), pad_id(tokenizer)
    k = len(label_words)
    scores = torch.zeros(len(prompts), k)
    with evaluating(model):
        for chunk in batches(len(prompts), batch_size):
            encoded = [_prompt_and_words(tokenizer, prompts[i], label_words) for i in chunk]
            for i, (ids, _) in zip(chunk, encoded, strict=True):
                if not ids:
                    raise DataError(f"prompt {i} has no tokens: nothing to score a label after")
            ids, mask, positions = pad([e[0] for e in encoded], pad_token, "left")
            multi = any(len(w) > 1 for _, words in encoded for w in words)
            out = model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                use_cache=multi,
                logits_to_keep=1,
            )
            first = torch.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()
            for b, (_, words) in enumerate(encoded):
                scores[chunk[b]] = first[b, [w[0] for w in words]]
            if multi:
                scores[chunk.start : chunk.stop] += _later_tokens(
                    model, out, encoded, mask, pad_token
                )
    return scores


def _later_tokens(
    model: nn.Module,
    prompt_out: Any,
    encoded: list[tuple[list[int], list[list[int]]]],
    prompt_mask: torch.Tensor,
    pad_token: int,
) -> torch.Tensor:
    """(B, K) log-probabilities of every word token after the first, from the prompt's KV cache
    repeated K times: row b * K + k feeds word k's tokens but its last after prompt b."""
    device = model_device(model)
    k = len(encoded[0][1])
    field = cache_field(prompt_out)
    cache = getattr(prompt_out, field)
    cache.batch_repeat_interleave(k)
    words = [w for _, ws in encoded for w in ws]
    ids, mask, positions = pad([w[:-1] or w[:1] for w in words], pad_token, "right")
    positions = positions + prompt_mask.sum(dim=1).repeat_interleave(k)[:, None]
    full_mask = torch.cat([prompt_mask.repeat_interleave(k, dim=0), mask], dim=1)
    logits = model(
        input_ids=ids.to(device),
        attention_mask=full_mask.to(device),
        position_ids=positions.to(device),
        use_cache=False,
        **{field: cache},
    ).logits
    logp = torch.log_softmax(logits.float(), dim=-1).cpu()
    extra = torch.zeros(len(words))
    for row, word in enumerate(words):
        if len(word) > 1:
            targets = torch.as_tensor(word[1:])[:, None]
            extra[row] = logp[row, : len(word) - 1].gather(-1, targets).sum()
    return extra.view(len(encoded), k)


def vocab_stats(logprobs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of log p under p, over the last (vocabulary) dimension.

    Args:
        logprobs: (..., V) log-probabilities (a log_softmax).

    Returns:
        ``mean`` (...) = sum_v p_v log p_v and ``std`` (...) =
        sqrt(sum_v p_v (log p_v)^2 - mean^2); words with p_v = 0 contribute 0.
    """
    p = logprobs.exp()
    weighted = torch.where(p > 0, p * logprobs, torch.zeros_like(p))
    mean = weighted.sum(dim=-1)
    second = torch.where(p > 0, weighted * logprobs, torch.zeros_like(p)).sum(dim=-1)
    return mean, (second - mean.square()).clamp(min=0).sqrt()


def token_logprobs(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    with_vocab_stats: bool = False,
) -> list[torch.Tensor] | list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Log-probability of every token of each text given the tokens before it.

    Texts are tokenised with the tokenizer's special tokens (a BOS where the model adds one),
    truncated to their first ``max_length`` tokens, and right-padded (a real token never attends
    to padding, so a text's values do not depend on its batch). The first token has no prefix
    and is not scored.

    Args:
        model: a causal LM.
        tokenizer: its tokenizer.
        texts: N strings.
        batch_size: texts per forward pass.
        max_length: keep at most this many tokens of each text (None: all).
        with_vocab_stats: also return the vocabulary mean and std of log p at each position.

    Returns:
        Per text (T_i tokens), a float32 CPU tensor ``logp`` of shape (T_i - 1,); with
        ``with_vocab_stats``, a tuple ``(logp, mean, std)`` of three (T_i - 1,) tensors, where
        mean and std are those of the distribution that ``logp`` was read from.
    """
    device, pad_token = model_device(model), pad_id(tokenizer)
    results: list[Any] = [None] * len(texts)
    with evaluating(model):
        for chunk in batches(len(texts), batch_size):
            rows = [encode(tokenizer, texts[i])[:max_length] for i in chunk]
            kept = [(i, row) for i, row in zip(chunk, rows, strict=True) if len(row) > 1]
            for i, row in zip(chunk, rows, strict=True):
                if len(row) <= 1:
                    empty = torch.zeros(0)
                    results[i] = (empty, empty, empty) if with_vocab_stats else empty
            if not kept:
                continue
            ids, mask, positions = pad([row for _, row in kept], pad_token, "right")
            logits = model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
            ).logits
            for b, (i, row) in enumerate(kept):
                steps = logits[b, : len(row) - 1].float()
                targets = torch.as_tensor(row[1:], device=steps.device)[:, None]
                norm = torch.logsumexp(steps, dim=-1)
                logp = (steps.gather(-1, targets).squeeze(-1) - norm).cpu()
                if with_vocab_stats:
                    mean, std = vocab_stats(steps - norm[:, None])
                    results[i] = (logp, mean.cpu(), std.cpu())
                else:
                    results[i] = logp
    return results
