"""AutoPrompt as ARCA's code runs it (``autoprompt_arca``): first-order scores from the gradient at
the current token, every position in turn, the best candidate taken unconditionally. It is
ARCA's baseline, not AutoPrompt's own search, which is :mod:`.autoprompt`.

Shin, Razeghi, Logan, Wallace, Singh, "AutoPrompt: Eliciting Knowledge from Language Models with
Automatically Generated Prompts", EMNLP 2020, arXiv 2010.15980. Implementation followed: the
baseline in ejones313/auditing-llms (``arca.py`` with ``--autoprompt``, ``args_utils.py:32``;
``reverse_experiment.py`` runs it through ``run_arca``), for ARCA (arXiv 2303.04381).

The loop is ARCA's (see :mod:`shiftlab.lm.audit.arca`): sweep the input positions in order;
score every token v at position i by ``-e_v . grad``, the gradient of the loss at the *current*
token (``arca.py:65-66`` sets all B gradient copies to the current token); evaluate the top B
allowed tokens exactly and move to the best; stop when greedy decoding gives the target.
ARCA's code backpropagates B identical copies; their mean gradient is one copy's, so this runs
one sequence and charges one forward and one backward pass. Defaults as ARCA's: B 64, 10 sweeps,
``lam`` 0 (``args_utils.py`` lines 5, 9, 16).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shiftlab.lm.audit.arca import ArcaOptions, coordinate_step
from shiftlab.lm.audit.budget import Budget
from shiftlab.lm.audit.common import Problem, Tracker, first_order_scores
from shiftlab.registry import AUDITS
from shiftlab.typed import param


@dataclass
class ArcaAutoPromptOptions(ArcaOptions):
    """AutoPrompt's options (ARCA's defaults, ``args_utils.py``): ARCA's, except that the batch
    is the candidates scored exactly per position."""

    batch_size: int = param(64, "candidates scored exactly per position (arca_batch_size)")


@AUDITS.register("autoprompt_arca", options=ArcaAutoPromptOptions, fast={"batch_size": 16})
def autoprompt_arca(
    problem: Problem,
    current: torch.Tensor,
    budget: Budget,
    generator: torch.Generator,
    options: ArcaAutoPromptOptions,
) -> Tracker:
    """AutoPrompt as ARCA runs it: first-order scores at the current token, exact re-ranking of
    the top B, position by position."""
    del generator  # deterministic given the initial input
    tracker = Tracker(current)
    for _ in range(options.iters):
        for i in range(problem.input_length):
            if budget.left < 3:
                return tracker
            position = problem.start + i
            seqs = problem.sequences(current[None])
            scores = first_order_scores(problem, seqs, position)
            budget.spend(forward=1, backward=1)
            coordinate_step(problem, current, i, scores, budget, options.batch_size, tracker)
            if tracker.found:
                return tracker
    return tracker
