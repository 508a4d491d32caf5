import math

import numpy as np
import torch
from torch import nn

from shiftlab.curation import HeadTrainOptions, el2n, el2n_scores
from shiftlab.curation.data_diet import linear_head_trainer, train_linear_head
from shiftlab.data.label_noise import inject_label_noise


def _by_hand(logits: list[list[float]], labels: list[int]) -> list[float]:
    scores = []
    for row, label in zip(logits, labels, strict=True):
        total = sum(math.exp(v) for v in row)
        probs = [math.exp(v) / total for v in row]
        errors = [p - (1.0 if k == label else 0.0) for k, p in enumerate(probs)]
        scores.append(math.sqrt(sum(e * e for e in errors)))
    return scores


def _dot(a: list[float], b: list[float]) -> float:
    return sum(u * v for u, v in zip(a, b, strict=True))


def _fixed_head(weight: list[list[float]], bias: list[float]) -> nn.Linear:
    head = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        head.weight.copy_(torch.tensor(weight))
        head.bias.copy_(torch.tensor(bias))
    return head


def test_el2n_of_logits_is_the_norm_of_softmax_minus_onehot():
    logits = [[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [-3.0, 4.0, 1.0]]
    labels = [0, 2, 0]
    np.testing.assert_allclose(el2n(np.array(logits), np.array(labels)), _by_hand(logits, labels))
    from_torch = el2n(torch.tensor(logits), torch.tensor(labels))
    np.testing.assert_allclose(from_torch, _by_hand(logits, labels), rtol=1e-6)
    # uniform over K = 3, wrong label: sqrt((1 - 1/3)^2 + 2 (1/3)^2) = sqrt(2/3)
    assert el2n(np.zeros((1, 3)), np.array([1]))[0] == math.sqrt(2 / 3)


def test_el2n_scores_average_the_heads_of_each_seed_on_a_fixed_batch():
    features = [[1.0, 0.0], [0.5, -2.0], [0.0, 1.5], [-1.0, -1.0]]
    labels = [0, 1, 2, 2]
    heads = {
        0: ([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], [0.0, 0.1, 0.2]),
        1: ([[0.5, -0.5], [2.0, 0.0], [0.0, -1.0]], [0.3, 0.0, -0.3]),
    }
    expected = np.zeros(4)
    for weight, bias in heads.values():
        logits = [[_dot(row, f) + b for row, b in zip(weight, bias, strict=True)] for f in features]
        expected += np.array(_by_hand(logits, labels)) / len(heads)
    scores = el2n_scores(
        lambda seed: _fixed_head(*heads[seed]),
        np.array(features, dtype=np.float32),
        np.array(labels),
        seeds=[0, 1],
    )
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def _standard_blobs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1.5, size=(3, 8))
    labels = np.repeat(np.arange(3), 100)
    x = means[labels] + rng.normal(size=(300, 8))
    return ((x - x.mean()) / x.std()).astype(np.float32), labels


def test_trained_heads_score_flipped_labels_higher():
    x, y = _standard_blobs(0)
    noisy, flipped = inject_label_noise(y, 3, rate=0.1, kind="symmetric", seed=0)
    trainer = linear_head_trainer(x, noisy, 3, cfg=HeadTrainOptions(epochs=5))
    scores = el2n_scores(trainer, x, noisy, seeds=[0, 1, 2])
    # measured: mean 1.30 on flips vs 0.14 on clean; 29 of the 30 highest are flips (random: 3)
    assert scores[flipped].mean() > 2 * scores[~flipped].mean()
    top = np.argsort(-scores)[: flipped.sum()]  # the 30 highest scores
    assert flipped[top].mean() > 0.7


def test_head_training_is_seeded():
    x, y = _standard_blobs(1)
    cfg = HeadTrainOptions(epochs=2)
    a, b = (train_linear_head(x, y, 3, seed=4, cfg=cfg) for _ in range(2))
    c = train_linear_head(x, y, 3, seed=5, cfg=cfg)
    assert torch.equal(a.weight, b.weight)
    assert not torch.equal(a.weight, c.weight)
