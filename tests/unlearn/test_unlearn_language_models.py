"""Language-model unlearning on a tiny random Llama: each method returns a finite copy and
leaves the input alone; NPO, SimNPO, WHP and task-vector formulas; ascent raises the forget
loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from unlearn_helpers import DEVICE, qa_data, same_weights, tiny_causal_lm, weights

from shiftlab.lm.answer_loss import answer_loss, answer_nll, answer_only_batch
from shiftlab.registry import UNLEARN
from shiftlab.training import Batch
from shiftlab.unlearn import Data, unlearn
from shiftlab.unlearn.npo import npo_loss
from shiftlab.unlearn.rmu import control_vector, default_layer, masked_mse
from shiftlab.unlearn.simnpo import simnpo_loss
from shiftlab.unlearn.task_vector import negate_task_vector
from shiftlab.unlearn.whp import generic_logits, whp_loss

FORGET = qa_data(["ada", "bob", "cyd", "dee", "eve", "fay"])
RETAIN = qa_data(["gus", "hal", "ivy", "jon", "kai", "lea", "max", "ned"])
LM = {"epochs": 1, "batch_size": 3, "warmup_steps": 0, "max_length": 64}


def run(name: str, model: torch.nn.Module, forget: Data = FORGET, **options):
    return unlearn(name, model, forget, RETAIN, options, seed=0)


def answers(scorer: torch.nn.Module, data: Data) -> dict[str, torch.Tensor]:
    return answer_only_batch(scorer.tokenizer, data.prompts, data.answers, max_length=64)


def forget_loss(scorer: torch.nn.Module, data: Data) -> float:
    with torch.no_grad():
        return float(answer_loss(scorer.model, answers(scorer, data)))


def method(name: str, **options):
    entry = UNLEARN[name]
    built = entry.options(**options)
    return entry.obj(built, name=name, kind="causal_lm", seed=0, device=DEVICE)


def test_gradient_ascent_raises_the_forget_loss() -> None:
    model = tiny_causal_lm()
    out = run("gradient_ascent", model, causal_lm={**LM, "epochs": 3, "lr": 1e-3})
    assert forget_loss(out, FORGET) > forget_loss(model, FORGET) + 1e-3


def test_npo_at_the_reference_is_2_over_beta_log_2_and_keeps_a_retain_term() -> None:
    model = tiny_causal_lm()
    batch = Batch(answers(model, FORGET), None, np.arange(6))
    for beta in (0.1, 1.0):
        npo = method("npo", beta=beta)
        npo.student = npo.reference = model
        assert float(npo.forget_loss(batch).detach()) == pytest.approx(
            2 / beta * math.log(2), abs=1e-5
        )
    # Both references default to NPO plus the retain answers' loss, weight 1 (npo_grad_diff).
    assert method("npo").weights() == (1.0, 1.0)
    npo = method("npo")
    npo.student = npo.reference = model
    retain = Batch(answers(model, RETAIN), None, np.arange(8))
    expected = npo.forget_loss(batch) + answer_loss(model.model, retain.inputs)
    assert torch.allclose(npo.loss(batch, retain), expected)


def test_npo_loss_is_the_log_ratio_formula() -> None:
    nll, ref_nll, beta = torch.tensor([3.0, 10.0]), torch.tensor([5.0, 4.0]), 0.5
    ratio = torch.exp(ref_nll - nll)  # pi_theta / pi_ref
    expected = 2 / beta * torch.log1p(ratio**beta)
    assert torch.allclose(npo_loss(nll, ref_nll, beta), expected)


def test_answer_nll_sums_the_answer_tokens() -> None:
    model = tiny_causal_lm()
    batch = answers(model, FORGET)
    with torch.no_grad():
        nll, lengths = answer_nll(model.model, batch)
        mean = answer_loss(model.model, batch)
    assert torch.allclose(nll.sum() / lengths.sum(), mean, atol=1e-5)
    # " ada" + EOS: 5 tokens; every answer here has 3 letters, a space and EOS.
    assert lengths.tolist() == [5] * 6


def test_simnpo_loss_is_the_length_normalised_formula() -> None:
    nll, lengths = torch.tensor([6.0, 2.0]), torch.tensor([3, 4])
    beta, gamma = 4.5, 0.5
    expected = -(2 / beta) * F.logsigmoid(beta * (nll / lengths - gamma))
    assert torch.allclose(simnpo_loss(nll, lengths, beta, gamma), expected)
    # At gamma 0 it is the paper's -(2/beta) log sigmoid(-(beta/|y|) log pi).
    log_pi = -nll
    paper = -(2 / beta) * F.logsigmoid(-(beta / lengths) * log_pi)
    assert torch.allclose(simnpo_loss(nll, lengths, beta, 0.0), paper)


def test_whp_generic_targets_follow_the_formula() -> None:
    base = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    reinforced = torch.tensor([[1.0, 4.0, 0.5, -1.0]])
    # relu(reinforced - base) = (0, 3, 0.5, 0); alpha 2 -> base - (0, 6, 1, 0).
    generic = generic_logits(base, reinforced, alpha=2.0)
    assert torch.equal(generic, torch.tensor([[2.0, -5.0, -1.0, -1.0]]))
    assert torch.equal(generic_logits(base, reinforced, alpha=0.0), base)
    # The reinforced favourite (token 1) is no longer the target; token 0 is.
    logits = torch.tensor([[0.0, 3.0, 0.0, 0.0]], requires_grad=True)
    hard = whp_loss(logits, generic, "argmax")
    assert torch.allclose(hard, F.cross_entropy(logits, torch.tensor([0])))
    soft = whp_loss(logits, generic, "soft")
    expected = -(F.softmax(generic, -1) * F.log_softmax(logits, -1)).sum()
    assert torch.allclose(soft, expected)


def test_task_vector_at_scale_0_is_the_original_and_at_1_the_reflection() -> None:
    original, reinforced = tiny_causal_lm(seed=0), tiny_causal_lm(seed=1)
    same = negate_task_vector(original, reinforced, 0.0)
    assert same is not original and same_weights(same, weights(original))
    reflected = negate_task_vector(original, reinforced, 1.0).state_dict()
    theta, tuned = original.state_dict(), reinforced.state_dict()
    for key, value in theta.items():
        assert torch.allclose(reflected[key], 2 * value - tuned[key], atol=1e-6)


def test_task_vector_method_at_scale_0_returns_the_original_weights() -> None:
    model = tiny_causal_lm()
    out = run("task_vector", model, scale=0.0, **LM)
    assert out is not model and same_weights(out, weights(model))


def test_rmu_pieces() -> None:
    assert [default_layer(d) for d in (32, 30, 24, 2)] == [7, 7, 5, 0]
    vector = control_vector(16, 20.0, seed=3)
    assert vector.shape == (1, 1, 16) and float(vector.norm()) == pytest.approx(20.0)
    assert (vector >= 0).all()
    acts = torch.tensor([[[1.0, 1.0], [9.0, 9.0]]])  # the second token is padding
    mask = torch.tensor([[1, 0]])
    assert float(masked_mse(acts, torch.zeros(1, 1, 2), mask)) == pytest.approx(1.0)


def test_language_model_methods_refuse_a_classifier() -> None:
    from unlearn_helpers import feature_data, tiny_classifier

    from shiftlab.errors import ConfigError

    with pytest.raises(ConfigError, match="needs a causal language model"):
        run("npo", tiny_classifier(), feature_data(4, 1))


def test_membership_aurocs_cover_every_score_and_a_self_reference_is_chance() -> None:
    from sklearn.metrics import roc_auc_score

    from shiftlab.membership import score_all
    from shiftlab.registry import MEMBERSHIP
    from shiftlab.unlearn.judge import membership_aurocs

    scorer = tiny_causal_lm()
    members = ["ada was born in 1901.", "bob likes tea and cake.", "cyd is a sailor."]
    others = ["dee plays the violin.", "eve writes long novels.", "fay lives in a tall house."]
    aurocs, intervals = membership_aurocs(
        scorer.model, scorer.tokenizer, members, others, 0.5, reference=scorer.model
    )
    assert set(aurocs) == set(intervals) == set(MEMBERSHIP.names())
    assert all(lo <= aurocs[m] <= hi for m, (lo, hi) in intervals.items())
    assert aurocs["reference"] == 0.5  # the model against itself: every score ties
    loss = score_all(scorer.model, scorer.tokenizer, members + others, ["loss"])["loss"]
    assert aurocs["loss"] == pytest.approx(roc_auc_score([1, 1, 1, 0, 0, 0], loss))


def test_privleak_follows_muses_orientation() -> None:
    from shiftlab.unlearn.muse import privleak

    # MUSE ranks holdout above forget: AUC = 1 - (forget ranked above holdout)
    assert privleak(0.5, 0.5) == 0.0
    assert privleak(1.0, 0.5) == pytest.approx(-100.0)  # kept everything: AUC 0
    assert privleak(0.25, 0.5) == pytest.approx(50.0)  # over-unlearned: AUC 0.75 vs 0.5
    assert privleak(0.8, 0.6) == pytest.approx(100 * (0.2 - 0.4) / 0.4)


def test_whp_logits_mode_is_the_generic_mixture_at_inference_and_trains_nothing() -> None:
    from shiftlab.lm.generate import greedy_generate
    from shiftlab.unlearn.whp import GenericLogitsLM

    model = tiny_causal_lm()
    before = weights(model)
    out = run("whp", model, mode="logits", alpha=2.0, **LM)
    assert isinstance(out.model, GenericLogitsLM) and out.tokenizer is model.tokenizer
    assert same_weights(model, before)
    assert same_weights(out.model.base, weights(model.model))  # the original, frozen
    batch = answers(model, FORGET)
    with torch.no_grad():
        mixed = out.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
        ).logits
        base = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           position_ids=batch["position_ids"]).logits  # fmt: skip
        reinforced = out.model.reinforced(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
        ).logits
    torch.testing.assert_close(mixed, generic_logits(base, reinforced, 2.0))
    texts = greedy_generate(out.model, out.tokenizer, FORGET.prompts[:2], max_new_tokens=4)
    assert len(texts) == 2
    # the cached greedy loop picks what the mixture's full forward picks, token by token
    ids = torch.tensor([out.tokenizer(FORGET.prompts[0])["input_ids"]])
    mask = torch.ones_like(ids)
    cached = out.model.generate(ids, mask, max_new_tokens=6, pad_token_id=2)
    plain = ids
    with torch.no_grad():
        for _ in range(cached.shape[1] - ids.shape[1]):
            logits = out.model(input_ids=plain, attention_mask=torch.ones_like(plain)).logits
            plain = torch.cat([plain, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached, plain)
