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
import zlib
from typing import Any

import numpy as np
import torch

from shiftlab.data.benchmark import Benchmark, Split
from shiftlab.errors import ConfigError
from shiftlab.evaluate.intervals import mean_interval, percentile_interval
from shiftlab.unlearn import muse


def perplexity(model: torch.nn.Module, tokenizer: Any, texts: list[str]) -> float:
    """exp of the mean token negative log-likelihood over ``texts``."""
    from shiftlab.lm.logprobs import token_logprobs

    logps = token_logprobs(model, tokenizer, texts)
    total = sum(float(-lp.sum()) for lp in logps)
    count = sum(len(lp) for lp in logps)
    return math.exp(total / max(count, 1))


def full_texts(split: Split) -> list[str]:
    """Every example's own text and answer, without demonstrations or chat template (what the
    model would have memorised: the texts of membership scores and of VerbMem)."""
    return [item.own_text for item in split.inputs]


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
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """AUROC of membership scores (default: every registered one; ``reference`` is the
    reference score's model) separating member texts from non-members, and each one's 95%
    bootstrap interval (members and non-members resampled apart)."""
    from shiftlab.membership import attack_intervals, attack_metrics, score_all
    from shiftlab.registry import MEMBERSHIP

    texts = members + others
    truth = np.r_[np.ones(len(members)), np.zeros(len(others))].astype(bool)
    methods = list(MEMBERSHIP.names()) if methods is None else methods
    scores = score_all(model, tokenizer, texts, methods, k=k, reference=reference)
    aurocs = {m: attack_metrics(s, truth)["auroc"] for m, s in scores.items()}
    seeds = {m: [seed, zlib.crc32(m.encode())] for m in scores}
    return aurocs, {
        m: attack_intervals(s, truth, seed=seeds[m])["auroc"] for m, s in scores.items()
    }


def language_model_summary(
    model: torch.nn.Module,
    forget: Split,
    benchmark: Benchmark,
    cfg: Any,
    retrain: dict[str, Any] | None,
    seed: int,
) -> dict[str, Any]:
    """MUSE's numbers of one language model (:mod:`shiftlab.unlearn.muse`), each with its
    interval in ``ci``, and the per-text membership scores PrivLeak's interval pairs with
    retraining's (``retrain``: the retrain entry's summary, None before it exists)."""
    from shiftlab.lm.generate import greedy_generate

    lm, tokenizer = model.model, model.tokenizer

    def generate(prompts: list[str], new_tokens: int) -> list[str]:
        return greedy_generate(lm, tokenizer, prompts, max_new_tokens=new_tokens)

    named = split_named(benchmark, cfg.forget_texts, "forget_texts")
    texts = full_texts(named if named is not None else forget)
    per_text = muse.verbmem(
        generate,
        tokenizer,
        texts,
        prompt_tokens=cfg.verbmem_prompt_tokens,
        new_tokens=cfg.verbmem_new_tokens,
    )
    summary: dict[str, Any] = {"verbmem": float(per_text.mean())}
    ci = {"verbmem": mean_interval(per_text, [seed, zlib.crc32(b"verbmem")])}
    retain_qa = split_named(benchmark, cfg.knowmem_retain, "knowmem_retain")
    shots = [(i.text or i.prompt, i.answer) for i in retain_qa.inputs][: cfg.knowmem_shots] if (
        retain_qa is not None
    ) else []  # fmt: skip
    for key, name in (
        ("knowmem_forget", cfg.knowmem_forget),
        ("knowmem_retain", cfg.knowmem_retain),
    ):
        split = split_named(benchmark, name, key)
        if split is None:
            continue
        asked = split.inputs[len(shots) :] if split is retain_qa else split.inputs
        questions = [(i.text or i.prompt, i.answer) for i in asked]
        scores = muse.knowmem(generate, shots, questions, new_tokens=cfg.knowmem_new_tokens)
        summary[key] = float(scores.mean())
        ci[key] = mean_interval(scores, [seed, zlib.crc32(key.encode())])
    holdout = split_named(benchmark, cfg.holdout, "holdout")
    if holdout is not None:
        from shiftlab.membership import attack_metrics, score_all

        others = full_texts(holdout)
        methods = ["min_k", "min_k_pp"]
        scored = score_all(lm, tokenizer, texts + others, methods, k=cfg.membership_k)
        truth = np.r_[np.ones(len(texts)), np.zeros(len(others))].astype(bool)
        summary["text_scores"] = {}
        for name, values in scored.items():
            auc = attack_metrics(values, truth)["auroc"]
            summary[f"auroc_{name}"] = auc
            own = {
                "forget": values[: len(texts)].tolist(),
                "holdout": values[len(texts) :].tolist(),
            }
            summary["text_scores"][name] = own
            replicates = muse.auroc_replicates(np.array(own["forget"]), np.array(own["holdout"]),
                                               [seed, zlib.crc32(b"privleak")])  # fmt: skip
            ci[f"auroc_{name}"] = percentile_interval(replicates)
            key = "privleak" if name == "min_k" else f"privleak_{name}"
            if retrain is not None and name in retrain.get("text_scores", {}):
                summary[key] = muse.privleak(auc, retrain[f"auroc_{name}"])
                ci[key] = muse.privleak_interval(
                    own, retrain["text_scores"][name], [seed, zlib.crc32(b"privleak")]
                )
        summary["perplexity_holdout"] = perplexity(lm, tokenizer, others)
    summary["ci"] = ci
    return summary


def classifier_summary(
    forget_logits: torch.Tensor,
    retain_logits: torch.Tensor,
    unseen_logits: torch.Tensor,
    forget: Split,
    retain: Split,
    unseen: Split,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy on the forget and retain sets, and the membership attacks on forget examples
    against unseen ones (the ID test split), each with its 95% bootstrap interval in ``ci``."""
    from shiftlab.membership import classifier_attack

    def correct(logits: torch.Tensor, split: Split) -> np.ndarray:
        return (logits.argmax(dim=1).numpy() == split.labels).astype(np.float64)

    attack = classifier_attack(
        torch.cat([forget_logits, unseen_logits]).numpy(),
        np.r_[forget.labels, unseen.eval_labels],
        np.r_[np.ones(len(forget)), np.zeros(len(unseen))].astype(bool),
        seed=[seed, zlib.crc32(b"mia")],
    )
    hits = {"forget": correct(forget_logits, forget), "retain": correct(retain_logits, retain)}
    ci = {
        f"{k}_accuracy": mean_interval(v, [seed, zlib.crc32(k.encode())]) for k, v in hits.items()
    }
    ci["mia_auroc_loss"] = attack["loss"]["ci"]["auroc"]
    ci["mia_auroc_confidence"] = attack["confidence"]["ci"]["auroc"]
    return {
        "forget_accuracy": float(hits["forget"].mean()),
        "retain_accuracy": float(hits["retain"].mean()),
        "mia_auroc_loss": attack["loss"]["auroc"],
        "mia_auroc_confidence": attack["confidence"]["auroc"],
        "ci": ci,
    }
