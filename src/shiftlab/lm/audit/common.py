"""What the audit methods share: the problem's layout, the objective, gradients, the checks.

The reverse setting of ARCA (Jones, Dragan, Raghunathan, Steinhardt, ICML 2023, arXiv
2303.04381; reference ejones313/auditing-llms ``arca.py``, ``losses.py``, ``utils.py``): find
an input ``x`` of ``n`` tokens after a fixed head (BOS, if the tokenizer has one, and an optional
prefix) such that greedy decoding continues with the target ``o``. Every sequence is laid out as

    [head (P tokens)] [input (n tokens)] [target (T tokens)]

and every index below is an absolute position in it (the reference mixes prefix-relative and
absolute indices when re-ranking, see ``/work/shared/methods.md`` L2; here they never mix).

The objective of a sequence is ``log p(o | head, x) + lam * mean_t log p(s_t | s_<t)``, the mean
running over the head and input tokens after the first, as the reference's ``log_perplexity``
(``losses.py``) does. Every method ranks its exact candidates by it and backpropagates
``-objective``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from shiftlab.typed import param


@dataclass
class SearchOptions:
    """What every search method shares: the weight of the input's own log-probability in the
    objective (ARCA's ``lam_perp``; the others have none, so 0)."""

    lam: float = param(
        0.0, "weight of the input's mean log-probability (ARCA's lam_perp)", within="[0, inf)"
    )


@dataclass
class Problem:
    """One reverse-audit problem on ids (what every method searches over).

    Attributes:
        model: a causal LM taking ``input_ids`` or ``inputs_embeds`` and returning ``.logits``.
        head: (P,) the fixed tokens before the input (BOS and prefix).
        target: (T,) the output tokens greedy decoding must produce.
        input_length: n, the number of input tokens searched.
        allowed: (V,) bool, the tokens that may appear in the input.
        lam: weight of the input's mean log-probability.
        chunk: sequences per forward pass when evaluating (memory only; counts are per sequence).
        tokenizer: used by methods that check how candidates re-tokenize (GCG), else None.
    """

    model: Any
    head: torch.Tensor
    target: torch.Tensor
    input_length: int
    allowed: torch.Tensor
    lam: float = 0.0
    chunk: int = 64
    tokenizer: Any = None

    @property
    def device(self) -> torch.device:
        return self.head.device

    @property
    def vocab(self) -> int:
        """V, the number of candidate tokens."""
        return int(self.allowed.numel())

    @property
    def start(self) -> int:
        """Position of the first input token (P)."""
        return int(self.head.numel())

    @property
    def embedding(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()

    @property
    def weight(self) -> torch.Tensor:
        """(V, d) input embedding matrix, detached, cut to the candidate tokens."""
        return self.embedding.weight.detach()[: self.vocab]

    def sequences(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, n) inputs -> (B, P + n + T) full sequences."""
        b = inputs.shape[0]
        return torch.cat([self.head.expand(b, -1), inputs, self.target.expand(b, -1)], dim=1).long()


@dataclass
class Evaluation:
    """Exact scores of candidate inputs: objective (B,) and whether each reproduces the target
    under greedy decoding (B,) bool."""

    objective: torch.Tensor
    reproduces: torch.Tensor


def score(problem: Problem, logits: torch.Tensor, sequences: torch.Tensor) -> Evaluation:
    """Objective and target match of sequences from their logits.

    Args:
        problem: the layout.
        logits: (B, L, V') the model's logits on ``sequences``.
        sequences: (B, L) full sequences.

    Returns:
        The objective (B,), differentiable through ``logits``, and ``reproduces`` (B,): the
        argmax at every target position is the target token, which is exactly "greedy decoding
        of head + input produces the target".
    """
    t = problem.target.numel()
    first = problem.start + problem.input_length - 1  # logit position predicting target[0]
    target_logits = logits[:, first : first + t].float()
    target_lp = F.log_softmax(target_logits, dim=-1)
    objective = target_lp.gather(-1, sequences[:, first + 1 : first + 1 + t, None]).sum((1, 2))
    if problem.lam != 0 and first > 0:
        prompt_lp = F.log_softmax(logits[:, :first].float(), dim=-1)
        token_lp = prompt_lp.gather(-1, sequences[:, 1 : first + 1, None]).squeeze(-1)
        objective = objective + problem.lam * token_lp.mean(1)
    reproduces = (target_logits.argmax(-1) == sequences[:, first + 1 : first + 1 + t]).all(1)
    return Evaluation(objective, reproduces)


@torch.no_grad()
def evaluate(problem: Problem, inputs: torch.Tensor) -> Evaluation:
    """Exact objective of (B, n) candidate inputs (B forward passes; charge them)."""
    objectives, matches = [], []
    for chunk in inputs.split(problem.chunk):
        seqs = problem.sequences(chunk)
        logits = problem.model(input_ids=seqs, use_cache=False).logits
        ev = score(problem, logits, seqs)
        objectives.append(ev.objective)
        matches.append(ev.reproduces)
    return Evaluation(torch.cat(objectives), torch.cat(matches))


def embedding_gradients(problem: Problem, sequences: torch.Tensor) -> torch.Tensor:
    """Gradient of each sequence's loss (``-objective``) w.r.t. its input embeddings.

    Args:
        sequences: (B, L) full sequences.

    Returns:
        (B, L, d): row b is the gradient of sequence b's own loss (sequences do not interact).
        Costs B forward and B backward passes; charge them.
    """
    embeds = problem.embedding(sequences).detach().requires_grad_(True)
    logits = problem.model(inputs_embeds=embeds, use_cache=False).logits
    loss = -score(problem, logits, sequences).objective.sum()
    (grad,) = torch.autograd.grad(loss, embeds)
    return grad


def first_order_scores(problem: Problem, sequences: torch.Tensor, position: int) -> torch.Tensor:
    """ARCA's candidate scores at ``position``: ``s_v = -e_v . mean_b grad_b``.

    ``grad_b`` is the gradient of sequence b's loss w.r.t. the embedding at ``position``
    (reference: ``arca.py`` ``backward_scores = -matmul(embedding_table, grad.mean(0))``).

    Args:
        sequences: (B, L) full sequences that differ at ``position`` (ARCA: B random tokens;
            AutoPrompt: the current token, B = 1).
        position: absolute position of the coordinate being updated.

    Returns:
        (V,) a first-order estimate of how much each token would lower the loss there.
    """
    grad = embedding_gradients(problem, sequences)[:, position].mean(0)
    return -(problem.weight.float() @ grad.float())


def one_hot_gradients(problem: Problem, inputs: torch.Tensor) -> torch.Tensor:
    """GCG's token gradients: d loss / d one-hot input, one row per input position.

    Reference: llm-attacks ``minimal_gcg/opt_utils.py`` ``token_gradients`` (one-hot of the
    control tokens times the embedding matrix, cross-entropy on the target, gradient normalised
    per position).

    Args:
        inputs: (n,) the current input.

    Returns:
        (n, V) gradients, each row divided by its L2 norm. One forward and one backward pass.
    """
    weight = problem.embedding.weight
    one_hot = F.one_hot(inputs.long(), weight.shape[0]).to(weight.dtype).requires_grad_(True)
    seq = problem.sequences(inputs[None])
    embeds = problem.embedding(seq).detach()
    s, n = problem.start, problem.input_length
    full = torch.cat([embeds[:, :s], (one_hot @ weight)[None], embeds[:, s + n :]], dim=1)
    logits = problem.model(inputs_embeds=full, use_cache=False).logits
    loss = -score(problem, logits, seq).objective.sum()
    (grad,) = torch.autograd.grad(loss, one_hot)
    grad = grad[:, : problem.vocab].float()
    return grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def greedy_decode(problem: Problem, inputs: torch.Tensor) -> list[int]:
    """The T tokens greedy decoding actually produces after head + inputs (one row at a time,
    no cache: the check does not depend on batching or caching)."""
    seq = torch.cat([problem.head, inputs.long()])[None]
    out: list[int] = []
    for _ in range(problem.target.numel()):
        logits = problem.model(input_ids=seq, use_cache=False).logits[0, -1]
        nxt = int(logits.argmax())
        out.append(nxt)
        seq = torch.cat([seq, seq.new_tensor([[nxt]])], dim=1)
    return out


class Tracker:
    """The best input seen, and whether one reproducing the target was found.

    Each method evaluates a batch of candidates and moves to the one :meth:`choose` returns: the
    highest objective among candidates that reproduce the target if any does (the search then
    stops), else the highest objective (the references move to the batch's best unconditionally).
    """

    def __init__(self, inputs: torch.Tensor) -> None:
        self.inputs = inputs.clone()
        self.objective = float("-inf")
        self.found = False
        self.steps = 0

    def choose(self, candidates: torch.Tensor, ev: Evaluation) -> int:
        """Index of the candidate to move to; records the best seen.

        Args:
            candidates: (k, n) candidate inputs.
            ev: their exact evaluation.
        """
        self.steps += 1
        objective = ev.objective
        if bool(ev.reproduces.any()):
            objective = objective.masked_fill(~ev.reproduces, float("-inf"))
        best = int(objective.argmax())
        value = float(ev.objective[best])
        if bool(ev.reproduces[best]):
            self.found = True
            self.inputs, self.objective = candidates[best].clone(), value
        elif value > self.objective:
            self.inputs, self.objective = candidates[best].clone(), value
        return best


@contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Run the model in eval mode (no dropout), then restore its mode."""
    training = bool(getattr(model, "training", False))
    model.eval()
    try:
        yield
    finally:
        model.train(training)


_TEXTS: dict[tuple[int, int], list[str]] = {}


def token_texts(tokenizer: Any, vocab_size: int) -> list[str]:
    """The text of every token id below ``vocab_size`` (decoded once per tokenizer)."""
    key = (id(tokenizer), vocab_size)
    if key not in _TEXTS:
        _TEXTS.clear()
        _TEXTS[key] = [tokenizer.decode([i]) for i in range(vocab_size)]
    return _TEXTS[key]


def similar_tokens(tokenizer: Any, target_ids: list[int], vocab_size: int) -> set[int]:
    """Tokens too close to the target's to be a fair input: the reference's default constraint.

    Follows ejones313/auditing-llms ``utils.py`` ``toks_to_skip``: a token whose text (stripped,
    lower case) starts with a target token's text minus its last character, or that begins a
    target token's text, is forbidden; tokens of three characters or fewer are allowed unless
    they are a target token.

    Args:
        tokenizer: decodes single ids.
        target_ids: the target's tokens.
        vocab_size: how many ids to check.
    """
    texts = token_texts(tokenizer, vocab_size)
    targets = [texts[i] for i in target_ids if i < vocab_size]
    out: set[int] = set()
    for i, tok in enumerate(texts):
        if len(tok) <= 3 and tok not in targets:
            continue
        low = tok.strip(" ").lower()
        for target in targets:
            other = target.strip(" ").lower()
            if low.startswith(other[:-1]) or other.startswith(low):
                out.add(i)
    return out
