"""Training checkpoints: a run killed after an epoch resumes to exactly the uninterrupted result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.training import TrainOptions, checkpoints, train

CPU = torch.device("cpu")


class Killed(RuntimeError):
    """Stands for the process dying after an epoch."""


def data(n=48, d=6):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    return x.numpy(), (x[:, 0] - x[:, 2] > 0).long().numpy()


def setup():
    """A model with dropout (so the RNG state matters), a loss drawing from its own generator
    (restored through ``stateful``), and an ID val score for model selection."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
    noise = torch.Generator().manual_seed(5)
    x_val, y_val = data(n=20)

    def loss_fn(batch):
        jitter = 0.01 * torch.randn(batch.inputs.shape, generator=noise)
        return F.cross_entropy(model(batch.inputs + jitter), batch.labels)

    def score():
        with torch.no_grad():
            model.eval()
            return float((model(torch.from_numpy(x_val)).argmax(1).numpy() == y_val).mean())

    return model, loss_fn, score, noise


CFG = dict(epochs=3, lr=1e-2, batch_size=10, warmup_steps=2, select="id_val_accuracy")


def run(path=None, digest="d1", kill_at=None, every=1, keep_states=True):
    model, loss_fn, score, noise = setup()
    x, y = data()

    def on_epoch_end(epoch):
        if epoch == kill_at:
            raise Killed(epoch)

    result = train(
        model,
        loss_fn,
        x,
        y,
        TrainOptions(**CFG, checkpoint_every=every if path else None),
        seed=3,
        device=CPU,
        description="ckpt",
        on_epoch_end=on_epoch_end,
        score=score,
        keep_states=keep_states,
        checkpoint=path,
        checkpoint_digest=digest,
        stateful=[noise],
    )
    return model, result


def same(a: nn.Module, b: nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(p, q) for p, q in pairs)


def test_killed_after_an_epoch_then_resumed_gives_identical_weights(tmp_path: Path):
    straight, expected = run()
    path = tmp_path / "full_ft.pt"
    with pytest.raises(Killed):
        run(path, kill_at=1)  # epoch 1 (0-based) dies before its checkpoint: epoch 0 is saved
    assert path.is_file() and not list(tmp_path.glob("*.tmp"))
    resumed, result = run(path)
    assert result.resumed_epochs == 1
    assert same(straight, resumed)
    assert result.epoch_losses == expected.epoch_losses
    assert result.scores == expected.scores
    assert result.selection == expected.selection
    assert result.steps == expected.steps
    assert sorted(result.states) == [1, 2, 3]
    for epoch, state in expected.states.items():
        assert all(torch.equal(state[k], result.states[epoch][k]) for k in state)


def test_a_finished_checkpoint_restores_without_training(tmp_path: Path):
    path = tmp_path / "ckpt.pt"
    first, expected = run(path)
    again, result = run(path)
    assert result.resumed_epochs == 3
    assert same(first, again)
    assert result.selection == expected.selection


def test_a_checkpoint_of_other_settings_is_ignored(tmp_path: Path):
    path = tmp_path / "ckpt.pt"
    with pytest.raises(Killed):
        run(path, digest="old", kill_at=1)
    straight, _ = run()
    fresh, result = run(path, digest="new")
    assert result.resumed_epochs == 0
    assert same(straight, fresh)


def test_checkpoint_every_two_epochs_resumes_from_the_last_saved(tmp_path: Path):
    straight, _ = run()
    path = tmp_path / "ckpt.pt"
    with pytest.raises(Killed):
        run(path, every=2, kill_at=2)  # epochs 0, 1 done; saved after 1
    resumed, result = run(path, every=2)
    assert result.resumed_epochs == 2
    assert same(straight, resumed)


def test_the_checkpoints_scope_names_one_file_per_train_call(tmp_path: Path):
    with checkpoints(tmp_path / "entry", "digest"):
        run()  # the scope gives the path; checkpoint_every comes from the config
        model, loss_fn, _, _ = setup()
        x, y = data()
        train(
            model,
            loss_fn,
            x,
            y,
            TrainOptions(epochs=1, batch_size=10, warmup_steps=1, checkpoint_every=1),
            seed=0,
            device=CPU,
            description="stage 2: full",
        )
    assert sorted(p.name for p in (tmp_path / "entry").iterdir()) == ["02-stage_2_full.pt"]
    state = torch.load(tmp_path / "entry" / "02-stage_2_full.pt", weights_only=True)
    assert state["digest"] == "digest" and state["epoch"] == 0


def test_resume_restores_a_plan_refilled_by_on_epoch_end(tmp_path: Path):
    """A plan that on_epoch_end rewrites (as BR-DRO resamples) is saved with the checkpoint;
    the generator it draws from is the caller's, so the caller names it in ``stateful``."""

    def go(path, kill_at=None):
        model, loss_fn, _, noise = setup()
        x, y = data()
        rng = np.random.default_rng(9)
        plan = [rng.permutation(48) for _ in range(3)]

        def refill(epoch):
            if epoch + 1 < len(plan):
                plan[epoch + 1][:] = rng.choice(48, size=48)
            if epoch == kill_at:
                raise Killed(epoch)

        cfg = TrainOptions(epochs=3, batch_size=10, warmup_steps=1, checkpoint_every=1)
        train(
            model,
            loss_fn,
            x,
            y,
            cfg,
            seed=0,
            device=CPU,
            description="plan",
            plan=plan,
            on_epoch_end=refill,
            checkpoint=path,
            checkpoint_digest="p",
            stateful=[rng, noise],
        )
        return model

    straight = go(None)
    path = tmp_path / "plan.pt"
    with pytest.raises(Killed):
        go(path, kill_at=1)
    assert same(straight, go(path))


def test_auto_checkpoints_once_enough_training_is_unsaved(monkeypatch):
    """``checkpoint_every: auto`` (the default) writes after an epoch once
    $SHIFTLAB_CHECKPOINT_SECONDS (default 60) of training are unsaved; N writes every N epochs
    and after the last; null never."""
    from shiftlab.training.checkpoints import AUTO_SECONDS, due

    assert AUTO_SECONDS == 60.0
    assert TrainOptions().checkpoint_every == "auto"
    assert not due("auto", 0, 10, 59.0) and due("auto", 0, 10, 61.0)
    monkeypatch.setenv("SHIFTLAB_CHECKPOINT_SECONDS", "0")
    assert due("auto", 0, 10, 0.0)
    assert [due(3, e, 7, 0.0) for e in range(7)] == [False, False, True, False, False, True, True]
    assert not due(None, 9, 10, 1e9)
