"""Text featurizer: any Hugging Face encoder with mean pooling and L2 normalisation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.errors import BackboneError


class TextEncoder(nn.Module):
    """Hugging Face encoder -> mean of token states over the attention mask -> L2 norm.

    ``forward(texts)`` takes a list of B strings and returns features of shape (B, D). The
    tokenizer is shared (not copied) between deep copies: it holds no weights.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int, normalize: bool = True):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.normalize = normalize

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return int(self.model.config.hidden_size)

    @property
    def cache_tag(self) -> str:
        """Settings that change the features besides the weights."""
        return f"text:max_length={self.max_length}:normalize={self.normalize}"

    def __deepcopy__(self, memo: dict[int, Any]) -> TextEncoder:
        memo[id(self.tokenizer)] = self.tokenizer
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = copy.deepcopy(value, memo)
        return new

    def order(self, texts: list[str]) -> np.ndarray:
        """Encoding order that batches texts of similar length together (less padding)."""
        return np.argsort([len(t) for t in texts], kind="stable")

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(device)
        states = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _default_max_length(folder: Path | None, tokenizer: Any) -> int:
    if folder is not None and (folder / "sentence_bert_config.json").is_file():
        config = json.loads((folder / "sentence_bert_config.json").read_text())
        if "max_seq_length" in config:
            return int(config["max_seq_length"])
    limit = getattr(tokenizer, "model_max_length", 512)
    return int(min(limit, 512))


def _load_without_pooler(auto_model: Any, source: str) -> nn.Module:
    """The encoder without its pooling head where the architecture has one: mean pooling never
    uses it, and a checkpoint without its weights would get random ones at every load."""
    try:
        return auto_model.from_pretrained(source, add_pooling_layer=False)
    except TypeError:
        return auto_model.from_pretrained(source)


def load_text_encoder(source: str, max_length: int | None = None) -> TextEncoder:
    """Load a Hugging Face encoder and its tokenizer from a folder or a hub model id.

    Raises:
        BackboneError: the folder or model id cannot be loaded.
    """
    from transformers import AutoModel, AutoTokenizer

    _quiet_transformers()
    folder = Path(source).expanduser()
    local = folder.is_dir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder) if local else source)
        model = _load_without_pooler(AutoModel, str(folder) if local else source)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "folder" if local else "model id (no such local folder either)"
        raise BackboneError(f"cannot load backbone {where} '{source}': {first}") from None
    length = max_length or _default_max_length(folder if local else None, tokenizer)
    return TextEncoder(model.eval(), tokenizer, length)
