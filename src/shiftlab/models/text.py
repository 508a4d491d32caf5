"""Text featurizer: any Hugging Face encoder with mean pooling and L2 normalisation."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.errors import BackboneError


class SharesTokenizer:
    """A module holding a ``tokenizer`` that its deep copies share (a tokenizer has no weights;
    copying it per model copy costs memory and time). Mix in before ``nn.Module``."""

    tokenizer: Any

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        memo[id(self.tokenizer)] = self.tokenizer
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = copy.deepcopy(value, memo)
        return new


class TextEncoder(SharesTokenizer, nn.Module):
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

    def order(self, texts: list[str]) -> np.ndarray:
        """Encoding order that batches texts of similar length together (less padding)."""
        return np.argsort([len(t) for t in texts], kind="stable")

    def _tokens(self, texts: list[str]) -> Any:
        device = next(self.model.parameters()).device
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(device)

    def _pooled(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean of ``states`` over the mask, L2-normalised when ``normalize``."""
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, texts: list[str]) -> torch.Tensor:
        batch = self._tokens(texts)
        return self._pooled(self.model(**batch).last_hidden_state, batch["attention_mask"])

    def hidden_layers(
        self, texts: list[str], layers: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        """The chosen hidden states, each pooled and normalised as ``forward`` treats the last:
        one (B, D) tensor per layer. ``layers`` index the model's ``hidden_states`` (0: the
        embeddings, 1 the first layer, -1 the last, which gives ``forward``'s features); default
        all of them."""
        batch = self._tokens(texts)
        states = self.model(**batch, output_hidden_states=True).hidden_states
        chosen = states if layers is None else [states[i] for i in layers]
        return [self._pooled(s, batch["attention_mask"]) for s in chosen]


def quiet_transformers() -> None:
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


def _load_without_pooler(auto_model: Any, source: str, **extra: Any) -> nn.Module:
    """The encoder without its pooling head where the architecture has one: mean pooling never
    uses it, and a checkpoint without its weights would get random ones at every load."""
    try:
        return auto_model.from_pretrained(source, add_pooling_layer=False, **extra)
    except TypeError:
        return auto_model.from_pretrained(source, **extra)


def _from_pretrained(source: str, local_only: bool) -> tuple[Any, nn.Module]:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    return tokenizer, _load_without_pooler(AutoModel, source, local_files_only=local_only)


def _not_found(source: str, reason: str) -> BackboneError:
    """Backbone ``source`` is nowhere here and the hub cannot be asked (``reason``)."""
    from shiftlab.registry import BACKBONES, closest

    names = BACKBONES.names()
    hint = closest(source, names)
    more = f"; did you mean '{hint}'?" if hint else ""
    return BackboneError(
        f"backbone '{source}' not found: not a registered name ({', '.join(sorted(names))}), "
        f"a local folder, or a model in the Hugging Face cache, and the hub cannot be reached "
        f"({reason}){more}"
    )


def _check_source(source: str, folder: Path) -> None:
    """Fail at once on a path that is no model folder: it would be tried as a hub id."""
    if folder.is_file():
        raise BackboneError(
            f"backbone '{source}' is a file; a text backbone is a Hugging Face model folder "
            "(config.json, weights, tokenizer files) or a hub model id"
        )
    if source.startswith(("/", ".", "~")) or source.count("/") > 1 or "\\" in source:
        raise BackboneError(f"backbone folder not found: {source}")


def load_text_encoder(source: str, max_length: int | None = None) -> TextEncoder:
    """Load a Hugging Face encoder and its tokenizer from a folder or a hub model id.

    A hub id is read from the local Hugging Face cache when it is there; otherwise the hub is
    asked, after a quick check (:mod:`shiftlab.hub`) that it can be: an offline switch or no
    network fails at once instead of after a minute of retries.

    Raises:
        BackboneError: the folder or model id cannot be loaded.
    """
    quiet_transformers()
    folder = Path(source).expanduser()
    local = folder.is_dir()
    if not local:
        _check_source(source, folder)
    try:
        if local:
            tokenizer, model = _from_pretrained(str(folder), local_only=True)
        else:
            try:
                tokenizer, model = _from_pretrained(source, local_only=True)  # the HF cache
            except (OSError, ValueError):
                from shiftlab.hub import unavailable_reason

                reason = unavailable_reason()
                if reason is not None:
                    raise _not_found(source, reason) from None
                tokenizer, model = _from_pretrained(source, local_only=False)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "folder" if local else "model id (no such local folder either)"
        raise BackboneError(f"cannot load backbone {where} '{source}': {first}") from None
    length = max_length or _default_max_length(folder if local else None, tokenizer)
    return TextEncoder(model.eval(), tokenizer, length)
