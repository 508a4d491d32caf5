"""Diversity-aware selection: k-center greedy (coverage) and D2 pruning (message passing)."""

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from shiftlab.curation.context import CurationContext
from shiftlab.curation.d2 import balanced_budgets, d2_select, graph_density
from shiftlab.curation.selection import covering_radius, kcenter_greedy
from shiftlab.data.benchmark import Split
from shiftlab.errors import ConfigError, DataError
from shiftlab.registry import CURATE, CURATE_ACTIONS
from shiftlab.report.curation import pruning_curves
from shiftlab.report.summary import model_rows
from shiftlab.typed import NoOptions, build


@pytest.fixture(scope="module")
def digits():
    """Real data shipped with scikit-learn: 1,797 8x8 handwritten digits, pixels as features."""
    data = load_digits()
    return data.data.astype(np.float64), data.target.astype(np.int64)


def digits_split(features, labels):
    n = len(labels)
    return Split("train", "train", [f"digit {i}" for i in range(n)], labels, ids=np.arange(n))


def test_kcenter_covers_within_twice_the_optimal_radius():
    points = np.random.default_rng(7).normal(size=(25, 2))
    dist = np.linalg.norm(points[:, None] - points[None], axis=2)
    for budget in range(2, 6):
        subsets = np.array(list(itertools.combinations(range(25), budget)))
        optimum = dist[:, subsets].min(axis=2).max(axis=0).min()  # brute force, every subset
        for seed in range(3):
            chosen = kcenter_greedy(points, budget, seed)
            radius = covering_radius(points, chosen)
            assert radius == pytest.approx(dist[:, chosen].min(axis=1).max())
            assert optimum <= radius <= 2 * optimum + 1e-12, (budget, seed)


def test_kcenter_covers_real_digits_better_than_random_subsets(digits):
    features, _ = digits
    budget = round(0.1 * len(features))
    radius = covering_radius(features, kcenter_greedy(features, budget, 0))
    rng = np.random.default_rng(0)
    random_radii = [
        covering_radius(features, rng.choice(len(features), budget, replace=False))
        for _ in range(20)
    ]
    assert radius < np.mean(random_radii)
    assert radius < min(random_radii)  # not only on average


def test_kcenter_picks_distinct_points_the_budget_exactly_and_reproducibly():
    points = np.random.default_rng(1).normal(size=(60, 3))
    points[10] = points[11] = points[12]  # copies
    chosen = kcenter_greedy(points, 60, 5)
    assert sorted(chosen) == list(range(60))  # every point once, copies included
    first = kcenter_greedy(points, 20, 5)
    assert len(first) == len(set(first)) == 20
    np.testing.assert_array_equal(first, kcenter_greedy(points, 20, 5))
    np.testing.assert_array_equal(first, chosen[:20])  # the greedy order is budget-free
    starts = {int(kcenter_greedy(points, 1, seed)[0]) for seed in range(10)}
    assert len(starts) > 1  # the first centre is drawn from the seed
    # each next centre is the farthest from those chosen before it
    for k in range(1, 20):
        gaps = np.linalg.norm(points[:, None] - points[first[:k]][None], axis=2).min(axis=1)
        assert gaps[first[k]] == pytest.approx(gaps.max())
    # centres chosen before: none of them again, the next is the farthest from them
    after = kcenter_greedy(points, 3, 0, already=[0, 1])
    assert not {0, 1} & set(after.tolist())
    gaps = np.linalg.norm(points[:, None] - points[None, [0, 1]], axis=2).min(axis=1)
    assert after[0] == np.argmax(gaps)
    assert len(kcenter_greedy(points, 0, 0)) == 0


