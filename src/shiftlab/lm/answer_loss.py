"""Answer-only language-modelling loss: cross-entropy on the answer tokens, none on the prompt.

The loss of supervised instruction tuning with the prompt masked (InstructGPT, Ouyang et al.,
NeurIPS 2022, arXiv 2203.02155; Alpaca, ``tatsu-lab/stanford_alpaca`` ``train.py``, which sets
every prompt label to ``IGNORE_INDEX = -100``). Labels follow Hugging Face's convention: the
label of position t is the token at t (the loss shifts by one), and -100 is ignored.

A row is ``prompt ids + answer ids (+ EOS)``, tokenised as in :mod:`shiftlab.lm.logprobs` (the
prompt's trailing whitespace moves onto the answer), right-padded. Rows longer than
``max_length`` lose prompt tokens from the left, so the answer and the end of the prompt stay.
The EOS after the answer (on by default) teaches the model to stop after answering; it is
masked by position, not by id, so it is learned even where the pad token is the EOS token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.errors import DataError
from shiftlab.lm.tokens import encode, encode_continuation, pad, pad_id, split_continuation

IGNORE_INDEX = -100


def answer_only_batch(
    tokenizer: Any,
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    max_length: int,
    eos: bool = True,
) -> dict[str, torch.Tensor]:
    """Tokenise prompt/answer pairs into one right-padded training batch.

    Args:
        tokenizer: the model's tokenizer.
        prompts: B prompts.
        answers: B answers or label words (a label word carries its leading space).
        max_length: the most tokens in a row (prompt tokens beyond it are dropped from the left).
        eos: append the EOS token to each answer.

    Returns:
        ``input_ids``, ``attention_mask``, ``position_ids`` and ``labels``, each (B, T) long;
        ``labels`` is -100 on every prompt token and on padding, the token id elsewhere.

    Raises:
        ValueError: prompts and answers differ in length.
        DataError: a prompt or an answer has no tokens, or an answer leaves no room in
            max_length for one prompt token.
    """
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    rows, labels = [], []
    for i, (prompt, answer) in enumerate(zip(prompts, answers, strict=True)):
        head, tail = split_continuation(prompt, answer)
        answer_ids = encode_continuation(tokenizer, tail)
        if eos and tokenizer.eos_token_id is not None:
            answer_ids.append(int(tokenizer.eos_token_id))
        if not answer_ids:
            raise DataError(f"answer {i} ({answer!r}) has no tokens")
        room = max_length - len(answer_ids)
        if room < 1:
            raise DataError(
                f"answer {i} has {len(answer_ids)} tokens: max_length={max_length} leaves no "
                "room for the prompt"
            )
        prompt_ids = encode(tokenizer, head)[-room:]
        if not prompt_ids:
            raise DataError(f"prompt {i} has no tokens: nothing to predict the answer from")
        rows.append(prompt_ids + answer_ids)
        labels.append([IGNORE_INDEX] * len(prompt_ids) + answer_ids)
    ids, mask, positions = pad(rows, pad_id(tokenizer), "right")
    target, _, _ = pad(labels, IGNORE_INDEX, "right")
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": positions,
        "labels": target,
    }


def causal_logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token logits (B, T, V) of a causal LM on a padded batch (its ids, mask and
    positions, moved to the model's device)."""
    device = next(model.parameters()).device
    return model(
        input_ids=batch["input_ids"].to(device),
        attention_mask=batch["attention_mask"].to(device),
        position_ids=batch["position_ids"].to(device),
    ).logits


def answer_nll(
    model: nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example's answer negative log-likelihood -log pi(y|x), summed over its answer tokens
    (TOFU's ``get_batch_loss``), and its number of answer tokens |y|.

    Returns:
        ``nll`` (B,) float, differentiable, and ``lengths`` (B,) long.
    """
    logits = causal_logits(model, batch)
    labels = batch["labels"].to(logits.device)
    shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    nll = F.cross_entropy(
        logits.flatten(0, 1).float(), shifted.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
    ).view(shifted.shape)
    return nll.sum(dim=1), (shifted != IGNORE_INDEX).sum(dim=1)


def answer_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over all answer tokens of the batch (a token-level mean, so a long
    answer weighs more than a short one).

    Args:
        model: a causal LM.
        batch: from :func:`answer_only_batch` (on any device; moved to the model's).

    Returns:
        Scalar loss, differentiable.
    """
    logits = causal_logits(model, batch)
    labels = batch["labels"].to(logits.device)
    # Shift the labels rather than the logits: logits[:, :-1] would copy the (B, T, vocab)
    # tensor; the last position predicts nothing (its label is ignored).
    shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    return F.cross_entropy(
        logits.flatten(0, 1).float(), shifted.flatten(), ignore_index=IGNORE_INDEX
    )
