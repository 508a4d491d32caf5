"""MUSE's measures of an unlearned language model, as its reference computes them (Shi et al.,
"MUSE: Machine Unlearning Six-Way Evaluation for Language Models", 2024, arXiv 2407.06460;
``swj0419/muse_bench`` ``metrics/verbmem.py``, ``metrics/knowmem.py``, ``metrics/privleak.py``,
``metrics/logger.py``, ``eval.py``), each with a 95% bootstrap interval (the reference's logger
reports one for ROUGE too).

- **VerbMem**: the first ``prompt_tokens`` tokens of a forget text are the prompt; greedy
  decoding of ``new_tokens`` tokens (reference: 128) is compared with the rest of the text cut to
  ``new_tokens`` tokens (``gt_ids[:, :max_new_tokens]``) by ROUGE-L F1 without stemming
  (``RougeScorer(..., use_stemmer=False)``), averaged over texts. MUSE ships its prompts ready
  cut; the paper and shiftlab cut them at 32 tokens.
- **KnowMem**: question/answer pairs in front of each question (``Question: q\\nAnswer: a\\n\\n``
  in MUSE's format; here each pair's own prompt and answer, joined by a blank line), greedy
  decoding of ``new_tokens`` tokens (reference: 32), the output cut at ``"\\n\\n"``,
  ``"\\nQuestion"`` and ``"Question:"``, ROUGE-L F1 without stemming against the answer. MUSE
  draws each split's in-context pairs from a file of its own (``forget_qa_icl.json``,
  ``retain_qa_icl.json``); here both splits take theirs from the retain questions (never asked
  themselves), so no forget fact is ever in a prompt.
- **PrivLeak**: ``100 (AUC - AUC_retrain) / AUC_retrain`` of Min-K% (k 0.4) on forget against
  holdout texts, the AUC oriented as MUSE's (:func:`privleak`); its interval resamples forget and
  holdout texts, the same resamples for the model and for retraining (paired).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from shiftlab.evaluate.generation import rouge_l
from shiftlab.evaluate.intervals import percentile_interval
from shiftlab.lm.tokens import encode

#: Where MUSE cuts a KnowMem answer (``knowmem.py``: ``get_prefix_before_words_occur``).
STOPS = ("\n\n", "\nQuestion", "Question:")
RESAMPLES = 1000

Generate = Callable[[list[str], int], list[str]]


def cut(text: str, stops: Sequence[str] = STOPS) -> str:
    """``text`` before the first stop string (MUSE splits at each stop in turn: the same)."""
    for stop in stops:
        text = text.split(stop)[0]
    return text


def verbmem(
    generate: Generate,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    prompt_tokens: int = 32,
    new_tokens: int = 128,
) -> np.ndarray:
    """VerbMem of each text (N,): ROUGE-L F1 of the greedy continuation of its first
    ``prompt_tokens`` tokens against its next ``new_tokens`` tokens.

    Args:
        generate: ``(prompts, max_new_tokens) -> outputs`` of the model (greedy).
        tokenizer: the model's tokenizer (the texts are cut in its tokens).
        texts: the forget texts.
    """
    prompts, references = [], []
    for text in texts:
        ids = encode(tokenizer, text)
        special = int(getattr(tokenizer, "bos_token_id", None) is not None and ids[:1] == [
            tokenizer.bos_token_id
        ])  # fmt: skip
        body = ids[special:]
        head = min(prompt_tokens, max(1, len(body) - 1))
        prompts.append(tokenizer.decode(body[:head]))
        references.append(tokenizer.decode(body[head : head + new_tokens]))
    outputs = generate(prompts, new_tokens)
    return np.array([rouge(o, r) for o, r in zip(outputs, references, strict=True)])


def knowmem(
    generate: Generate,
    examples: Sequence[tuple[str, str]],
    questions: Sequence[tuple[str, str]],
    *,
    new_tokens: int = 32,
) -> np.ndarray:
    """KnowMem of each question (N,): ROUGE-L F1 of the model's answer, with ``examples`` (in
    order) in front of the question and cut at :data:`STOPS`, against the reference answer.

    Args:
        generate: ``(prompts, max_new_tokens) -> outputs`` of the model (greedy).
        examples: in-context (question prompt, answer) pairs.
        questions: (question prompt, reference answer) pairs to ask.
    """
    context = "".join(f"{q}{a}\n\n" for q, a in examples)
    outputs = generate([context + q for q, _ in questions], new_tokens)
    return np.array(
        [rouge(cut(o), a) for o, (_, a) in zip(outputs, questions, strict=True)], dtype=np.float64
    )


def rouge(prediction: str, reference: str) -> float:
    """ROUGE-L F1 without stemming, as MUSE's logger."""
    return rouge_l(prediction, reference, stemmer=False)


def privleak(member_auroc: float, retrain_member_auroc: float) -> float:
    """MUSE's PrivLeak, 100 (AUC - AUC_retrain) / AUC_retrain, from AUROCs that rank forget
    texts above holdout texts (higher score = member, as every score here).

    MUSE's AUC is the other way round (``muse_bench/metrics/privleak.py``: forget labelled 0,
    holdout 1, score minus Min-K%), i.e. ``1 - member_auroc``: a model that kept the forget
    set has AUC near 0 and PrivLeak near -100; over-unlearning gives positive values.
    """
    auc, reference = 1.0 - member_auroc, 1.0 - retrain_member_auroc
    return 100.0 * (auc - reference) / reference if reference > 0 else math.nan


def auroc_replicates(members: np.ndarray, others: np.ndarray, seed: Any) -> np.ndarray:
    """(B,) AUROCs of member scores above non-member scores, each set resampled with
    replacement (the same draws for the same seed and sizes: paired across models)."""
    rng = np.random.default_rng(seed)
    m = np.asarray(members)[rng.integers(0, len(members), size=(RESAMPLES, len(members)))]
    o = np.asarray(others)[rng.integers(0, len(others), size=(RESAMPLES, len(others)))]
    # Mann-Whitney: the members' mean rank among both (ties averaged), per replicate
    ranks = rankdata(np.concatenate([m, o], axis=1), axis=1)[:, : len(members)]
    n, k = len(members), len(others)
    return (ranks.sum(axis=1) - n * (n + 1) / 2) / (n * k)


def privleak_interval(
    scores: dict[str, list[float]], retrain: dict[str, list[float]], seed: Any
) -> list[float]:
    """95% interval of PrivLeak: forget and holdout texts resampled, the same resamples for the
    model's scores and retraining's (``{"forget": [...], "holdout": [...]}`` each)."""
    model = auroc_replicates(np.array(scores["forget"]), np.array(scores["holdout"]), seed)
    ref = auroc_replicates(np.array(retrain["forget"]), np.array(retrain["holdout"]), seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        leaks = 100.0 * ((1 - model) - (1 - ref)) / (1 - ref)
    leaks = leaks[np.isfinite(leaks)]
    return list(percentile_interval(leaks)) if len(leaks) else [math.nan, math.nan]
