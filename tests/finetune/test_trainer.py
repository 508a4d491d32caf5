import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.errors import TrainingError
from shiftlab.training import TrainOptions, train
from shiftlab.training.trainer import batches_per_epoch, epoch_batches, lr_factor

CPU = torch.device("cpu")


def data(n=40, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] > 0).long()
    return x.numpy(), y.numpy()


def model(d=5, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 8), nn.Dropout(0.2), nn.Linear(8, 2))


def test_lr_factor_is_warmup_then_cosine():
    factors = [lr_factor(s, 2, 6) for s in range(6)]
    expected = [
        0.5,
        1.0,
        1.0,
        0.5 * (1 + math.cos(math.pi / 4)),
        0.5,
        0.5 * (1 + math.cos(3 * math.pi / 4)),
    ]
    assert factors == pytest.approx(expected)


def test_trainer_equals_a_hand_written_loop():
    """AdamW + warmup/cosine + clipping over seeded permutations, exactly."""
    x, y = data()
    cfg = TrainOptions(
        epochs=2, lr=1e-2, weight_decay=0.1, batch_size=16, warmup_steps=2, grad_clip=0.5
    )
    ours = model()
    train(
        ours,
        lambda b: F.cross_entropy(ours(b.inputs), b.labels),
        x,
        y,
        cfg,
        seed=3,
        device=CPU,
        description="t",
    )

    plain = model()
    torch.manual_seed(3)
    rng = np.random.default_rng(3)
    orders = [rng.permutation(len(y)) for _ in range(2)]
    opt = torch.optim.AdamW(plain.parameters(), lr=1e-2, weight_decay=0.1)
    total = sum(math.ceil(len(o) / 16) for o in orders)
    step = 0
    plain.train()
    for order in orders:
        for i in range(0, len(order), 16):
            idx = order[i : i + 16]
            for group in opt.param_groups:
                group["lr"] = 1e-2 * lr_factor(step, 2, total)
            loss = F.cross_entropy(plain(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(plain.parameters(), 0.5)
            opt.step()
            step += 1
    for a, b in zip(ours.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_same_seed_same_weights_other_seed_other_weights():
    x, y = data()
    cfg = TrainOptions(epochs=1, lr=1e-2, batch_size=8, warmup_steps=1)
    runs = []
    for seed in (0, 0, 1):
        m = model()
        train(
            m,
            lambda b, m=m: F.cross_entropy(m(b.inputs), b.labels),
            x,
            y,
            cfg,
            seed=seed,
            device=CPU,
            description="t",
        )
        runs.append(torch.cat([p.flatten() for p in m.parameters()]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_nan_loss_stops_with_a_clear_error():
    x, y = data()
    m = model()
    with pytest.raises(TrainingError, match="loss became nan at step 1; lower the learning rate"):
        train(
            m,
            lambda b: m(b.inputs).sum() * float("nan"),
            x,
            y,
            TrainOptions(epochs=1),
            seed=0,
            device=CPU,
            description="t",
        )


def test_frozen_parameters_stay_frozen_and_eval_mode_holds():
    x, y = data()
    m = model()
    m[0].requires_grad_(False)
    frozen = m[0].weight.clone()
    modes = []

    def loss_fn(batch):
        modes.append(m.training)
        return F.cross_entropy(m(batch.inputs), batch.labels)

    train(
        m,
        loss_fn,
        x,
        y,
        TrainOptions(epochs=1, lr=0.1, batch_size=8, warmup_steps=1),
        seed=0,
        device=CPU,
        description="t",
        eval_mode=True,
    )
    assert torch.equal(m[0].weight, frozen)
    assert modes and not any(modes)


def test_final_batch_of_one_is_folded_into_the_previous():
    batches = epoch_batches(np.arange(17), 8)
    assert [len(b) for b in batches] == [8, 9]
    assert sorted(np.concatenate(batches).tolist()) == list(range(17))
    assert [len(b) for b in epoch_batches(np.arange(18), 8)] == [8, 8, 2]


def test_batches_per_epoch_counts_the_steps_epoch_batches_makes():
    for n in range(0, 40):
        for size in (1, 2, 5, 8, 16):
            assert batches_per_epoch(n, size) == len(epoch_batches(np.arange(n), size)), (n, size)


def test_on_step_is_called_after_every_optimiser_step_with_the_count():
    x, y = data(n=20)
    net = model()
    calls = []

    def on_step(step):
        calls.append((step, float(net[0].weight[0, 0])))

    cfg = TrainOptions(epochs=2, lr=1e-2, batch_size=8, warmup_steps=0)
    loss = lambda b: F.cross_entropy(net(b.inputs), b.labels)  # noqa: E731
    result = train(net, loss, x, y, cfg, seed=0, device=CPU, description="t", on_step=on_step)
    assert [c[0] for c in calls] == [1, 2, 3, 4, 5, 6] and result.steps == 6
    assert len({c[1] for c in calls}) == 6  # each call sees the weights after its step


def test_a_plan_refilled_at_epoch_end_is_what_the_next_epoch_trains_on():
    x, y = data(n=12)
    net = nn.Linear(5, 2)
    plan = [np.arange(12), np.zeros(12, dtype=np.int64)]
    seen = []

    def loss_fn(batch):
        seen.append(batch.index.copy())
        return F.cross_entropy(net(batch.inputs), batch.labels)

    def refill(epoch):
        if epoch == 0:
            plan[1][:] = np.arange(12)[::-1]

    cfg = TrainOptions(epochs=2, batch_size=4, optimizer="sgd", warmup_steps=0)
    train(
        net,
        loss_fn,
        x,
        y,
        cfg,
        seed=0,
        device=CPU,
        description="t",
        plan=plan,
        on_epoch_end=refill,
    )
    assert np.concatenate(seen[3:]).tolist() == list(range(11, -1, -1))
