"""ARCA: coordinate ascent with averaged first-order candidate scores, reverse setting.

Jones, Dragan, Raghunathan, Steinhardt, "Automatically Auditing Large Language Models via
Discrete Optimization", ICML 2023, arXiv 2303.04381. Reference implementation followed:
ejones313/auditing-llms ``arca.py`` (``run_arca``), ``losses.py``, ``args_utils.py``.

For ``iters`` sweeps, for each input position i in order (``arca.py:57-67``):

1. put B random vocabulary tokens at position i, one per copy of the current sequence;
2. backpropagate each copy's loss (``-objective``) to the input embeddings;
3. score every token v by ``-e_v . mean_b grad_b`` at position i (``arca.py:93``);
4. drop forbidden tokens, take the top B, evaluate them exactly in one batched forward pass and
   move to the best (``arca.py:104-132``, unconditionally, as the reference does);
5. stop when greedy decoding of head + input gives the target (``arca.py:133-146``).

Defaults are the reference's (``args_utils.py``): ``arca_batch_size`` 64 (line 5),
``arca_iters`` 10 (line 9), ``lam_perp`` 0 (line 16); ``prompt_length`` 2 (line 11) and
``output_length`` 2 (line 52) are the caller's ``input_length`` and target. The README's reverse
recipe uses batch 32, 50 iterations, prompt length 3 and ``lam_perp`` 0.2.

Differences, all stated:

- positions are absolute everywhere (the reference re-ranks with ``curr_toks_tensor[:, tok_id]``
  at ``arca.py:113`` where ``tok_id + prefix_length`` is meant; methods.md L2);
- the initial input is drawn from allowed tokens (the reference draws from the whole vocabulary);
- candidates are ranked by ``log p(o | x)`` summed over target tokens (as the reference) and the
  gradient is taken of the same objective (the reference backpropagates the mean cross-entropy,
  ``losses.py``, which only rescales the output term against ``lam``'s);
- success is checked on every evaluated candidate, not only the argmax;
- when the budget cannot pay for a whole step (3B passes), the last step uses B' = left // 3
  random tokens and B' candidates.
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
class ArcaOptions(SearchOptions):
    """ARCA's options (reference defaults, ``args_utils.py``)."""

    batch_size: int = param(
        64,
        "random tokens averaged per gradient, and candidates scored exactly (arca_batch_size)",
        within="[1, inf)",
    )
    iters: int = param(
        10, "coordinate-ascent sweeps over the input positions (arca_iters)", within="[1, inf)"
    )


def coordinate_step(
    problem: Problem,
    current: torch.Tensor,
    index: int,
    scores: torch.Tensor,
    budget: Budget,
    size: int,
    tracker: Tracker,
) -> None:
    """Evaluate the top-``size`` allowed tokens by ``scores`` at input ``index``; move to the best.

    Args:
        current: (n,) the input, updated in place.
        index: input position (0 .. n-1).
        scores: (V,) first-order scores.
        size: candidates wanted (fewer if fewer are allowed or the budget is short).
    """
    scores = scores.masked_fill(~problem.allowed, float("-inf"))
    k = min(size, int(problem.allowed.sum()), budget.left)
    tokens = scores.topk(k).indices
    candidates = current.repeat(k, 1)
    candidates[:, index] = tokens
    ev = evaluate(problem, candidates)
    budget.spend(forward=k)
    best = tracker.choose(candidates, ev)
    current[index] = tokens[best]


def random_tokens(problem: Problem, size: int, generator: torch.Generator) -> torch.Tensor:
    """(size,) tokens drawn uniformly from the whole vocabulary (as the reference does)."""
    return torch.randint(0, problem.vocab, (size,), generator=generator).to(problem.device)


@AUDITS.register("arca", options=ArcaOptions, fast={"batch_size": 16})
def arca(
    problem: Problem,
    current: torch.Tensor,
    budget: Budget,
    generator: torch.Generator,
    options: ArcaOptions,
) -> Tracker:
    """ARCA: averaged first-order scores over B random tokens, exact re-ranking of the top B."""
    tracker = Tracker(current)
    b = options.batch_size
    for _ in range(options.iters):
        for i in range(problem.input_length):
            size = b if budget.left >= 3 * b else budget.left // 3
            if size < 1:
                return tracker
            position = problem.start + i
            seqs = problem.sequences(current.repeat(size, 1))
            seqs[:, position] = random_tokens(problem, size, generator)
            scores = first_order_scores(problem, seqs, position)
            budget.spend(forward=size, backward=size)
            coordinate_step(problem, current, i, scores, budget, size, tracker)
            if tracker.found:
                return tracker
    return tracker