def test_d2_forward_and_reverse_message_passing_by_hand():
    # 6 points on a line, k = 1: nearest 0->1, 1->0, 2->3, 3->2, 4->3, 5->4. The graph is made
    # symmetric as the reference's: N(3) = {2, 4}, N(4) = {3, 5}, N(5) = {4}.
    x = np.array([0.0, 0.5, 3.0, 3.2, 7.0, 12.0])[:, None]
    s = np.array([2.0, 1.8, 1.0, 0.9, 0.6, 0.3])
    e = math.exp
    density = [
        2.0 + e(-0.5) * 1.8,
        1.8 + e(-0.5) * 2.0,
        1.0 + e(-0.2) * 0.9,
        0.9 + e(-0.2) * 1.0 + e(-3.8) * 0.6,
        0.6 + e(-3.8) * 0.9 + e(-5.0) * 0.3,
        0.3 + e(-5.0) * 0.6,
    ]
    np.testing.assert_allclose(graph_density(x, s, neighbors=1), density, rtol=1e-12)
    # reverse passing, gamma 0.1: pick the densest, lower its neighbours by exp(-0.1 d) x its own
    d = list(density)  # 3.092, 3.013, 1.737, 1.732, 0.622, 0.304
    order = [0]  # 0 is the densest; N(0) = {1}
    d[1] -= e(-0.1 * 0.5) * d[0]  # 3.013 - 2.941 = 0.072
    assert d[2] > max(d[1], d[3], d[4], d[5])
    order.append(2)  # N(2) = {3}
    d[3] -= e(-0.1 * 0.2) * d[2]  # 1.732 - 1.702 = 0.030
    assert d[4] > max(d[1], d[3], d[5])
    order.append(4)  # N(4) = {3, 5}
    d[3] -= e(-0.1 * 3.8) * d[4]  # 0.030 - 0.425 = -0.396
    d[5] -= e(-0.1 * 5.0) * d[4]  # 0.304 - 0.377 = -0.073
    assert d[1] > d[5] > d[3]
    order += [1, 5, 3]  # 1's only neighbour is picked; then 5, then 3
    picked = d2_select(x, s, 6, neighbors=1, gamma=0.1, mis_ratio=0.0)
    np.testing.assert_array_equal(picked, order)
    # three kept: one of each close pair and the far point, where the three highest scores
    # would be 0, 1 and 2 (two of them a pair)
    np.testing.assert_array_equal(
        d2_select(x, s, 3, neighbors=1, gamma=0.1, mis_ratio=0.0), [0, 2, 4]
    )


def test_d2_drops_the_hardest_first_and_balances_classes():
    x = np.array([0.0, 0.5, 3.0, 3.2, 7.0, 12.0])[:, None]
    s = np.array([2.0, 1.8, 1.0, 0.9, 0.6, 0.3])
    # int(0.5 * 6) = 3 hardest (0, 1, 2) dropped first; two kept of the rest
    assert set(d2_select(x, s, 2, neighbors=1, mis_ratio=0.5).tolist()) <= {3, 4, 5}
    # with five kept only one can go: the hardest
    assert sorted(d2_select(x, s, 5, neighbors=1, mis_ratio=0.5).tolist()) == [1, 2, 3, 4, 5]
    # equal shares per class, at most a class's size, the rest to the larger classes
    np.testing.assert_array_equal(balanced_budgets(np.array([2, 10, 20]), 15), [2, 6, 7])
    np.testing.assert_array_equal(balanced_budgets(np.array([20, 2, 10]), 32), [20, 2, 10])
    rng = np.random.default_rng(0)
    points = rng.normal(size=(32, 4))
    labels = np.repeat([0, 1, 2], [2, 10, 20])
    chosen = d2_select(points, rng.random(32), 15, labels=labels, mis_ratio=0.0)
    assert len(set(chosen.tolist())) == 15
    np.testing.assert_array_equal(np.bincount(labels[chosen]), [2, 6, 7])


def scored(features, labels, seed=0):
    """The scores the actions need, computed by the registered scores on ``features``."""
    train = digits_split(features, labels)
    benchmark = SimpleNamespace(train=train, num_classes=int(labels.max()) + 1)
    ctx = CurationContext(
        benchmark,
        lambda split: torch.as_tensor(features, dtype=torch.float32),
        lambda: None,
        seed,
        torch.device("cpu"),
    )
    el2n_options = build(CURATE["el2n"].options, {"runs": 2, "epochs": 3}, "curation.el2n")
    return train, {
        "nearest_neighbor": CURATE["nearest_neighbor"].obj(ctx, NoOptions()),
        "el2n": CURATE["el2n"].obj(ctx, el2n_options),
    }


