"""How an unlearned model is judged against retraining without the forget set: one summary per
model (the records' split ``unlearning``):

- classifiers: accuracy on the forget and retain sets, the loss- and confidence-threshold
  membership attacks' AUROC on forget examples against unseen ID test ones, and seconds;
- language models, as MUSE (Shi et al. 2024, arXiv 2407.06460): ``verbmem`` (ROUGE-L F1 of the
  greedy continuation of each forget text's prefix), ``knowmem_forget`` / ``knowmem_retain``
  (ROUGE-L of answers to questions about each set), ``privleak`` (100 (AUC - AUC_retrain) /
  AUC_retrain of Min-K%, k 0.4, on forget against holdout texts, AUC oriented as MUSE's:
  see :func:`privleak`; ``privleak_min_k_pp`` beside it), ``perplexity_holdout``, and seconds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from shiftlab.data.benchmark import Benchmark, Split
from shiftlab.errors import ConfigError


def perplexity(model: torch.nn.Module, tokenizer: Any, texts: list[str]) -> float:
    """exp of the mean token negative log-likelihood over ``texts``."""
    from shiftlab.lm.logprobs import token_logprobs

    logps = token_logprobs(model, tokenizer, texts)
    total = sum(float(-lp.sum()) for lp in logps)
    count = sum(len(lp) for lp in logps)
    return math.exp(total / max(count, 1))


def full_texts(split: Split) -> list[str]:
    """Prompt + answer of every example of a language-model split."""
    return [item.prompt + item.answer for item in split.inputs]


def split_named(benchmark: Benchmark, name: str | None, what: str) -> Split | None:
    """The evaluation split called ``name`` (or whose examples come from domain ``name``)."""
    if name is None:
        return None
    for split in benchmark.eval_splits():
        if split.name == name or (split.domains is not None and set(split.domains) == {name}):
            return split
    known = [s.name for s in benchmark.eval_splits()]
    raise ConfigError(f"unlearn.{what}: no split '{name}' (splits: {', '.join(known)})")


def membership_aurocs(
    model: torch.nn.Module,
    tokenizer: Any,
    members: list[str],
    others: list[str],
    k: float,
    methods: list[str] | None = None,
    reference: torch.nn.Module | None = None,
) -> dict[str, float]:
    """AUROC of membership scores (default: every registered one; ``reference`` is the
    reference score's model) separating member texts from non-members."""
    from shiftlab.membership import attack_metrics, score_all
    from shiftlab.registry import MEMBERSHIP

    texts = members + others
    truth = np.r_[np.ones(len(members)), np.zeros(len(others))].astype(bool)
    methods = list(MEMBERSHIP.names()) if methods is None else methods
    scores = score_all(model, tokenizer, texts, methods, k=k, reference=reference)
    return {m: attack_metrics(s, truth)["auroc"] for m, s in scores.items()}


def privleak(member_auroc: float, retrain_member_auroc: float) -> float:
    """MUSE's PrivLeak, 100 (AUC - AUC_retrain) / AUC_retrain, from AUROCs that rank forget
    texts above holdout texts (higher score = member, as every score here).

    MUSE's AUC is the other way round (``muse_bench/metrics/privleak.py``: forget labelled 0,
    holdout 1, score minus Min-K%), i.e. ``1 - member_auroc``: a model that kept the forget
    set has AUC near 0 and PrivLeak near -100; over-unlearning gives positive values.
    """
    auc, reference = 1.0 - member_auroc, 1.0 - retrain_member_auroc
    return 100.0 * (auc - reference) / reference if reference > 0 else math.nan


def language_model_summary(
    model: torch.nn.Module,
    forget: Split,
    benchmark: Benchmark,
    cfg: Any,
    records: dict[str, dict[str, Any]],
    retrain_auc: dict[str, float] | None,
) -> dict[str, Any]:
    """MUSE's numbers of one language model (``records``: its records by split name)."""
    from shiftlab.evaluate.generation import rouge_l
    from shiftlab.lm.generate import greedy_generate

    lm, tokenizer = model.model, model.tokenizer
    outputs = greedy_generate(
        lm,
        tokenizer,
        [i.prompt for i in forget.inputs],
        max_new_tokens=forget.info.get("max_new_tokens", 32),
    )
    summary: dict[str, Any] = {
        "verbmem": float(
            np.mean([rouge_l(o, i.answer) for o, i in zip(outputs, forget.inputs, strict=True)])
        )
    }
    for key, name in (
        ("knowmem_forget", cfg.knowmem_forget),
        ("knowmem_retain", cfg.knowmem_retain),
    ):
        split = split_named(benchmark, name, key)
        if split is not None:
            summary[key] = records[split.name].get("rouge_l", records[split.name].get("accuracy"))
    holdout = split_named(benchmark, cfg.holdout, "holdout")
    if holdout is not None:
        auc = membership_aurocs(
            lm,
            tokenizer,
            full_texts(forget),
            full_texts(holdout),
            cfg.membership_k,
            methods=["min_k", "min_k_pp"],
        )
        summary["auroc_min_k"] = auc["min_k"]
        summary["auroc_min_k_pp"] = auc["min_k_pp"]
        if retrain_auc is not None:
            summary["privleak"] = privleak(auc["min_k"], retrain_auc["min_k"])
            summary["privleak_min_k_pp"] = privleak(auc["min_k_pp"], retrain_auc["min_k_pp"])
        summary["perplexity_holdout"] = perplexity(lm, tokenizer, full_texts(holdout))
    return summary


def classifier_summary(
    forget_logits: torch.Tensor,
    retain_logits: torch.Tensor,
    unseen_logits: torch.Tensor,
    forget: Split,
    retain: Split,
    unseen: Split,
) -> dict[str, Any]:
    """Accuracy on the forget and retain sets, and the membership attacks on forget examples
    against unseen ones (the ID test split)."""
    from shiftlab.membership import classifier_attack

    def accuracy(logits: torch.Tensor, split: Split) -> float:
        return float((logits.argmax(dim=1).numpy() == split.labels).mean())

    attack = classifier_attack(
        torch.cat([forget_logits, unseen_logits]).numpy(),
        np.r_[forget.labels, unseen.eval_labels],
        np.r_[np.ones(len(forget)), np.zeros(len(unseen))].astype(bool),
    )
    return {
        "forget_accuracy": accuracy(forget_logits, forget),
        "retain_accuracy": accuracy(retain_logits, retain),
        "mia_auroc_loss": attack["loss"]["auroc"],
        "mia_auroc_confidence": attack["confidence"]["auroc"],
    }
