"""GCG: Greedy Coordinate Gradient over one-hot input tokens.

Zou, Wang, Carlini, Nasr, Kolter, Fredrikson, "Universal and Transferable Adversarial Attacks on
Aligned Language Models", 2023, arXiv 2307.15043. Reference implementation followed:
llm-attacks ``llm_attacks/minimal_gcg/opt_utils.py`` (``token_gradients``, ``sample_control``,
``get_filtered_cands``, ``target_loss``) and ``experiments/configs/template.py`` (read in the
fork DivijD012/llm-attacks-modified, whose files are upstream's).

Each step:

1. the gradient of the loss w.r.t. the one-hot input tokens, each position's row divided by its
   norm (``token_gradients``; one forward and one backward pass);
2. forbidden tokens get +inf, and each position keeps the ``topk`` tokens of most negative
   gradient (``sample_control``);
3. ``batch_size`` candidates, each the current input with one token swapped: positions evenly
   spread (``arange(0, n, n / batch_size)``), the token drawn uniformly from that position's
   top-k;
4. optionally (``filter_retokenize``, the reference's ``filter_cand``) drop candidates that do
   not decode and re-encode to n tokens or that decode to the current text; the dropped ones are
   not evaluated and not charged (the reference pads with copies instead);
5. evaluate the candidates exactly and move to the best (unconditionally, as the reference).

Defaults (``template.py``): ``n_steps`` 500 (line 43), ``batch_size`` 512 (line 45), ``topk``
256 (line 47), ``filter_cand`` True (line 49). The reference ranks by mean cross-entropy of the
target; here by the shared objective (sum of target log-probabilities plus ``lam`` times the
input's mean log-probability), which ranks the same when ``lam`` is 0. The reference's
``allow_non_ascii=False`` is not applied: pass such tokens in ``forbidden``. When the budget
cannot pay for ``batch_size`` candidates, the last step evaluates as many as remain.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from shiftlab.lm.audit.budget import Budget
from shiftlab.lm.audit.common import Problem, SearchOptions, Tracker, evaluate, one_hot_gradients
from shiftlab.registry import AUDITS
from shiftlab.typed import param


@dataclass
class GCGOptions(SearchOptions):
    """GCG's options (reference defaults, llm-attacks ``experiments/configs/template.py``)."""

    topk: int = param(
        256, "tokens of most negative gradient kept per position (topk)", within="[1, inf)"
    )
    batch_size: int = param(
        512, "single-token swaps evaluated exactly per step (batch_size)", within="[1, inf)"
    )
    steps: int = param(500, "most steps (n_steps)", within="[1, inf)")
    filter_retokenize: bool = param(
        True, "skip candidates whose text does not re-encode to n tokens (filter_cand)"
    )


def sample_candidates(
    current: torch.Tensor, grad: torch.Tensor, size: int, topk: int, generator: torch.Generator
) -> torch.Tensor:
    """``size`` single-token swaps of ``current`` (reference ``sample_control``).

    Args:
        current: (n,) the input.
        grad: (n, V) one-hot gradients, +inf at forbidden tokens.
        size: candidates wanted.
        topk: tokens kept per position.

    Returns:
        (size, n) candidates.
    """
    n = current.numel()
    top = (-grad).topk(topk, dim=1).indices  # (n, topk)
    positions = torch.div(torch.arange(size) * n, size, rounding_mode="floor").to(current.device)
    picks = torch.randint(0, topk, (size,), generator=generator).to(current.device)
    candidates = current.repeat(size, 1)
    candidates[torch.arange(size, device=current.device), positions] = top[positions, picks]
    return candidates


def retokenizing(problem: Problem, candidates: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """The candidates whose text re-encodes to n tokens and differs from the current text."""
    tokenizer = problem.tokenizer
    if tokenizer is None:
        return candidates
    now = tokenizer.decode(current.tolist())
    keep = []
    for i, row in enumerate(candidates.tolist()):
        text = tokenizer.decode(row)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if text != now and len(ids) == len(row):
            keep.append(i)
    return candidates[keep] if keep else candidates


@AUDITS.register("gcg", options=GCGOptions, fast={"batch_size": 16, "topk": 16})
def gcg(
    problem: Problem,
    current: torch.Tensor,
    budget: Budget,
    generator: torch.Generator,
    options: GCGOptions,
) -> Tracker:
    """GCG: top-k tokens by one-hot gradient, a batch of random single swaps evaluated exactly."""
    tracker = Tracker(current)
    allowed = int(problem.allowed.sum())
    topk = min(options.topk, allowed)
    for _ in range(options.steps):
        if budget.left < 3:
            break
        grad = one_hot_gradients(problem, current)
        budget.spend(forward=1, backward=1)
        grad = grad.masked_fill(~problem.allowed, float("inf"))
        candidates = sample_candidates(
            current, grad, min(options.batch_size, budget.left), topk, generator
        )
        if options.filter_retokenize:
            candidates = retokenizing(problem, candidates, current)
        ev = evaluate(problem, candidates)
        budget.spend(forward=candidates.shape[0])
        best = tracker.choose(candidates, ev)
        current = candidates[best].clone()
        if tracker.found:
            break
    return tracker