def test_the_actions_through_the_registry(digits):
    features, labels = digits[0][:400], digits[1][:400]
    train, scores = scored(features, labels)
    near = scores["nearest_neighbor"]
    assert near.features.shape == features.shape and (near.values > 0).all()
    dist = np.linalg.norm(features[:, None] - features[None], axis=2) + np.diag([np.inf] * 400)
    np.testing.assert_allclose(near.values, dist.min(axis=1), rtol=1e-5)

    entry = CURATE_ACTIONS["kcenter"]
    options = build(entry.options, {"keep": [0.5, 0.2]}, "curate.kcenter")
    assert options.needs() == ["nearest_neighbor"]
    variants = list(entry.obj(scores, train, options, 3))
    assert [v.label for v in variants] == ["kcenter_0.5", "kcenter_0.2"]
    assert [len(v.train) for v in variants] == [200, 80]
    assert set(variants[1].train.ids) <= set(variants[0].train.ids)  # nested
    assert variants[0].info() == {
        "action": "kcenter",
        "params": {"keep": 0.5, "per_class": False},
        "n_train": 200,
        "n_removed": 200,
    }
    again = list(entry.obj(scores, train, options, 3))
    assert [list(v.train.ids) for v in again] == [list(v.train.ids) for v in variants]
    per_class = build(entry.options, {"keep": [0.1], "per_class": True}, "curate.kcenter")
    (balanced,) = entry.obj(scores, train, per_class, 3)
    sizes = np.bincount(labels)
    expected = [max(1, round(0.1 * n)) for n in sizes]
    np.testing.assert_array_equal(np.bincount(balanced.train.labels), expected)

    entry = CURATE_ACTIONS["d2"]
    options = build(entry.options, {"keep": [0.3]}, "curate.d2")
    assert options.needs() == ["nearest_neighbor", "el2n"]
    (variant,) = entry.obj(scores, train, options, 0)
    assert variant.label == "d2_0.3" and variant.action == "d2" and len(variant.train) == 120
    assert variant.info()["params"] == {
        "keep": 0.3,
        "score": "el2n",
        "neighbors": 5,
        "gamma": 0.1,
        "mis_ratio": 0.4,
        "per_class": True,
    }
    chosen = d2_select(
        features, scores["el2n"].values, 120, labels=labels, neighbors=5, gamma=0.1, mis_ratio=0.4
    )
    assert sorted(variant.train.ids) == sorted(chosen.tolist())
    # equal shares of the budget over the classes; the hardest 40% dropped within each class
    sizes = np.bincount(labels, minlength=10)
    shares = balanced_budgets(sizes, 120)
    kept_ids = set(variant.train.ids.tolist())
    values = scores["el2n"].values
    for c in range(10):
        members = np.flatnonzero(labels == c)
        cut = min(int(0.4 * len(members)), len(members) - int(shares[c]))
        hardest = members[np.argsort(-values[members], kind="stable")[:cut]]
        assert not set(hardest.tolist()) & kept_ids
    np.testing.assert_array_equal(np.bincount(variant.train.labels, minlength=10), shares)


@pytest.mark.parametrize("name", ["kcenter", "d2"])
@pytest.mark.parametrize("keep", [0, 1.5])
def test_a_keep_fraction_outside_0_1_is_one_line(name, keep):
    pattern = rf"^curate\.{name}\.keep must be in \(0, 1\], got {keep}"
    with pytest.raises(ConfigError, match=pattern) as raised:
        build(CURATE_ACTIONS[name].options, {"keep": [keep]}, f"curate.{name}")
    assert "\n" not in str(raised.value)
    with pytest.raises(ConfigError, match="must not be empty"):
        build(CURATE_ACTIONS[name].options, {"keep": []}, f"curate.{name}")


def test_bad_arrays_are_refused():
    points = np.zeros((4, 2))
    with pytest.raises(DataError, match="budget must be in"):
        kcenter_greedy(points, 5, 0)
    with pytest.raises(DataError, match="must be \\(N, D\\)"):
        kcenter_greedy(np.zeros(4), 1, 0)
    with pytest.raises(DataError, match="one finite score per example"):
        d2_select(points, np.array([1.0, np.nan, 0.0, 0.0]), 2)


def test_the_pruning_curve_draws_kcenter_and_d2_beside_prune():
    def records(model, id_test, ood, curation=None):
        base = {"model": model, "recipe": "linear_probe"}
        if curation is not None:
            base["curation"] = curation
        return [
            {**base, "role": "id_test", "split": "id_test", "accuracy": id_test},
            {**base, "role": "ood", "split": "yelp", "accuracy": ood, "ece": 0.1, "macro_f1": ood},
        ]

    def info(action, keep, **params):
        return {"action": action, "params": {"keep": keep, **params}, "n_train": 1, "n_removed": 1}

    rs = records("linear_probe", 0.9, 0.7)
    rs += records("prune_el2n_0.5/linear_probe", 0.8, 0.6, info("prune", 0.5, by="el2n"))
    rs += records("kcenter_0.5/linear_probe", 0.85, 0.65, info("kcenter", 0.5))
    rs += records("d2_0.5/linear_probe", 0.86, 0.66, info("d2", 0.5, score="el2n"))
    rs += records("d2_forgetting_0.5/linear_probe", 0.84, 0.64, info("d2", 0.5))
    rs += records("drop_label_issues/linear_probe", 0.9, 0.7, info("drop_label_issues", None))
    rows = model_rows(rs)
    rows[2].id_test_ci = [0.8, 0.9]  # kcenter_0.5's interval reaches the plot's point
    curves = pruning_curves(rows, rs)
    assert curves["linear_probe"]["kcenter"][0][3] == [0.8, 0.9]
    curves = {r: {s: [p[:3] for p in points] for s, points in c.items()} for r, c in curves.items()}
    assert curves == {
        "linear_probe": {
            "el2n": [(0.5, 0.8, 0.6), (1.0, 0.9, 0.7)],
            "kcenter": [(0.5, 0.85, 0.65), (1.0, 0.9, 0.7)],
            "d2": [(0.5, 0.86, 0.66), (1.0, 0.9, 0.7)],
            "d2_forgetting": [(0.5, 0.84, 0.64), (1.0, 0.9, 0.7)],
        }
    }
