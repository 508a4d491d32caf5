"""CLIPood: the margin metric softmax, the Beta moving average, and the recipe end to end."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from recipe_helpers import default_options, run_recipe
from scipy.stats import beta as beta_distribution
from torch import nn

from shiftlab.evaluate import predictor_logits
from shiftlab.finetune.clipood import frozen_class_embeddings, margin_logits
from shiftlab.models.fingerprint import weights_fingerprint
from shiftlab.training import TrainOptions, train
from shiftlab.training.averaging import BetaMovingAverage

CPU = torch.device("cpu")


def test_margin_logits_equal_the_reference_form_and_the_cosine_identity():
    torch.manual_seed(0)
    raw = torch.randn(6, 5)
    f = F.normalize(raw, dim=-1)
    t = F.normalize(torch.randn(4, 5), dim=-1)
    labels = torch.tensor([0, 3, 1, 1, 2, 0])
    lam, scale = 0.3, 17.0
    # thuml/CLIPood engine.py: f = f / |f|; f -= lam * text_features[labels]; y = T * f @ t.T
    g = f.clone()
    g -= lam * t[labels]
    reference = scale * g @ t.T
    ours = margin_logits(raw, t, labels, lam, scale)  # normalises the raw features itself
    torch.testing.assert_close(ours, reference)
    # z_k = T cos(f, t_k) - T lam cos(t_y, t_k): class k's margin grows as t_k moves from t_y.
    identity = scale * f @ t.T - scale * lam * (t[labels] @ t.T)
    torch.testing.assert_close(ours, identity)
    # lam = 0 is the plain scaled cosine (the evaluation logits).
    torch.testing.assert_close(margin_logits(raw, t, labels, 0.0, scale), scale * f @ t.T)


def closed_form(thetas: list[torch.Tensor], b: float) -> tuple[torch.Tensor, np.ndarray]:
    total = len(thetas) - 1
    w = beta_distribution(b, b).pdf((np.arange(total + 1) + 0.5) / (total + 1))
    average = sum(float(wt) * theta for wt, theta in zip(w, thetas, strict=True)) / w.sum()
    return average, w


@pytest.mark.parametrize("b", [0.5, 0.1, 2.0])
def test_bma_equals_the_closed_form_weighted_average(b):
    total = 7
    g = torch.Generator().manual_seed(1)
    thetas = [torch.randn(2, 3, generator=g, dtype=torch.float64).float() for _ in range(total + 1)]
    biases = [torch.randn(2, generator=g) for _ in range(total + 1)]
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(thetas[0])
        layer.bias.copy_(biases[0])
    bma = BetaMovingAverage(layer, b, total)
    # w_0 = pdf(0.5 / (T + 1)) goes to the initial (pretrained) weights.
    assert bma.weight(0) == pytest.approx(beta_distribution(b, b).pdf(0.5 / (total + 1)))
    for step in range(1, total + 1):
        with torch.no_grad():  # a stub optimiser step: the weights are set to known values
            layer.weight.copy_(thetas[step])
            layer.bias.copy_(biases[step])
        bma.update()
    weight, w = closed_form(thetas, b)
    bias, _ = closed_form(biases, b)
    state = bma.state()
    torch.testing.assert_close(state["weight"], weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state["bias"], bias, rtol=1e-5, atol=1e-6)
    assert bma.total_weight == pytest.approx(w.sum())
    if b < 1:  # U-shaped: the first and last steps weigh most
        assert w[0] == pytest.approx(w[-1]) and w[0] == pytest.approx(w.max())
        assert w[0] > 2 * w[total // 2]


def test_bma_with_no_steps_is_the_initial_model_and_skips_non_finite_buffers():
    layer = nn.Linear(3, 2)
    layer.register_buffer("mask", torch.tensor([0.0, -float("inf")]))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    bma = BetaMovingAverage(layer, 0.5, 0)
    state = bma.state()
    assert all(torch.equal(state[k], v) for k, v in before.items())
    bma = BetaMovingAverage(layer, 0.5, 2)
    with torch.no_grad():
        layer.weight.add_(1.0)
    bma.update()
    assert torch.equal(bma.state()["mask"], before["mask"])  # no nan from -inf - -inf


class Killed(RuntimeError):
    """Stands for the process dying after an epoch."""


def bma_run(path: Path | None, kill_at: int | None = None):
    """Three epochs with the BMA updated by the trainer's on_step, checkpointed every epoch."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    cfg = TrainOptions(epochs=3, lr=0.05, batch_size=8, warmup_steps=0, checkpoint_every=1)
    bma = BetaMovingAverage(model, 0.5, 3 * 4)
    trajectory = [{k: v.clone() for k, v in model.state_dict().items()}]
    seen = []

    def on_step(step):
        bma.update()
        seen.append(step)
        trajectory.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    def on_epoch_end(epoch):
        if epoch == kill_at:
            raise Killed(epoch)

    train(
        model,
        lambda b: F.cross_entropy(model(b.inputs), b.labels),
        x.numpy(),
        y.numpy(),
        cfg,
        seed=0,
        device=CPU,
        description="bma",
        on_step=on_step,
        on_epoch_end=on_epoch_end,
        checkpoint=path,
        checkpoint_digest="d",
        stateful=[bma],
    )
    return bma, trajectory, seen


