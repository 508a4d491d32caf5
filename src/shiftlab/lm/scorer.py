"""A causal language model as a featurizer: prompts in, label-word log-probabilities out.

For a classification task, the "features" of a batch of :class:`shiftlab.lm.tasks.PromptItem`
are the (B, K) log-probabilities of the K label words after each prompt, and they are the
model's logits: accuracy, macro-F1, ECE, temperature scaling and ensembles work on them as on a
classifier's, and the feature cache keeps them per (weights, split) like any features. For a
generation task the scorer decodes greedily. The tokenizer is shared between copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from shiftlab.lm.generate import greedy_generate
from shiftlab.lm.logprobs import label_word_logprobs
from shiftlab.models.text import SharesTokenizer


class LMScorer(SharesTokenizer, nn.Module):
    """A Hugging Face causal LM (optionally with a LoRA adapter) and its tokenizer.

    ``forward(items)`` returns (B, K) log-probabilities of each item's label words.
    """

    cache_tag = "causal_lm:label_word_logprobs"
    direct_logits = True  # its outputs are the logits: no head (see evaluate.model_logits)

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int = 512) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def dim(self) -> int:
        """Hidden size of the underlying model."""
        return int(self.model.config.hidden_size)

    def order(self, items: list[Any]) -> np.ndarray:
        """Encoding order grouping prompts of similar length (less padding)."""
        return np.argsort([len(str(i)) for i in items], kind="stable")

    def forward(self, items: list[Any]) -> torch.Tensor:
        choices = items[0].choices
        if any(i.choices != choices for i in items):
            raise ValueError("a batch of prompts must share its label words")
        prompts = [i.prompt for i in items]
        return label_word_logprobs(
            self.model, self.tokenizer, prompts, choices, batch_size=len(prompts)
        )

    def generate(self, items: list[Any], *, max_new_tokens: int, batch_size: int = 8) -> list[str]:
        """Greedy continuations of the items' prompts."""
        return greedy_generate(
            self.model,
            self.tokenizer,
            [i.prompt for i in items],
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
