import numpy as np
import torch
from recipe_helpers import default_options, run_recipe
from sklearn.linear_model import LogisticRegression

from shiftlab.finetune.linear_probe import LinearProbeOptions, fit_linear_probe


def blobs(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 6)) + 2.0 * np.eye(3, 6)[y] + shift
    return x * 5 + 3, y  # far from zero mean / unit scale, so un-normalising matters


def test_head_on_raw_features_reproduces_sklearn_on_normalised_features():
    x, y = blobs(300, 0)
    vx, vy = blobs(100, 1)
    cfg = LinearProbeOptions(c_min_exp=-1, c_max_exp=-1, num_c=1)  # one C: no warm-start path
    probe = fit_linear_probe(x, y, vx, vy, 3, cfg, seed=0)
    assert probe.c == 0.1
    mean, std = x.mean(), x.std()  # one scalar each, over the whole training matrix
    reference = LogisticRegression(C=0.1, max_iter=200, random_state=0)
    reference.fit((x - mean) / std, y)
    logits = torch.tensor(vx, dtype=torch.float64) @ probe.weight.double().T + probe.bias.double()
    ours = torch.softmax(logits, dim=1).numpy()
    np.testing.assert_allclose(ours, reference.predict_proba((vx - mean) / std), atol=1e-5)


def test_c_is_chosen_by_id_val_accuracy():
    x, y = blobs(200, 0)
    vx, vy = blobs(100, 1)
    cfg = LinearProbeOptions(num_c=5)
    probe = fit_linear_probe(x, y, vx, vy, 3, cfg, seed=0)
    # C = 1e-7 predicts one class; the chosen C must be at least as accurate on val as any
    accuracies = {}
    for c in np.logspace(-7, 2, 5):
        m = LogisticRegression(C=c, max_iter=200).fit((x - x.mean()) / x.std(), y)
        accuracies[c] = (m.predict((vx - x.mean()) / x.std()) == vy).mean()
    assert probe.val_accuracy == max(accuracies.values())
    assert accuracies[min(accuracies)] < probe.val_accuracy


def test_binary_head_splits_the_logit_symmetrically_and_pads_absent_classes():
    x, y = blobs(200, 0)
    keep = y < 2
    x, y = x[keep], y[keep]
    probe = fit_linear_probe(x, y, x, y, 3, LinearProbeOptions(num_c=3), seed=0)
    torch.testing.assert_close(probe.weight[0], -probe.weight[1])
    assert torch.equal(probe.weight[2], torch.zeros(6)) and probe.bias[2] == 0


def test_trend_points_are_other_cs_well_above_chance(make_context, tiny_benchmark, tiny_backbone):
    options = default_options("linear_probe")
    options.num_c, options.trend_points = 12, 4
    made, ctx = run_recipe(make_context, tiny_benchmark, tiny_backbone, "linear_probe", options)
    main, points = made[0], made[1:]
    assert main.info == {"standard": True} and main.save
    assert 1 <= len(points) <= 4
    val = tiny_benchmark.val
    chance = np.bincount(val.labels).max() / len(val)
    floor = chance + 0.5 * (ctx.accuracy(main.model, val) - chance)
    for p in points:
        assert p.name == f"linear_probe[C={p.params['C']:.3g}]" and not p.save
        assert p.info == {"standard": True, "trend_point": True}
        assert p.params["C"] != main.params["C"]
        assert ctx.accuracy(p.model, val) >= floor and ctx.accuracy(p.model, val) > chance
    options.trend_points = 0
    made, _ = run_recipe(make_context, tiny_benchmark, tiny_backbone, "linear_probe", options)
    assert len(made) == 1


def test_full_ft_epoch_points_score_the_other_epochs(make_context, tiny_benchmark, tiny_backbone):
    options = default_options("full_ft")
    options.epochs, options.epoch_points = 3, True
    made, _ = run_recipe(make_context, tiny_benchmark, tiny_backbone, "full_ft", options)
    assert [p.name for p in made] == ["full_ft", "full_ft[epoch=1]", "full_ft[epoch=2]"]
    assert all(p.info.get("trend_point") and not p.save for p in made[1:])
    first = made[1].model.head.weight
    assert not torch.equal(first, made[0].model.head.weight)  # weights of another epoch
