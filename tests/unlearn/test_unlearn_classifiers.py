"""Classifier unlearning: each method returns a finite copy and leaves the input alone; SCRUB's
and SSD's formulas on hand-made numbers; gradient ascent raises the forget loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from unlearn_helpers import DEVICE, feature_data, tiny_classifier

from shiftlab.errors import ConfigError, DataError
from shiftlab.registry import UNLEARN
from shiftlab.training import Batch
from shiftlab.unlearn import Data, unlearn
from shiftlab.unlearn.scrub import (
    SCRUBOptions,
    distill_kl,
    scrub_loss,
    scrub_phases,
    step_decay_lr,
)
from shiftlab.unlearn.ssd import dampen_, importances


def run(name: str, model: torch.nn.Module, forget: Data, retain: Data, **options):
    return unlearn(name, model, forget, retain, options, seed=0)


def forget_loss(model: torch.nn.Module, data: Data) -> float:
    with torch.no_grad():
        logits = model(torch.from_numpy(data.inputs))
    return float(F.cross_entropy(logits, torch.as_tensor(data.labels)))


def test_gradient_ascent_raises_the_forget_loss() -> None:
    model = tiny_classifier()
    forget, retain = feature_data(16, seed=1), feature_data(8, seed=2)
    ascent = {"epochs": 2, "batch_size": 4, "lr": 0.01}
    out = run("gradient_ascent", model, forget, retain, classifier=ascent)
    assert forget_loss(out, forget) > forget_loss(model, forget) + 1e-3


def test_methods_refuse_a_language_model_and_empty_sets() -> None:
    model = tiny_classifier()
    lm_data = Data(prompts=["Q:"], answers=[" a"])
    with pytest.raises(DataError, match="forget set holds a language model's data"):
        run("scrub", model, lm_data, feature_data(4, seed=2))
    with pytest.raises(DataError, match="non-empty retain set"):
        run("neggrad_plus", model, feature_data(4, 1), Data(inputs=np.zeros((0, 8)), labels=[]))

    class FakeScorer(torch.nn.Module):
        model, tokenizer = None, None

    with pytest.raises(ConfigError, match="needs a classifier"):
        run("ssd", FakeScorer(), feature_data(4, 1), feature_data(4, 2))


def test_distill_kl_matches_a_hand_computation() -> None:
    student = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    # T = 1: row 0: p_t = (3/4, 1/4), p_s = (1/2, 1/2); row 1: p_t = (1/2, 1/2).
    q1 = math.exp(2) / (math.exp(2) + 1)
    row0 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    row1 = 0.5 * math.log(0.5 / q1) + 0.5 * math.log(0.5 / (1 - q1))
    assert float(distill_kl(student, teacher, 1.0)) == pytest.approx((row0 + row1) / 2)
    # T = 2 softens both sides (logits halved) and scales by T^2 = 4.
    half = distill_kl(student / 2, teacher / 2, 1.0)
    assert float(distill_kl(student, teacher, 2.0)) == pytest.approx(4 * float(half))


def test_scrub_losses_phases_and_lr_decay() -> None:
    options = SCRUBOptions()
    student, teacher = torch.randn(5, 3), torch.randn(5, 3)
    labels = torch.tensor([0, 1, 2, 0, 1])
    kl = distill_kl(student, teacher, 4.0)
    assert torch.allclose(scrub_loss("max", student, teacher, labels, options), -kl)
    expected = 0.99 * F.cross_entropy(student, labels) + 0.001 * kl
    assert torch.allclose(scrub_loss("min", student, teacher, labels, options), expected)
    # The reference's defaults: max-passes in epochs 1 and 2 of 3, a min-pass every epoch.
    assert scrub_phases(3, 2) == [(1, "max"), (1, "min"), (2, "max"), (2, "min"), (3, "min")]
    assert [step_decay_lr(5e-4, e, [3, 5, 9], 0.1) for e in (1, 3, 4, 6, 10)] == pytest.approx(
        [5e-4, 5e-4, 5e-5, 5e-6, 5e-7]
    )


def test_neggrad_plus_loss_is_the_weighted_difference() -> None:
    entry = UNLEARN["neggrad_plus"]
    method = entry.obj(entry.options(alpha=0.9), name="neggrad_plus", kind="encoder", seed=0,
                       device=DEVICE)  # fmt: skip
    method.student = tiny_classifier()
    r, f = torch.randn(4, 8), torch.randn(2, 8)
    yr, yf = torch.tensor([0, 1, 2, 1]), torch.tensor([2, 0])
    loss = method.loss(Batch(f, yf, np.arange(2)), Batch(r, yr, np.arange(4)))
    ce = lambda x, y: F.cross_entropy(method.student(x), y)  # noqa: E731
    assert torch.allclose(loss, 0.9 * ce(r, yr) - 0.1 * ce(f, yf))
    assert method.walk == "retain"  # one pass over the retain set, the forget set cycled


def test_ssd_dampens_only_the_selected_parameters() -> None:
    params = {"w": torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])}
    full = {"w": torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0])}
    forget = {"w": torch.tensor([5.0, 20.0, 0.5, 3.0, 40.0])}
    counts = dampen_(params, full, forget, selection_weighting=10.0, dampening_constant=1.0)
    # 5 > 10 * 1? no. 20 > 10: scale 1 / 20. 0.5: no. 3 > 0: scale 0 / 3. 40 > 10: 1 / 40.
    assert torch.allclose(params["w"], torch.tensor([1.0, 0.1, 3.0, 0.0, 0.125]))
    assert counts == {"w": 3}
    # The factor never exceeds 1, however large lambda is.
    params = {"w": torch.tensor([2.0])}
    dampen_(params, {"w": torch.tensor([1.0])}, {"w": torch.tensor([20.0])}, 10.0, 100.0)
    assert float(params["w"]) == 2.0


def test_ssd_importance_is_the_mean_squared_batch_gradient() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    data = feature_data(6, seed=3, dim=4)
    got = importances(model, [data], batch_size=3, device=DEVICE)
    expected = torch.zeros_like(model.weight)
    for index in (np.arange(3), np.arange(3, 6)):
        model.zero_grad()
        logits = model(torch.from_numpy(data.inputs[index]))
        F.cross_entropy(logits, torch.as_tensor(data.labels[index])).backward()
        expected += model.weight.grad**2 / 2
    assert torch.allclose(got["weight"], expected)
    assert set(got) == {"weight", "bias"}
