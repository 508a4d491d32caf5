"""Membership scores of texts under a causal LM: every asked score from one forward pass.

:func:`score_all` runs the target model once per batch (:func:`shiftlab.lm.logprobs.
token_logprobs`: right padding, explicit position ids, so a text's values do not depend on its
batch), with the vocabulary statistics only when ``min_k_pp`` is asked, and the reference model
once per batch when ``reference`` is asked; then each registered score reads the per-token
values (:mod:`shiftlab.membership.base`). Every score is oriented so that higher = more likely a
member.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from shiftlab.errors import ConfigError, DataError
from shiftlab.lm.logprobs import token_logprobs
from shiftlab.lm.tokens import encode, model_device
from shiftlab.membership.base import REFERENCE, VOCAB_STATS, TextStats
from shiftlab.registry import MEMBERSHIP
from shiftlab.typed import build

#: What ``reference`` may be: a causal LM sharing the target's tokenizer, a (model, tokenizer)
#: pair, or a name :func:`shiftlab.lm.load.load` understands (loaded on the target's device).
Reference = nn.Module | tuple[nn.Module, Any] | str

DEFAULT_METHODS = ("loss", "zlib", "min_k", "min_k_pp")


def _reference_pair(reference: Reference | None, tokenizer: Any, device: Any) -> Any:
    if reference is None:
        return None
    if isinstance(reference, str):
        from shiftlab.lm.load import load

        return load(reference, device=device)
    if isinstance(reference, nn.Module):
        return reference, tokenizer
    if isinstance(reference, tuple) and len(reference) == 2 and isinstance(reference[0], nn.Module):
        return reference
    raise ConfigError(
        f"reference must be a causal LM, a (model, tokenizer) pair or a model name, "
        f"got {type(reference).__name__}"
    )


def _methods(methods: str | Sequence[str]) -> list[str]:
    names = [methods] if isinstance(methods, str) else list(dict.fromkeys(methods))
    if not names:
        raise ConfigError("no membership score asked: give at least one method")
    for name in names:
        MEMBERSHIP[name]  # an unknown name raises a ConfigError with a suggestion
    return names


def _options(name: str, k: float) -> Any:
    entry = MEMBERSHIP[name]
    fields = getattr(entry.options, "__dataclass_fields__", {})
    return build(entry.options, {"k": k} if "k" in fields else {}, f"membership.{name}")


def _check_lengths(
    tokenizer: Any, texts: Sequence[str], max_length: int | None, where: str
) -> None:
    """Every text needs 2 tokens (the first is not scored), checked before any forward pass."""
    for i, text in enumerate(texts):
        if len(encode(tokenizer, text)[:max_length]) < 2:
            raise DataError(f"text {i} has fewer than 2 tokens{where}: nothing to score ({text!r})")


def _as_array(values: Any) -> np.ndarray:
    return values.double().numpy() if hasattr(values, "double") else np.asarray(values, float)


def score_all(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    methods: str | Sequence[str] = DEFAULT_METHODS,
    *,
    k: float = 0.2,
    reference: Reference | None = None,
    batch_size: int = 8,
    max_length: int | None = None,
) -> dict[str, np.ndarray]:
    """Several membership scores of each text, from one forward pass of the target per batch.

    Args:
        model: the target causal LM.
        tokenizer: its tokenizer.
        texts: N strings.
        methods: registered score names (``loss``, ``zlib``, ``reference``, ``min_k``,
            ``min_k_pp``); default all but ``reference``.
        k: the fraction of tokens ``min_k`` and ``min_k_pp`` average, in (0, 1].
        reference: the reference model of ``reference``: a causal LM with the same tokenizer, a
            ``(model, tokenizer)`` pair, or a name for :func:`shiftlab.lm.load.load`.
        batch_size: texts per forward pass.
        max_length: score only each text's first ``max_length`` tokens (None: all).

    Returns:
        Method name -> (N,) float64 array; higher = more likely a training member.

    Raises:
        ConfigError: an unknown method, k outside (0, 1], or ``reference`` asked without a
            reference model.
        DataError: a text that is not a string, or has fewer than 2 tokens (nothing to score).
    """
    names = _methods(methods)
    options = {name: _options(name, k) for name in names}
    needs = set().union(*(MEMBERSHIP[name].needs for name in names))
    if REFERENCE in needs and reference is None:
        raise ConfigError(
            "membership score 'reference' needs a reference model: pass reference="
            "(model, tokenizer), a model sharing the tokenizer, or a model name"
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"text {i} is a {type(text).__name__}, not a string")
    if len(texts) == 0:
        return {name: np.zeros(0) for name in names}
    pair = (
        _reference_pair(reference, tokenizer, model_device(model)) if REFERENCE in needs else None
    )
    _check_lengths(tokenizer, texts, max_length, "")
    if pair is not None:
        _check_lengths(pair[1], texts, max_length, " under the reference model's tokenizer")
    target = token_logprobs(
        model,
        tokenizer,
        texts,
        batch_size=batch_size,
        max_length=max_length,
        with_vocab_stats=VOCAB_STATS in needs,
    )
    ref_logp: list[Any] = [None] * len(texts)
    if pair is not None:
        ref_model, ref_tokenizer = pair
        ref_logp = list(
            token_logprobs(
                ref_model, ref_tokenizer, texts, batch_size=batch_size, max_length=max_length
            )
        )
    scores = {name: np.zeros(len(texts)) for name in names}
    for i, text in enumerate(texts):
        values = target[i]
        logp, mean, std = values if isinstance(values, tuple) else (values, None, None)
        stats = TextStats(
            text=text,
            logp=_as_array(logp),
            mean=None if mean is None else _as_array(mean),
            std=None if std is None else _as_array(std),
            reference_logp=None if ref_logp[i] is None else _as_array(ref_logp[i]),
        )
        for name in names:
            scores[name][i] = MEMBERSHIP[name].obj(stats, options[name])
    return scores


def score(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    method: str = "min_k_pp",
    *,
    k: float = 0.2,
    reference: Reference | None = None,
    batch_size: int = 8,
    max_length: int | None = None,
) -> np.ndarray:
    """One membership score of each text (see :func:`score_all`).

    Args:
        model: the target causal LM.
        tokenizer: its tokenizer.
        texts: N strings.
        method: a registered score name (default Min-K%++).
        k: the fraction of tokens ``min_k`` and ``min_k_pp`` average, in (0, 1].
        reference: the reference model (``method="reference"`` only).
        batch_size: texts per forward pass.
        max_length: score only each text's first ``max_length`` tokens (None: all).

    Returns:
        (N,) float64 scores; higher = more likely a training member.
    """
    if not isinstance(method, str):
        raise ConfigError(f"method must be one score name, got {method!r}; use score_all")
    return score_all(
        model,
        tokenizer,
        texts,
        [method],
        k=k,
        reference=reference,
        batch_size=batch_size,
        max_length=max_length,
    )[method]
