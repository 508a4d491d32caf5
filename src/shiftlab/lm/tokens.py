"""Tokenising and padding for causal LMs: what scoring, generation and the answer loss share.

Every function here pads by hand, so no result depends on the tokenizer's ``padding_side``
setting, and passes explicit position ids, so a left-padded row sees the positions it would see
alone (``position_ids = cumsum(attention_mask) - 1``, as ``transformers``' ``generate`` does).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from shiftlab.errors import DataError


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a prompt or whole text, with the tokenizer's special tokens (a BOS where the
    model has one), unless the text already starts with the BOS string (a chat template's)."""
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and text.startswith(bos))
    return list(tokenizer(text, add_special_tokens=add_special)["input_ids"])


def encode_continuation(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a continuation (a label word, an answer): no special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def split_continuation(prompt: str, continuation: str) -> tuple[str, str]:
    """Move the prompt's trailing whitespace onto the continuation.

    ``"Answer: " + "yes"`` becomes ``"Answer:" + " yes"``: BPE tokenizers attach a space to the
    word after it, so this is how the concatenated string tokenises (lm-evaluation-harness does
    the same in ``_encode_pair``).
    """
    stripped = prompt.rstrip()
    return stripped, prompt[len(stripped) :] + continuation


def pad(
    rows: Sequence[Sequence[int]], pad_id: int, side: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad token id lists to one (B, T) batch.

    Args:
        rows: B lists of token ids, each non-empty.
        pad_id: the id written into padding (masked out, so any id works).
        side: ``"left"`` or ``"right"``.

    Returns:
        ``input_ids`` (B, T) long, ``attention_mask`` (B, T) long (1 on real tokens) and
        ``position_ids`` (B, T) long (0, 1, ... on real tokens, 0 on padding).
    """
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if not row:
            raise ValueError("cannot pad an empty token sequence")
        span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, span] = torch.as_tensor(list(row), dtype=torch.long)
        mask[i, span] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return ids, mask, positions


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's pad id, else its EOS id, else 0 (padding is always masked)."""
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter."""
    return next(model.parameters()).device


def batches(count: int, batch_size: int) -> list[range]:
    """Consecutive index ranges of at most ``batch_size`` covering ``range(count)``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return [range(i, min(i + batch_size, count)) for i in range(0, count, batch_size)]


@contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd inside; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def text_batch(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Whole texts (with the tokenizer's BOS), cut on the right to ``max_length`` tokens and
    right-padded: ``input_ids``, ``attention_mask``, ``position_ids`` (B, T).

    Raises:
        DataError: a text has no tokens.
    """
    rows = [encode(tokenizer, text)[:max_length] for text in texts]
    for i, row in enumerate(rows):
        if not row:
            raise DataError(f"text {i} has no tokens")
    ids, mask, positions = pad(rows, pad_id(tokenizer), "right")
    return {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
