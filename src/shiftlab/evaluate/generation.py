"""The answer metrics of generation tasks: exact match and ROUGE-L.

Exact match normalises by stripping, lower-casing and collapsing runs of whitespace, and nothing
more: unlike SQuAD's ``normalize_answer`` (Rajpurkar et al., 2016, arXiv 1606.05250) it keeps
punctuation and articles, since label-like answers ("A.", "the") can hinge on them.

ROUGE-L (Lin, 2004) is the F1 of the longest common subsequence of tokens, from Google's
``rouge-score`` package with ``use_stemmer=True`` (Porter stemming, so "runs" matches "run"), the
setting of Super-NaturalInstructions' evaluation (Wang et al., EMNLP 2022, arXiv 2204.07705;
``allenai/natural-instructions`` ``eval/automatic/evaluation.py``). Its tokenizer lower-cases and
keeps ASCII letters and digits only, so text in other scripts scores 0.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from shiftlab._optional import require


def normalize_answer(text: str) -> str:
    """Strip, lower-case and collapse whitespace runs to one space."""
    return re.sub(r"\s+", " ", text.strip().lower())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised prediction equals the normalised reference, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


@functools.lru_cache(maxsize=2)
def _rouge_scorer(stemmer: bool) -> Any:
    rouge_scorer = require("rouge_score.rouge_scorer", "lm")
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stemmer)


def rouge_l(prediction: str, reference: str, *, stemmer: bool = True) -> float:
    """ROUGE-L F1 in [0, 1] between a prediction and a reference (0 when either has no
    tokens); ``stemmer=False`` compares words as they are (MUSE's setting).

    Raises:
        MissingExtraError: ``rouge-score`` is not installed.
    """
    return float(_rouge_scorer(stemmer).score(reference, prediction)["rougeL"].fmeasure)
