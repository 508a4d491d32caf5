"""Tiny models and data for the unlearning tests: an MLP classifier on random features and a
2-layer random Llama with a character tokenizer (no downloads, milliseconds per step)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from shiftlab.lm.scorer import LMScorer
from shiftlab.models.classifier import Classifier
from shiftlab.unlearn import Data

DEVICE = torch.device("cpu")


def mlp_classifier(seed: int = 0, dim: int = 8, classes: int = 3) -> Classifier:
    """Linear-ReLU featurizer (8 -> 16) and a linear head (16 -> 3), random weights."""
    torch.manual_seed(seed)
    return Classifier(nn.Sequential(nn.Linear(dim, 16), nn.ReLU()), nn.Linear(16, classes))


def feature_data(n: int, seed: int, dim: int = 8, classes: int = 3) -> Data:
    """``n`` random float32 feature vectors with random labels."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n, dim)).astype(np.float32)
    return Data(inputs=inputs, labels=rng.integers(0, classes, size=n))


class CharTokenizer:
    """One token per character (ids 3..), BOS 1, EOS 2 (also the pad): enough of a Hugging Face
    tokenizer for shiftlab's batching."""

    bos_token = "<s>"
    bos_token_id = 1
    eos_token_id = 2
    pad_token_id = 2

    def __init__(self, vocab_size: int = 48) -> None:
        self.vocab_size = vocab_size

    def __len__(self) -> int:
        return self.vocab_size

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        ids = [3 + ord(c) % (self.vocab_size - 3) for c in text]
        return {"input_ids": ([self.bos_token_id] if add_special_tokens else []) + ids}


def tiny_scorer(seed: int = 0, vocab_size: int = 48) -> LMScorer:
    """A 2-layer, 32-wide random Llama and the character tokenizer, as an LMScorer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    return LMScorer(LlamaForCausalLM(config).eval(), CharTokenizer(vocab_size), max_length=64)


def qa_data(names: list[str]) -> Data:
    """One question per name, answered by the name reversed."""
    return Data(
        prompts=[f"Q: who is {name}?\nA:" for name in names],
        answers=[" " + name[::-1] for name in names],
    )


def snapshot(model: nn.Module) -> dict[str, Any]:
    """A copy of the model's state dict and train/eval flag, to check it is left untouched."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"state": state, "training": model.training}


def unchanged(model: nn.Module, before: dict[str, Any]) -> bool:
    """Whether ``model`` still has the weights and mode of ``before``."""
    state = model.state_dict()
    return model.training == before["training"] and all(
        torch.equal(state[k], v) for k, v in before["state"].items()
    )


def all_finite(model: nn.Module) -> bool:
    """Whether every floating-point entry of the state dict is finite."""
    return all(
        torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point()
    )


def differs(a: nn.Module, b: nn.Module) -> bool:
    """Whether two models of one architecture differ in some weight."""
    sb = b.state_dict()
    return any(not torch.equal(v.cpu(), sb[k].cpu()) for k, v in a.state_dict().items())
