"""Audits (ARCA, AutoPrompt, GCG) on a tiny random Llama with a word-level tokenizer."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from shiftlab.errors import ConfigError
from shiftlab.lm.audit import AUDITS, Budget, Problem, run_audit, similar_tokens
from shiftlab.lm.audit.common import first_order_scores, one_hot_gradients

VOCAB = 96
METHODS = ["arca", "autoprompt", "autoprompt_arca", "gcg"]
SMALL = {
    "arca": {"batch_size": 16},
    "autoprompt": {"candidates": 64},
    "autoprompt_arca": {"batch_size": 16},
    "gcg": {"batch_size": 32},
}


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"w{i}": i for i in range(3, VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        initializer_range=0.5,  # large weights: the greedy output depends on the input
    )
    return LlamaForCausalLM(config).eval()


def problem_for(model: Any, lam: float = 0.0) -> Problem:
    allowed = torch.ones(VOCAB, dtype=torch.bool)
    allowed[:3] = False
    return Problem(
        model=model,
        head=torch.tensor([1, 10, 11]),
        target=torch.tensor([40, 41]),
        input_length=3,
        allowed=allowed,
        lam=lam,
    )


def hand_loss(model: Any, embeds: torch.Tensor, seq: list[int], lam: float) -> torch.Tensor:
    """-log p(target | head, input) - lam * mean log p(prompt tokens), written out by hand."""
    logits = model(inputs_embeds=embeds).logits[0]
    logp = F.log_softmax(logits.float(), dim=-1)
    first = 3 + 3 - 1  # head 3 tokens, input 3 tokens: logit 5 predicts target[0]
    loss = -(logp[first, seq[first + 1]] + logp[first + 1, seq[first + 2]])
    prompt = torch.stack([logp[t - 1, seq[t]] for t in range(1, first + 1)])
    return loss - lam * prompt.mean()


@pytest.mark.parametrize("lam", [0.0, 0.7])
def test_arca_scores_are_averaged_gradient_dot_products(model: Any, lam: float) -> None:
    problem = problem_for(model, lam)
    position = 4  # the second input token
    g = torch.Generator().manual_seed(3)
    current = torch.tensor([5, 6, 7])
    seqs = problem.sequences(current.repeat(6, 1))
    seqs[:, position] = torch.randint(0, VOCAB, (6,), generator=g)
    scores = first_order_scores(problem, seqs, position)

    grads = []
    for row in seqs.tolist():
        embeds = model.get_input_embeddings()(torch.tensor([row])).detach().requires_grad_(True)
        hand_loss(model, embeds, row, lam).backward()
        grads.append(embeds.grad[0, position])
    expected = -(model.get_input_embeddings().weight.detach() @ torch.stack(grads).mean(0))
    assert scores.shape == (VOCAB,)
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-5)


def test_gcg_gradient_is_autoprompt_score_normalised(model: Any) -> None:
    """The one-hot gradient row at position i is -(first-order score at the current token),
    divided by its norm."""
    problem = problem_for(model)
    current = torch.tensor([5, 6, 7])
    grad = one_hot_gradients(problem, current)
    for i in range(3):
        scores = first_order_scores(problem, problem.sequences(current[None]), 3 + i)
        torch.testing.assert_close(grad[i], -scores / scores.norm(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("target", "prefix"), [(" w40", ""), (" w7 w9", ""), (" w40 w41", "w10")])
def test_successes_reproduce_under_greedy_decoding(
    model: Any, tokenizer: Any, method: str, target: str, prefix: str
) -> None:
    r = run_audit(
        method,
        model,
        tokenizer,
        target,
        input_length=3,
        prefix=prefix,
        budget=1500,
        seed=0,
        options=SMALL[method],
    )
    head = [1, *tokenizer(prefix, add_special_tokens=False)["input_ids"]]
    prompt = torch.tensor([head + r.input_ids])
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=len(r.target_ids),
        do_sample=False,
        pad_token_id=2,
    )[0, prompt.shape[1] :].tolist()
    assert out == r.output_ids
    assert r.success == (out == r.target_ids)
    assert r.output_text == tokenizer.decode(out)
    assert len(r.input_ids) == 3 and r.retokenizes


def test_some_method_succeeds(model: Any, tokenizer: Any) -> None:
    """The reproduction test above means something: on these targets the searches succeed."""
    results = [
        run_audit(
            m, model, tokenizer, " w40", input_length=3, budget=1500, seed=0, options=SMALL[m]
        )
        for m in METHODS
    ]
    assert all(r.success for r in results)
    assert all(r.passes < r.budget for r in results)  # early stop


def test_budgets_are_respected_and_equal(model: Any, tokenizer: Any) -> None:
    """A target no single-token input reaches in this budget: every method spends the budget
    (less than one minimal step of 3 passes may remain) and never more."""
    budget = 700
    options = {
        "arca": {"batch_size": 16, "iters": 10_000},
        "autoprompt": {"candidates": 16, "iters": 10_000},
        "autoprompt_arca": {"batch_size": 16, "iters": 10_000},
        "gcg": {"batch_size": 32, "steps": 10_000},
    }
    for method in METHODS:
        r = run_audit(
            method,
            model,
            tokenizer,
            " w7 w9 w11 w13",
            input_length=1,
            budget=budget,
            seed=1,
            options=options[method],
        )
        assert not r.success
        assert r.budget == budget
        assert budget - 3 < r.passes <= budget
        assert r.backward_passes > 0 and r.forward_passes > r.backward_passes


def test_pass_counts_follow_the_rule(model: Any, tokenizer: Any) -> None:
    """ARCA: B forward + B backward per gradient, B forward per exact re-ranking; AutoPrompt and
    GCG: 1 + 1 per gradient."""
    r = run_audit(
        "arca",
        model,
        tokenizer,
        " w7 w9 w11 w13",
        input_length=2,
        budget=10**6,
        seed=0,
        options={"batch_size": 8, "iters": 2},
    )
    assert (r.forward_passes, r.backward_passes, r.steps) == (4 * 16, 4 * 8, 4)
    r = run_audit(
        "autoprompt_arca",
        model,
        tokenizer,
        " w7 w9 w11 w13",
        input_length=2,
        budget=10**6,
        seed=0,
        options={"batch_size": 8, "iters": 2},
    )
    assert (r.forward_passes, r.backward_passes, r.steps) == (4 * 9, 4, 4)
    r = run_audit(
        "autoprompt",
        model,
        tokenizer,
        " w7 w9 w11 w13",
        input_length=2,
        budget=10**6,
        seed=0,
        options={"candidates": 8, "iters": 3},
    )  # the current input once, then per iteration one gradient and 8 candidates
    assert (r.forward_passes, r.backward_passes, r.steps) == (1 + 3 * 9, 3, 3)
    r = run_audit(
        "gcg",
        model,
        tokenizer,
        " w7 w9 w11 w13",
        input_length=2,
        budget=10**6,
        seed=0,
        options={"batch_size": 8, "steps": 3, "filter_retokenize": False},
    )
    assert (r.forward_passes, r.backward_passes, r.steps) == (3 * 9, 3, 3)


def test_budget_refuses_overspending() -> None:
    budget = Budget(10)
    budget.spend(forward=6, backward=3)
    assert (budget.used, budget.left) == (9, 1)
    with pytest.raises(RuntimeError, match="overspent"):
        budget.spend(forward=1, backward=1)


@pytest.mark.parametrize("method", METHODS)
def test_forbidden_tokens_never_appear(model: Any, tokenizer: Any, method: str) -> None:
    forbidden = set(range(3, 80))
    r = run_audit(
        method,
        model,
        tokenizer,
        " w40",
        input_length=3,
        forbidden=forbidden,
        budget=400,
        seed=2,
        options=SMALL[method],
    )
    assert not set(r.input_ids) & (forbidden | {0, 1, 2})
    default = run_audit(
        method,
        model,
        tokenizer,
        " w40 w41",
        input_length=3,
        budget=400,
        seed=2,
        options=SMALL[method],
    )
    assert not set(default.input_ids) & {0, 1, 2, 40, 41}


@pytest.mark.parametrize("method", METHODS)
def test_fixed_seed_is_deterministic(model: Any, tokenizer: Any, method: str) -> None:
    def run() -> dict[str, Any]:
        r = run_audit(
            method,
            model,
            tokenizer,
            " w7 w9 w11",
            input_length=2,
            budget=300,
            seed=5,
            options=SMALL[method],
        )
        return {k: v for k, v in r.to_dict().items() if k != "seconds"}

    assert run() == run()


def test_errors_are_config_errors(model: Any, tokenizer: Any) -> None:
    def audit(method: str = "arca", target: str = " w40", **kw: Any) -> Any:
        args = {"input_length": 2, "budget": 100, "seed": 0} | kw
        return run_audit(method, model, tokenizer, target, **args)

    with pytest.raises(ConfigError, match="did you mean 'arca'"):
        audit("arka")
    with pytest.raises(ConfigError, match="budget must be at least 3"):
        audit(budget=2)
    with pytest.raises(ConfigError, match="input_length must be at least 1"):
        audit(input_length=0)
    with pytest.raises(ConfigError, match="encodes to no tokens"):
        audit(target=" ")
    with pytest.raises(ConfigError, match="not a token id"):
        audit(forbidden={500})
    with pytest.raises(ConfigError, match="every token is forbidden"):
        audit(forbidden=set(range(VOCAB)))
    with pytest.raises(ConfigError, match=r"unknown key 'audit\.gcg\.top_k'; did you mean 'topk'"):
        audit("gcg", options={"top_k": 3})


def test_registry_and_reference_constraint(tokenizer: Any) -> None:
    assert AUDITS.names() == ["arca", "autoprompt", "autoprompt_arca", "gcg"]
    citations = {e.name: e.citation for e in AUDITS}
    assert citations == {
        "arca": "2303.04381",
        "autoprompt": "2010.15980",
        "autoprompt_arca": "2010.15980",
        "gcg": "2307.15043",
    }
    assert AUDITS["autoprompt"].options().candidates == 10  # create_trigger.py --num-cand
    assert AUDITS["arca"].options().batch_size == 64
    assert AUDITS["gcg"].options().topk == 256
    assert similar_tokens(tokenizer, [40], VOCAB) == {40}


def test_the_default_forbidden_set_is_the_references_rule(model: Any) -> None:
    """ARCA's toks_to_skip: tokens that spell the target or a piece of it are forbidden by
    default, so a search cannot win by echoing the target."""
    words = ["Paris", "Pari", "Paris!", "Parliament", "is", "London", "the", "Par"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {w: i for i, w in enumerate(words, 3)}
    vocab |= {f"w{i}": i for i in range(len(vocab), VOCAB)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    similar = similar_tokens(tok, [vocab["Paris"]], VOCAB)
    assert {vocab[w] for w in ("Paris", "Pari", "Paris!")} <= similar
    # tokens of three characters or fewer are allowed unless they are the target's ("Par")
    assert not {vocab[w] for w in ("is", "London", "the", "Par")} & similar
    for seed in range(3):
        r = run_audit("gcg", model, tok, "Paris", input_length=2, budget=200, seed=seed,
                      options={"batch_size": 16})  # fmt: skip
        assert not set(r.input_ids) & similar
        assert r.fed_ids == [1, *r.input_ids] and r.add_bos  # what the model was fed


def test_autoprompt_moves_only_to_a_better_input(model: Any, tokenizer: Any, monkeypatch) -> None:
    """AutoPrompt's rule (create_trigger.py lines 385-393): a candidate replaces the current
    token only if it scores better; ARCA's variant moves unconditionally."""
    from shiftlab.lm.audit import autoprompt as module
    from shiftlab.lm.audit.common import Evaluation

    seen: list[torch.Tensor] = []

    def worse(problem: Any, inputs: torch.Tensor) -> Evaluation:
        seen.append(inputs.clone())
        first = len(seen) == 1  # the current input, scored once
        objective = torch.zeros(len(inputs)) if first else torch.full((len(inputs),), -1e3)
        return Evaluation(objective, torch.zeros(len(inputs), dtype=torch.bool))

    monkeypatch.setattr(module, "evaluate", worse)
    run_audit("autoprompt", model, tokenizer, " w40", input_length=3, budget=400, seed=0)
    start = seen[0][0]
    assert all(int((c != start).sum()) <= 1 for batch in seen[1:] for c in batch)

    seen.clear()

    def better(problem: Any, inputs: torch.Tensor) -> Evaluation:
        seen.append(inputs.clone())
        objective = torch.arange(len(inputs), dtype=torch.float) + len(seen)
        return Evaluation(objective, torch.zeros(len(inputs), dtype=torch.bool))

    monkeypatch.setattr(module, "evaluate", better)
    run_audit("autoprompt", model, tokenizer, " w40", input_length=3, budget=400, seed=0)
    start = seen[0][0]
    assert any(int((c != start).sum()) >= 2 for batch in seen[1:] for c in batch)
