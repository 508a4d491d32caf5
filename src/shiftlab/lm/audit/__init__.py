"""Audits by discrete prompt optimisation: find an input whose greedy continuation is a target.

The reverse setting of ARCA (Jones, Dragan, Raghunathan, Steinhardt, "Automatically Auditing
Large Language Models via Discrete Optimization", ICML 2023, arXiv 2303.04381; reference
ejones313/auditing-llms), with three optimisers on one problem, one objective and one pass
budget (:mod:`shiftlab.lm.audit.budget` states the counting rule):

- ``arca``: averaged first-order scores over random tokens (:mod:`.arca`);
- ``autoprompt``: AutoPrompt's own search (Shin et al., EMNLP 2020, arXiv 2010.15980;
  :mod:`.autoprompt`): a random position, gradient candidates, a swap only if better;
- ``autoprompt_arca``: AutoPrompt as ARCA's code runs it, first-order scores at the current
  token position by position (:mod:`.autoprompt_arca`);
- ``gcg``: one-hot gradients, random single-token swaps from the top-k (Zou et al. 2023,
  arXiv 2307.15043; :mod:`.gcg`).

::

    result = run_audit("arca", model, tokenizer, " Paris", input_length=3, budget=20_000, seed=0)
    result.success, result.input_text, result.output_text, result.passes

A method is a function ``(problem, current, budget, generator, options) -> Tracker`` registered
in :data:`AUDITS` with its options dataclass; :func:`run_audit` builds the problem, runs it and
checks the found input by greedy decoding.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from shiftlab.errors import ConfigError
from shiftlab.lm.audit.budget import AuditResult, Budget
from shiftlab.lm.audit.common import (
    Problem,
    eval_mode,
    greedy_decode,
    similar_tokens,
)
from shiftlab.registry import AUDITS
from shiftlab.typed import build, to_plain


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _allowed(tokenizer: Any, vocab: int, forbidden: Iterable[int]) -> torch.Tensor:
    """(V,) bool: tokens the input may hold (neither special nor forbidden)."""
    allowed = torch.ones(vocab, dtype=torch.bool)
    for i in getattr(tokenizer, "all_special_ids", []) or []:
        if 0 <= i < vocab:
            allowed[i] = False
    for value in forbidden:
        try:
            i = operator.index(value)  # ints, numpy and 0-d torch integers
        except TypeError:
            i = -1
        if isinstance(value, bool) or not 0 <= i < vocab:
            raise ConfigError(f"forbidden token {value!r} is not a token id in 0..{vocab - 1}")
        allowed[i] = False
    if not bool(allowed.any()):
        raise ConfigError("every token is forbidden: the audit has no input to search")
    return allowed


def run_audit(
    method: str,
    model: Any,
    tokenizer: Any,
    target: str,
    *,
    input_length: int,
    prefix: str = "",
    forbidden: Iterable[int] | None = None,
    budget: int,
    seed: int,
    options: Mapping[str, Any] | Any | None = None,
    add_bos: bool = True,
) -> AuditResult:
    """Search for an input of ``input_length`` tokens after ``prefix`` whose greedy continuation
    is ``target``, with ``budget`` forward + backward passes.

    Args:
        method: ``arca``, ``autoprompt``, ``autoprompt_arca`` or ``gcg``.
        model: a causal LM (``transformers``), used in eval mode and restored after.
        tokenizer: its tokenizer; the target and prefix are encoded without special tokens.
        target: the output to elicit (e.g. ``" Paris"``; mind the leading space).
        input_length: n, the number of input tokens to search.
        prefix: fixed text before the input (after BOS when ``add_bos`` and the tokenizer has one).
        forbidden: token ids the input may not hold; default the reference's rule: the
            target's tokens and every token that spells the target or a piece of it
            (:func:`similar_tokens`, ARCA's ``toks_to_skip``), so that a search cannot win by
            echoing. Special tokens never appear.
        budget: forward + backward passes the search may use (see
            :mod:`shiftlab.lm.audit.budget`); at least 3.
        seed: seeds the initial input and every random draw (deterministic on one device).
        options: the method's options, a mapping or its dataclass (``ArcaOptions``, ...).
        add_bos: start every sequence with the tokenizer's BOS token, if it has one (ARCA's GPT-2
            runs have none; an instruction-tuned model expects one). The result's ``fed_ids``
            are exactly the ids the model was given (BOS, prefix, input).

    Returns:
        The result: the input found (the first that reproduces the target, else the best by
        objective), the greedy output it actually produces, success, passes and seconds.
    """
    entry = AUDITS[method]
    if options is None or isinstance(options, Mapping):
        opts = build(entry.options, options or {}, f"audit.{method}")
    elif isinstance(options, entry.options):
        opts = options
    else:
        raise ConfigError(f"audit.{method} options must be a mapping or {entry.options.__name__}")
    if isinstance(input_length, bool) or int(input_length) < 1:
        raise ConfigError(f"audit input_length must be at least 1, got {input_length!r}")
    if int(budget) < 3:
        raise ConfigError(f"audit budget must be at least 3 passes, got {budget!r}")
    target_ids = _ids(tokenizer, target)
    if not target_ids:
        raise ConfigError(f"audit target {target!r} encodes to no tokens")
    head_ids = _ids(tokenizer, prefix) if prefix else []
    bos = getattr(tokenizer, "bos_token_id", None)
    if add_bos and bos is not None:
        head_ids = [int(bos), *head_ids]

    device = next(model.parameters()).device
    vocab = min(len(tokenizer), model.get_input_embeddings().weight.shape[0])
    if forbidden is None:
        forbidden = set(target_ids) | similar_tokens(tokenizer, target_ids, vocab)
    allowed = _allowed(tokenizer, vocab, forbidden)
    generator = torch.Generator().manual_seed(int(seed))
    pool = allowed.nonzero().squeeze(1)
    start = pool[torch.randint(0, pool.numel(), (int(input_length),), generator=generator)]
    problem = Problem(
        model=model,
        head=torch.tensor(head_ids, dtype=torch.long, device=device),
        target=torch.tensor(target_ids, dtype=torch.long, device=device),
        input_length=int(input_length),
        allowed=allowed.to(device),
        lam=float(getattr(opts, "lam", 0.0)),
        tokenizer=tokenizer,
    )
    passes = Budget(int(budget))
    with eval_mode(model):
        began = time.perf_counter()
        tracker = entry.obj(problem, start.to(device), passes, generator, opts)
        seconds = time.perf_counter() - began
        output_ids = greedy_decode(problem, tracker.inputs)
    input_ids = [int(i) for i in tracker.inputs.tolist()]
    input_text = tokenizer.decode(input_ids)
    return AuditResult(
        method=method,
        target=target,
        target_ids=target_ids,
        prefix=prefix,
        input_text=input_text,
        input_ids=input_ids,
        fed_ids=[*head_ids, *input_ids],
        add_bos=bool(add_bos and bos is not None),
        output_text=tokenizer.decode(output_ids),
        output_ids=output_ids,
        success=output_ids == target_ids,
        objective=tracker.objective,
        forward_passes=passes.forward,
        backward_passes=passes.backward,
        budget=int(budget),
        steps=tracker.steps,
        seconds=seconds,
        seed=int(seed),
        retokenizes=_ids(tokenizer, input_text) == input_ids,
        options=to_plain(opts),
    )


__all__ = [
    "AUDITS",
    "AuditResult",
    "Budget",
    "Problem",
    "run_audit",
    "similar_tokens",
]