def test_the_trainer_drives_the_bma_after_each_step_and_a_resume_keeps_it(tmp_path: Path):
    bma, trajectory, seen = bma_run(None)
    assert seen == list(range(1, 13))  # 30 examples in batches of 8: 4 steps an epoch
    expected, _ = closed_form([t["weight"] for t in trajectory], 0.5)
    torch.testing.assert_close(bma.state()["weight"], expected, rtol=1e-5, atol=1e-6)
    path = tmp_path / "bma.pt"
    with pytest.raises(Killed):
        bma_run(path, kill_at=1)  # epoch 0 saved, epoch 1 lost
    resumed, _, seen = bma_run(path)
    assert seen == list(range(5, 13)) and resumed.steps == 12
    for key, value in bma.state().items():
        assert torch.equal(resumed.state()[key], value)


def options(**changes):
    return dataclasses.replace(default_options("clipood"), **changes)


def test_recipe_trains_the_input_side_against_frozen_prompts(
    make_context, tiny_benchmark, tiny_backbone
):
    before = weights_fingerprint(tiny_backbone.featurizer)
    cfg = options(epochs=2, lr=1e-3)
    made, ctx = run_recipe(make_context, tiny_benchmark, tiny_backbone, "clipood", cfg)
    assert [p.name for p in made] == ["clipood[bma]", "clipood[last]"]
    assert [p.params["average"] for p in made] == ["bma", "last"]
    bma, last = made
    steps = 2 * 3  # 48 training examples in batches of 16
    assert bma.params["steps"] == steps
    # The prompt side is the pretrained encoder, untouched; both heads are T t_k from it.
    assert weights_fingerprint(tiny_backbone.featurizer) == before
    text = frozen_class_embeddings(ctx)
    scale = tiny_backbone.logit_scale
    for p in made:
        torch.testing.assert_close(p.model.head.weight, scale * text)
        assert torch.equal(p.model.head.bias, torch.zeros(2))
    # The input side was trained, so it no longer encodes prompts as the pretrained one does.
    pretrained = dict(tiny_backbone.featurizer.state_dict())
    trained = last.model.featurizer.state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in pretrained.items())
    with torch.no_grad():
        moved = F.normalize(last.model.featurizer(["a negative review."]), dim=-1)
    assert not torch.allclose(moved, text[:1], atol=1e-4)
    # The average lies between the pretrained and the last weights, and differs from both.
    averaged = bma.model.featurizer.state_dict()
    key = next(k for k, v in trained.items() if v.is_floating_point() and v.dim() == 2)
    assert not torch.equal(averaged[key], trained[key])
    assert not torch.equal(averaged[key], pretrained[key])
    for split in ctx.benchmark.eval_splits():
        a = predictor_logits(bma, split, ctx.cache)
        b = predictor_logits(last, split, ctx.cache)
        k = ctx.benchmark.num_classes
        assert a.shape == b.shape == (len(split), k)
        assert torch.isfinite(a).all() and torch.isfinite(b).all()
        assert not torch.allclose(a, b)


def test_select_names_the_kept_checkpoint_and_temperature_sets_the_scale(
    make_context, tiny_benchmark, tiny_backbone
):
    cfg = options(select="id_val_accuracy", temperature=50.0)
    made, ctx = run_recipe(make_context, tiny_benchmark, tiny_backbone, "clipood", cfg)
    assert [p.name for p in made] == ["clipood[bma]", "clipood[val_selected]"]
    assert made[1].info["selected_by"] == "id_val_accuracy"
    text = frozen_class_embeddings(ctx)
    torch.testing.assert_close(made[0].model.head.weight, 50.0 * text)


def test_the_recipe_trains_in_eval_mode_by_default(
    make_context, tiny_benchmark, tiny_backbone, monkeypatch
):
    import shiftlab.finetune.context as context

    modes = []
    original = context.train

    def spy(model, loss_fn, *args, **kwargs):
        def watched(batch):
            modes.append(model.training)
            return loss_fn(batch)

        return original(model, watched, *args, **kwargs)

    monkeypatch.setattr(context, "train", spy)
    run_recipe(make_context, tiny_benchmark, tiny_backbone, "clipood")
    assert modes and not any(modes)  # engine.py: model.eval(), "Freeze all Norm Layers"
    modes.clear()
    run_recipe(make_context, tiny_benchmark, tiny_backbone, "clipood", options(eval_mode=False))
    assert modes and all(modes)


def test_on_a_two_tower_clip_only_the_image_tower_trains(
    make_context, tiny_image_benchmark, clip_backbone
):
    cfg = options(lr=1e-3)
    made, ctx = run_recipe(make_context, tiny_image_benchmark, clip_backbone, "clipood", cfg)
    pretrained = clip_backbone.featurizer.model
    for p in made:
        model = p.model.featurizer.model
        for name, value in model.state_dict().items():  # the text tower is never stepped
            if not name.startswith("visual."):
                assert torch.equal(value, pretrained.state_dict()[name]), name
        assert any(
            not torch.equal(v, pretrained.state_dict()[k])
            for k, v in model.state_dict().items()
            if k.startswith("visual.")
        )
    text = frozen_class_embeddings(ctx)
    torch.testing.assert_close(made[0].model.head.weight, clip_backbone.logit_scale * text)
