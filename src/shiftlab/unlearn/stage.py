"""The unlearning stage of a run: take the forget set back out of a trained model with each
method, and judge every result against retraining without the forget set.

``unlearn.forget`` names the examples (ids, a domain, a class, or what a curation score
flagged); ``unlearn.on`` the trained predictor. ``retrain`` is the reference: the same recipe,
seed and options on the training split without the forget set, through the very code path of
curation's drop-and-retrain. Every unlearned model is a model like any other in the records
(``unlearn: {method, params, n_forget}``), scored on every split, and one summary record per
model (split ``unlearning``) holds what judges it:

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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shiftlab.data.benchmark import Benchmark, Split
from shiftlab.errors import ConfigError, DataError
from shiftlab.registry import closest


def forget_index(selector: dict[str, Any], benchmark: Benchmark, curation: Any) -> np.ndarray:
    """Indices (into the training split) of the examples to forget.

    Raises:
        DataError: ids that do not exist (the first few named), or a set that is empty or
            covers every training example.
        ConfigError: a class, domain or curation score that does not exist.
    """
    ((kind, value),) = selector.items()
    train = benchmark.train
    ids = np.asarray(train.ids).astype(str)
    if kind == "ids":
        wanted = value
        if isinstance(value, str):
            path = Path(value).expanduser()
            if not path.is_file():
                raise DataError(f"unlearn.forget.ids: file not found: {path}")
            wanted = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        wanted = [str(w) for w in wanted if str(w).strip()]
        unknown = sorted(set(wanted) - set(ids))
        if unknown:
            raise DataError(
                f"unlearn.forget.ids: {len(unknown)} ids are not training examples, e.g. "
                + ", ".join(unknown[:3])
            )
        mask = np.isin(ids, wanted)
    elif kind == "class":
        if value not in benchmark.class_names:
            hint = closest(str(value), benchmark.class_names)
            more = f"; did you mean '{hint}'?" if hint else ""
            raise ConfigError(f"unlearn.forget.class: no class '{value}'{more}")
        mask = train.labels == benchmark.class_names.index(value)
    elif kind == "domain":
        names = [train, *benchmark.eval_splits()]
        members = set()
        for split in names:
            if split.domains is not None and split.ids is not None:
                members |= set(np.asarray(split.ids)[split.domains == value].astype(str))
        if not members:
            known = sorted({str(d) for s in names if s.domains is not None for d in set(s.domains)})
            raise ConfigError(
                f"unlearn.forget.domain: no domain '{value}' (known: {', '.join(known)})"
            )
        mask = np.isin(ids, sorted(members))
    else:  # curation
        if curation is None or value not in curation.scores:
            raise ConfigError(
                f"unlearn.forget.curation: {value} is not a computed curation score; add it to "
                "curation.scores (or to curate:)"
            )
        flagged = curation.scores[value].flagged
        if flagged is None:
            raise ConfigError(f"unlearn.forget.curation: score '{value}' flags nothing")
        mask = flagged
    index = np.flatnonzero(mask)
    if len(index) == 0:
        raise DataError(f"unlearn.forget ({kind}: {value}) selects no training example")
    if len(index) == len(train):
        raise DataError(f"unlearn.forget ({kind}: {value}) covers every training example")
    return index


def perplexity(model: torch.nn.Module, tokenizer: Any, texts: list[str]) -> float:
    """exp of the mean token negative log-likelihood over ``texts``."""
    from shiftlab.lm.scoring import token_logprobs

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
    from shiftlab.lm.generate import greedy_generate, rouge_l

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
