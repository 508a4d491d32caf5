"""Greedy generation of a causal LM's answers (scored by :mod:`shiftlab.evaluate.generation`).

Batches are left-padded, with the attention mask and position ids from it, so that every row
continues from its own last token; ``transformers``' ``generate`` then decodes greedily
(``do_sample=False``, one beam). Each output is the new text only, cut before the first stop
string, and equals what decoding that prompt alone gives (tested on a tiny model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from shiftlab.lm.tokens import batches, encode, evaluating, model_device, pad, pad_id


def _cut(text: str, stop: Sequence[str]) -> str:
    cuts = [text.find(s) for s in stop if s]
    cuts = [c for c in cuts if c >= 0]
    return text[: min(cuts)] if cuts else text


def greedy_generate(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 16,
    batch_size: int = 8,
    stop: Sequence[str] | None = None,
) -> list[str]:
    """Greedy continuation of each prompt.

    Decoding ends at the model's EOS token, at ``max_new_tokens``, or once every row of the
    batch contains a stop string; special tokens are dropped from the text.

    Args:
        model: a causal LM.
        tokenizer: its tokenizer (a chat template, if wanted, is already in the prompts).
        prompts: N prompt strings.
        max_new_tokens: the most tokens generated per prompt.
        batch_size: prompts per ``generate`` call.
        stop: strings that end an answer; the output is cut before the first one found.

    Returns:
        N generated strings, without their prompts.
    """
    device, pad_token = model_device(model), pad_id(tokenizer)
    stop = [s for s in (stop or []) if s]
    options: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": False,
        "num_beams": 1,
        "pad_token_id": pad_token,
        "temperature": None,
        "top_p": None,
        "top_k": None,
    }
    if stop:
        options.update(stop_strings=list(stop), tokenizer=tokenizer)
    outputs: list[str] = []
    with evaluating(model):
        for chunk in batches(len(prompts), batch_size):
            ids, mask, _ = pad([encode(tokenizer, prompts[i]) for i in chunk], pad_token, "left")
            tokens = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), **options
            )
            new = tokens[:, ids.shape[1] :].cpu()
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            outputs.extend(_cut(t, stop) for t in texts)
    return outputs
