"""Co-teaching: the reference's two updates on a fixed batch, its forget-rate schedule, the
noise-rate estimate, and a run that keeps mostly clean labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from shiftlab.data.label_noise import inject_label_noise
from shiftlab.finetune.coteaching import (
    CoteachingOptions,
    coteaching_losses,
    estimate_noise_rate,
    forget_schedule,
)
from shiftlab.registry import FINETUNE


def test_each_network_is_updated_on_its_peers_small_loss_examples_divided_by_the_count():
    torch.manual_seed(0)
    logits_1 = torch.randn(10, 3, requires_grad=True)
    logits_2 = torch.randn(10, 3, requires_grad=True)
    labels = torch.randint(0, 3, (10,))
    loss_1, loss_2, kept_1, kept_2 = coteaching_losses(logits_1, logits_2, labels, 0.3)
    # By hand, as loss_coteaching: rank each network's own losses, keep int(0.7 * 10) = 7.
    own_1 = [F.cross_entropy(logits_1[i : i + 1], labels[i : i + 1]).item() for i in range(10)]
    own_2 = [F.cross_entropy(logits_2[i : i + 1], labels[i : i + 1]).item() for i in range(10)]
    small_1 = sorted(range(10), key=lambda i: own_1[i])[:7]
    small_2 = sorted(range(10), key=lambda i: own_2[i])[:7]
    assert sorted(kept_1.tolist()) == sorted(small_1)
    assert sorted(kept_2.tolist()) == sorted(small_2)
    # Net 1 learns from net 2's picks and the other way round, each the mean over 7, / 7.
    assert loss_1.item() == pytest.approx(np.mean([own_1[i] for i in small_2]) / 7, rel=1e-6)
    assert loss_2.item() == pytest.approx(np.mean([own_2[i] for i in small_1]) / 7, rel=1e-6)
    # Each loss reaches only its own network.
    (grad_2,) = torch.autograd.grad(loss_1, logits_2, allow_unused=True, materialize_grads=True)
    assert grad_2.abs().sum() == 0


def test_the_forget_rate_ramps_linearly_to_its_value_then_stays():
    rates = forget_schedule(0.4, epochs=15, num_gradual=5, exponent=1.0)
    assert rates[:5].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert rates[5:].tolist() == [0.4] * 10
    # forget_rate ** c at the end of the ramp, forget_rate after it (as main.py's rate_schedule)
    curved = forget_schedule(0.5, epochs=4, num_gradual=3, exponent=2.0)
    assert curved.tolist() == pytest.approx([0.0, 0.125, 0.25, 0.5])
    assert forget_schedule(0.2, epochs=2, num_gradual=10, exponent=1.0).tolist() == pytest.approx(
        [0.0, 0.2 / 9]
    )


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_the_noise_rate_estimate_is_within_a_few_points_of_a_known_flip_rate(rate):
    """Real data (scikit-learn's digits), a seeded symmetric flip, 5-fold logistic
    regression probabilities: confident learning's estimate is close to the true rate."""
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target
    noisy, _ = inject_label_noise(y, 10, rate=rate, kind="symmetric", seed=0)
    actual = float((noisy != y).mean())
    probs = cross_val_predict(
        LogisticRegression(max_iter=500), x, noisy, cv=5, method="predict_proba"
    )
    # Measured: 0.223 for 0.200, 0.460 for 0.400 (the confident joint overestimates a little).
    assert abs(estimate_noise_rate(noisy, probs) - actual) < 0.07


@pytest.mark.slow
def test_coteaching_keeps_mostly_clean_labels_and_writes_what_it_kept(
    make_context, sentences_dir, minilm_path
):
    """Real reviews (MiniLM features), 30% of the training labels flipped: what each network
    keeps in the last epoch is cleaner than the training set."""
    from helpers import sentences_data_config
    from shiftlab.config.sections import BackboneConfig
    from shiftlab.data import load_benchmark
    from shiftlab.models import load_backbone

    bench = load_benchmark(sentences_data_config(sentences_dir, max_per_domain=400))
    train = bench.train
    noisy, _ = inject_label_noise(train.labels, 2, rate=0.3, kind="symmetric", seed=0)
    flipped = dataclasses.replace(train, labels=noisy, true_labels=train.labels)
    benchmark = dataclasses.replace(bench, train=flipped)
    backbone = load_backbone(BackboneConfig(max_length=64), torch.device("cpu"))
    options = CoteachingOptions(
        epochs=30, batch_size=32, lr=1e-2, forget_rate=0.3, num_gradual=5, head_only=True
    )
    ctx = make_context(benchmark, backbone, name="coteaching")
    net_1, net_2 = FINETUNE["coteaching"].obj(ctx, options)
    assert net_2.name == "coteaching[net=2]"
    clean = net_1.info["label_precision"]
    assert clean == pytest.approx(float((noisy == train.labels).mean()))
    assert all(p > clean + 0.05 for p in net_1.info["kept_precision"]), (
        clean,
        net_1.info["kept_precision"],
    )
    kept = net_1.examples["kept_by_net_1"]
    assert kept.shape == (len(train),)
    assert kept.mean() == pytest.approx(net_1.info["kept_fraction"][0])
