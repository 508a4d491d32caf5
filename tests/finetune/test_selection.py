import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.training import TrainOptions, train


def test_selection_keeps_the_best_scoring_epoch():
    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = nn.Linear(3, 2)
    scores = iter([0.5, 0.9, 0.7, 0.6])
    snapshots = []

    def score():
        snapshots.append(model.weight.detach().clone())
        return next(scores)

    cfg = TrainOptions(epochs=4, lr=0.1, batch_size=16, warmup_steps=0, select="id_val_accuracy")
    result = train(
        model,
        lambda b: F.cross_entropy(model(b.inputs), b.labels),
        x,
        y,
        cfg,
        seed=0,
        device=torch.device("cpu"),
        description="t",
        score=score,
    )
    assert result.selected_epoch == 2 and result.selection["selected_by"] == "id_val_accuracy"
    assert torch.equal(model.weight, snapshots[1])  # the weights of epoch 2 are restored
    assert result.scores == [0.5, 0.9, 0.7, 0.6]


def test_last_keeps_the_final_weights():
    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = nn.Linear(3, 2)
    result = train(
        model,
        lambda b: F.cross_entropy(model(b.inputs), b.labels),
        x,
        y,
        TrainOptions(epochs=2, batch_size=16, warmup_steps=0),
        seed=0,
        device=torch.device("cpu"),
        description="t",
    )
    assert result.selection == {"selected_by": "last", "selected_epoch": 2}
