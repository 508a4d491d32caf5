"""Bootstrap intervals of the record metrics: exact on the original sample, nominal coverage,
seeds shared by every model on a split."""

import numpy as np
import pytest
import torch

from shiftlab.data.benchmark import Split
from shiftlab.evaluate import intervals
from shiftlab.evaluate.intervals import (
    bootstrap_seed,
    metric_intervals,
    metric_replicates,
    resample_indices,
    resampled_means,
)
from shiftlab.evaluate.metrics import classification_metrics
from shiftlab.evaluate.records import make_record
from shiftlab.models.classifier import Predictor


def _logits_with_accuracy(rng: np.random.Generator, labels: np.ndarray, p: float, k: int):
    """Logits whose argmax is the label with probability ``p`` (random wrong class otherwise)."""
    n = len(labels)
    correct = rng.random(n) < p
    wrong = (labels + rng.integers(1, k, n)) % k
    predicted = np.where(correct, labels, wrong)
    logits = rng.normal(0.0, 0.3, (n, k))
    logits[np.arange(n), predicted] += rng.uniform(0.5, 3.0, n)
    return logits


@pytest.mark.parametrize("k, groups", [(2, False), (3, True), (5, True)])
def test_the_unresampled_sample_reproduces_every_metric(monkeypatch, k, groups):
    rng = np.random.default_rng(k)
    n = 60
    labels = rng.integers(0, k - 1, n)  # the last class never a label: F1 over present classes
    logits = _logits_with_accuracy(rng, labels, 0.6, k)
    group_ids = rng.integers(0, 4, n) if groups else None
    # one "replicate" that draws every example once: the metrics of the records
    monkeypatch.setattr(intervals, "resample_counts", lambda n, seed, b: iter([np.ones((1, n))]))
    replicates = metric_replicates(logits, labels, group_ids, seed=0, resamples=1)
    expected = classification_metrics(logits, labels, group_ids)
    assert set(replicates) == {"accuracy", "macro_f1", "ece", "nll"} | (
        {"worst_group_accuracy"} if groups else set()
    )
    for name, values in replicates.items():
        assert values[0] == pytest.approx(expected[name], abs=1e-12), name


def test_accuracy_intervals_cover_the_true_accuracy_at_the_nominal_rate():
    # 400 simulated test sets of 400 examples from a model that is right 75% of the time: the
    # 95% interval should hold 0.75 in about 95% of them
    true_accuracy, n, sets = 0.75, 400, 400
    covered = 0
    for i in range(sets):
        rng = np.random.default_rng(10_000 + i)
        labels = rng.integers(0, 3, n)
        logits = _logits_with_accuracy(rng, labels, true_accuracy, 3)
        low, high = metric_intervals(logits, labels, seed=bootstrap_seed(i, "id_test"))["accuracy"]
        covered += low <= true_accuracy <= high
    assert covered / sets == pytest.approx(0.95, abs=0.03)


def test_nll_intervals_cover_the_expected_nll():
    # labels drawn from the model's own probabilities: the expected NLL is the mean entropy of
    # the logit distribution (estimated once on 200,000 draws)
    big = np.random.default_rng(99).normal(0.0, 1.5, (200_000, 3))
    p = torch.softmax(torch.as_tensor(big), -1).numpy()
    expected = float(-(p * np.log(p)).sum(1).mean())
    n, sets, covered = 300, 200, 0
    for i in range(sets):
        rng = np.random.default_rng(i)
        logits = rng.normal(0.0, 1.5, (n, 3))
        probs = torch.softmax(torch.as_tensor(logits), -1).numpy()
        labels = (rng.random((n, 1)) > probs.cumsum(1)).sum(1)
        low, high = metric_intervals(logits, labels, seed=i)["nll"]
        covered += low <= expected <= high
    assert covered / sets == pytest.approx(0.95, abs=0.04)


def test_seeds_depend_on_run_seed_and_split_only_and_chunks_do_not_change_draws(monkeypatch):
    assert bootstrap_seed(0, "tweets") == bootstrap_seed(0, "tweets")
    assert len({bootstrap_seed(0, "tweets"), bootstrap_seed(1, "tweets"),
                bootstrap_seed(0, "nyt")}) == 3  # fmt: skip
    whole = np.concatenate(list(resample_indices(50, 7, 300)))
    assert whole.shape == (300, 50)
    monkeypatch.setattr(intervals, "CHUNK_CELLS", 120)  # 2 replicates per chunk
    chunked = list(resample_indices(50, 7, 300))
    assert len(chunked) == 150
    np.testing.assert_array_equal(np.concatenate(chunked), whole)
    np.testing.assert_array_equal(
        whole, np.random.default_rng(7).integers(0, 50, size=(300, 50))
    )  # what the module docstring promises


def test_two_models_on_a_split_share_resamples():
    rng = np.random.default_rng(0)
    a, b = (rng.random(200) < 0.7) + 0.0, (rng.random(200) < 0.6) + 0.0
    seed = bootstrap_seed(3, "id_test")
    # the replicates of a sum are the sums of the replicates: the same examples were drawn
    np.testing.assert_allclose(
        resampled_means(a, seed) - resampled_means(b, seed),
        resampled_means(a - b, seed),
        atol=1e-12,
    )


def test_make_record_adds_an_interval_to_every_metric():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 120)
    groups = rng.integers(0, 4, 120)
    split = Split("tweets", "ood", ["x"] * 120, labels, groups)
    logits = torch.as_tensor(_logits_with_accuracy(rng, labels, 0.7, 2), dtype=torch.float32)
    predictor = Predictor("m", "full_ft", None)  # type: ignore[arg-type]
    record = make_record(predictor, split, logits, seed=0, group_names=["a", "b", "c", "d"])
    again = make_record(predictor, split, logits, seed=0, group_names=["a", "b", "c", "d"])
    assert record["ci"] == again["ci"]  # reproducible
    assert set(record["ci"]) == {"accuracy", "macro_f1", "ece", "nll", "worst_group_accuracy"}
    for name, (low, high) in record["ci"].items():
        assert low <= record[name] <= high, name
    assert (
        record["ci"]["accuracy"]
        == metric_intervals(logits, labels, groups, seed=bootstrap_seed(0, "tweets"))["accuracy"]
    )
    other = make_record(predictor, split, logits, seed=1, group_names=["a", "b", "c", "d"])
    assert other["ci"]["nll"] != record["ci"]["nll"]  # the run seed matters


def test_an_empty_split_has_no_intervals():
    assert metric_intervals(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), seed=0) == {}
