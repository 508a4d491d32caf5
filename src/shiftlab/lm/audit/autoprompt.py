"""AutoPrompt's own search: a random trigger position per iteration, candidates from the gradient
at the current token, a swap kept only when it scores better (Shin, Razeghi, Logan, Wallace,
Singh, "AutoPrompt: Eliciting Knowledge from Language Models with Automatically Generated
Prompts", EMNLP 2020, arXiv 2010.15980).

Follows ``ucinlp/autoprompt`` ``autoprompt/create_trigger.py``: per iteration one position is
drawn uniformly (``token_to_flip = random.randrange(num_trigger_tokens)``, line 332); the gradient
of the loss w.r.t. that position's embedding ranks every token by ``-e_v . grad``
(``hotflip_attack``, lines 125-142) and the top ``num_cand`` (10, line 486) are evaluated exactly;
the best replaces the current token only if it beats the current score (lines 385-393).
Defaults: 10 candidates, 100 iterations (``--iters``). Here the objective and the evaluation are
the audit's (the target's log-probability, exact on one sequence) rather than AutoPrompt's
label-word loss accumulated over batches of training prompts; ARCA's version of this baseline is
``autoprompt_arca``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shiftlab.lm.audit.budget import Budget
from shiftlab.lm.audit.common import (
    Problem,
    SearchOptions,
    Tracker,
    evaluate,
    first_order_scores,
)
from shiftlab.registry import AUDITS
from shiftlab.typed import param


@dataclass
class AutoPromptOptions(SearchOptions):
    """AutoPrompt's options (``create_trigger.py`` defaults)."""

    candidates: int = param(
        10, "candidates evaluated per iteration (--num-cand)", within="[1, inf)"
    )
    iters: int = param(100, "iterations, one random position each (--iters)", within="[1, inf)")


@AUDITS.register("autoprompt", options=AutoPromptOptions)
def autoprompt(
    problem: Problem,
    current: torch.Tensor,
    budget: Budget,
    generator: torch.Generator,
    options: AutoPromptOptions,
) -> Tracker:
    """AutoPrompt: a random position, the top candidates by gradient, a swap only if better."""
    tracker = Tracker(current)
    score = float(evaluate(problem, current[None]).objective[0])
    budget.spend(forward=1)
    for _ in range(options.iters):
        if budget.left < 3:
            break
        i = int(torch.randint(0, problem.input_length, (1,), generator=generator))
        seqs = problem.sequences(current[None])
        scores = first_order_scores(problem, seqs, problem.start + i)
        budget.spend(forward=1, backward=1)
        scores = scores.masked_fill(~problem.allowed, float("-inf"))
        k = min(options.candidates, int(problem.allowed.sum()), budget.left)
        candidates = current.repeat(k, 1)
        candidates[:, i] = scores.topk(k).indices
        ev = evaluate(problem, candidates)
        budget.spend(forward=k)
        best = tracker.choose(candidates, ev)
        if tracker.found or float(ev.objective[best]) > score:
            current, score = candidates[best].clone(), float(ev.objective[best])
        if tracker.found:
            break
    return tracker
