"""Precision, gradient accumulation and gradient checkpointing in the shared trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.errors import ConfigError
from shiftlab.models import Classifier
from shiftlab.precision import (
    autocast,
    current_precision,
    resolve_precision,
    set_precision,
    using_precision,
)
from shiftlab.training import TrainOptions, train
from shiftlab.training.trainer import micro_batches

CPU = torch.device("cpu")


def data(n=40, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x.numpy(), y.numpy()


def mlp(d=6, seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 2))


def fit(model, x, y, cfg, **options):
    return train(
        model,
        lambda b: F.cross_entropy(model(b.inputs), b.labels),
        x,
        y,
        cfg,
        seed=1,
        device=CPU,
        description="t",
        **options,
    )


def test_auto_precision_is_fp32_on_a_cpu():
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert current_precision() == "fp32"


def test_fp16_on_a_cpu_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"^fp16 needs a CUDA GPU; use bf16 or fp32 on a CPU$"):
        resolve_precision("fp16", "cpu")
    x, y = data()
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        fit(mlp(), x, y, TrainOptions(epochs=1, batch_size=8), precision="fp16")


def test_bf16_training_runs_on_a_cpu_with_a_loss_close_to_fp32():
    x, y = data()
    cfg = TrainOptions(epochs=1, batch_size=40, lr=1e-2, warmup_steps=1)  # one fixed batch
    fp32 = fit(mlp(), x, y, cfg, precision="fp32")
    model = mlp()
    with autocast("bf16", CPU):  # the forward really runs in bf16
        assert model(torch.from_numpy(x)).dtype == torch.bfloat16
    bf16 = fit(model, x, y, cfg, precision="bf16")
    assert bf16.epoch_losses[0] == pytest.approx(fp32.epoch_losses[0], rel=2e-2)
    assert bf16.epoch_losses[0] != fp32.epoch_losses[0]  # it did run in another precision
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32


def test_the_current_precision_is_what_train_uses_by_default():
    x, y = data()
    cfg = TrainOptions(epochs=1, batch_size=40, lr=1e-2, warmup_steps=1)
    explicit = fit(mlp(), x, y, cfg, precision="bf16")
    with using_precision("bf16"):
        ambient = fit(mlp(), x, y, cfg)
    assert current_precision() == "fp32"
    assert ambient.epoch_losses == explicit.epoch_losses
    previous = set_precision("fp32")
    assert previous == "fp32"


def test_micro_batches_split_a_batch_into_near_equal_parts():
    parts = micro_batches(np.arange(10), 3)
    assert [len(p) for p in parts] == [4, 3, 3]
    assert np.array_equal(np.concatenate(parts), np.arange(10))
    assert [len(p) for p in micro_batches(np.arange(2), 3)] == [1, 1]  # no empty parts


@pytest.mark.parametrize("batch_size,k", [(16, 4), (15, 4), (12, 3)])
def test_accumulation_gives_the_update_of_the_whole_batch(batch_size, k):
    """k micro-batches of a batch (unequal when batch_size % k != 0; the last batch of the
    epoch is short) update the weights as one step on the whole batch does."""
    x, y = data(n=40)
    base = dict(epochs=2, lr=1e-2, batch_size=batch_size, warmup_steps=2, grad_clip=0.5)
    whole, parts = mlp(), mlp()
    one = fit(whole, x, y, TrainOptions(**base))
    many = fit(parts, x, y, TrainOptions(**base, accumulate_steps=k))
    assert many.steps == one.steps  # the schedule counts optimiser steps
    for a, b in zip(whole.parameters(), parts.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=2e-6)
    assert many.epoch_losses == pytest.approx(one.epoch_losses, rel=1e-6)


def test_k_steps_of_batch_b_are_one_step_of_batch_k_times_b():
    """The issue's statement: one step of batch k*b with accumulate k equals one plain step on
    the k*b examples, computed by hand."""
    x, y = data(n=32)
    k, b = 4, 8
    model = mlp()
    reference = mlp()
    fit(
        model,
        x,
        y,
        TrainOptions(
            epochs=1,
            batch_size=k * b,
            lr=1e-2,
            warmup_steps=1,
            accumulate_steps=k,
            grad_clip=None,
            weight_decay=0.0,
        ),
    )
    order = np.random.default_rng(1).permutation(32)
    opt = torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=0.0)
    loss = F.cross_entropy(reference(torch.from_numpy(x[order])), torch.from_numpy(y[order]))
    loss.backward()
    opt.step()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=2e-6)


def test_accumulation_is_refused_for_a_loss_that_couples_the_batch():
    x, y = data()
    with pytest.raises(ConfigError, match="accumulate_steps: 2 would split each batch"):
        fit(mlp(), x, y, TrainOptions(epochs=1, batch_size=8, accumulate_steps=2), splittable=False)


def test_accumulate_steps_is_checked():
    with pytest.raises(ConfigError, match="accumulate_steps must be between 1 and batch_size"):
        TrainOptions(batch_size=4, accumulate_steps=5)
    with pytest.raises(ConfigError, match=r"checkpoint_every must be >= 1, got 0"):
        TrainOptions(checkpoint_every=0)


def test_gradient_checkpointing_needs_a_hugging_face_model():
    x, y = data()
    with pytest.raises(ConfigError, match="gradient_checkpointing needs a Hugging Face encoder"):
        fit(mlp(), x, y, TrainOptions(epochs=1, batch_size=8, gradient_checkpointing=True))


def _checkpointing(hf: nn.Module) -> bool:
    flag = getattr(hf, "is_activation_checkpointing", None)  # transformers >= 5
    return bool(hf.is_gradient_checkpointing if flag is None else flag)


def test_gradient_checkpointing_trains_a_text_encoder_to_the_same_weights(tiny_backbone):
    import copy

    texts = [f"review number {i} was {'good' if i % 2 else 'bad'}" for i in range(24)]
    labels = np.arange(24) % 2
    models = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = Classifier(copy.deepcopy(tiny_backbone.featurizer), nn.Linear(32, 2))
        seen = []

        def loss_fn(batch, model=model, seen=seen):
            seen.append(_checkpointing(model.featurizer.model))
            return F.cross_entropy(model(batch.inputs), batch.labels)

        cfg = TrainOptions(
            epochs=1, batch_size=8, lr=1e-3, warmup_steps=1, gradient_checkpointing=checkpointing
        )
        train(model, loss_fn, texts, labels, cfg, seed=1, device=CPU, description="t")
        assert seen == [checkpointing] * 3  # on while training ...
        assert not _checkpointing(model.featurizer.model)  # ... and off after
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_the_fp16_loss_scaler_path_gives_the_unscaled_update(monkeypatch):
    """The GradScaler steps (scale, unscale before clipping, step, update) without a GPU: a
    power-of-two scale is exact, so the weights equal those trained without one."""
    from shiftlab.training import trainer

    x, y = data()
    cfg = TrainOptions(epochs=2, batch_size=8, lr=1e-2, warmup_steps=1, grad_clip=0.1)
    plain = mlp()
    fit(plain, x, y, cfg)
    scalers = []

    def cpu_scaler(precision, device):
        scalers.append(torch.amp.GradScaler("cpu", init_scale=2.0**10))
        return scalers[-1]

    monkeypatch.setattr(trainer, "grad_scaler", cpu_scaler)
    scaled = mlp()
    fit(scaled, x, y, TrainOptions(**{**vars(cfg), "accumulate_steps": 2}))
    assert scalers and scalers[0].get_scale() == 2.0**10  # no overflow: the scale was kept
    for a, b in zip(plain.parameters(), scaled.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=2e-6)


def test_length_grouped_batches_visit_every_example_once_in_batches_of_like_length():
    from shiftlab.training.trainer import epoch_batches, input_lengths, length_grouped

    texts = ["x" * int(n) for n in np.random.default_rng(0).integers(1, 200, size=203)]
    lengths = input_lengths(texts)
    order = np.random.default_rng(1).permutation(len(texts))
    plain = epoch_batches(order, 16)
    grouped = length_grouped(plain, lengths, seed=0, epoch=0, mega=4)
    assert sorted(np.concatenate(grouped).tolist()) == list(range(len(texts)))
    assert sorted(len(b) for b in grouped) == sorted(len(b) for b in plain)

    def padding(batches):  # padded characters over real ones, as a tokenizer pads
        return sum(lengths[b].max() * len(b) for b in batches) / lengths.sum()

    assert padding(grouped) < 0.8 * padding(plain)
    # Within each run of 4 batches, examples are sorted by length; the batch order is shuffled
    # by a generator of its own, the same for the same seed and epoch.
    assert [b.tolist() for b in grouped] == [
        b.tolist() for b in length_grouped(plain, lengths, seed=0, epoch=0, mega=4)
    ]
    assert input_lengths(np.zeros((3, 4))) is None  # not texts: batches stay random
    assert length_grouped(plain, None, seed=0, epoch=0) is plain


def test_options_added_later_leave_digests_of_earlier_runs_unchanged():
    from shiftlab.config import EntrySpec
    from shiftlab.finetune.full_ft import FullFTOptions
    from shiftlab.store import recipe_digest

    def digest(**options):
        return recipe_digest(EntrySpec("full_ft", "full_ft", FullFTOptions(**options)), [])

    base = digest()
    # The digest a run directory of shiftlab 0.1.0 (commit 0bab403) holds for a default full_ft
    # entry: an older run resumes (its entries are skipped) only while this stays the same.
    assert base == "888af73c6ce77941"
    assert digest(checkpoint_every=2) == base and digest(gradient_checkpointing=True) == base
    assert digest(group_by_length=False) == base and digest(accumulate_steps=1) == base
    assert digest(group_by_length=True) != base and digest(accumulate_steps=2) != base
