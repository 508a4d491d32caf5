import torch
from recipe_helpers import default_options, run_recipe

from shiftlab.finetune.model_soup import (
    ModelSoupOptions,
    greedy_soup,
    running_average,
    sample_ingredients,
    uniform_soup,
)


def scalar(value):
    return {"w": torch.tensor(float(value))}


def test_greedy_soup_adds_and_skips_exactly_the_right_ingredients():
    # held-out accuracy peaks at w = 2.5
    score = lambda state: 1 - abs(float(state["w"]) - 2.5) / 10  # noqa: E731
    states = [scalar(1.0), scalar(2.0), scalar(10.0), scalar(3.0)]
    scores = [score(s) for s in states]  # 0.85, 0.95, 0.25, 0.95
    soup, chosen, best = greedy_soup(states, scores, score)
    # sorted: #1 (w=2, 0.95), #3 (w=3, 0.95), #0 (w=1, 0.85), #2 (w=10, 0.25)
    # start at #1; add #3: mean 2.5 -> 1.0 > 0.95, kept; add #0: (2.5*2 + 1)/3 = 2.0 -> 0.95,
    # not > 1.0, skipped; add #2: (2.5*2 + 10)/3 = 5.0 -> 0.75, skipped.
    assert chosen == [1, 3]
    assert float(soup["w"]) == 2.5 and best == 1.0


def test_greedy_soup_needs_a_strict_improvement():
    states, scores = [scalar(1.0), scalar(3.0)], [0.5, 0.5]
    _, chosen, _ = greedy_soup(states, scores, lambda s: 0.5)
    assert chosen == [0]


def test_running_average_is_the_uniform_mean():
    mean = running_average(running_average(scalar(1.0), scalar(2.0), 1), scalar(6.0), 2)
    assert float(mean["w"]) == 3.0
    ints = running_average({"n": torch.tensor(4)}, {"n": torch.tensor(9)}, 1)
    assert int(ints["n"]) == 4  # integer buffers are not averaged


def test_uniform_soup_of_identical_models_is_that_model(
    make_context, tiny_benchmark, tiny_backbone
):
    (model,), _ = run_recipe(make_context, tiny_benchmark, tiny_backbone, "full_ft")
    state = model.model.state_dict()
    soup = uniform_soup([state, state, state])
    for key, value in state.items():
        torch.testing.assert_close(soup[key], value, rtol=1e-6, atol=1e-7)


def test_recipe_trains_the_grid_and_the_greedy_soup_is_no_worse(
    make_context, tiny_benchmark, tiny_backbone
):
    options = default_options("model_soup")
    options.search, options.lrs, options.seeds = "grid", [1e-4, 1e-3], [0, 1]
    made, ctx = run_recipe(make_context, tiny_benchmark, tiny_backbone, "model_soup", options)
    names = [p.name for p in made]
    assert names == [
        "model_soup[lr=0.0001,seed=0]",
        "model_soup[lr=0.0001,seed=1]",
        "model_soup[lr=0.001,seed=0]",
        "model_soup[lr=0.001,seed=1]",
        "model_soup[uniform]",
        "model_soup[greedy]",
    ]
    val = tiny_benchmark.val
    accuracy = {p.name: ctx.accuracy(p.model, val) for p in made}
    ingredients = [p for p in made if p.params.get("ingredient")]
    assert accuracy["model_soup[greedy]"] >= max(accuracy[p.name] for p in ingredients)
    greedy = made[-1].params["ingredients"]
    assert greedy[0] == max(ingredients, key=lambda p: accuracy[p.name]).name
    # same start, different seeds: the seed-0 and seed-1 ingredients differ
    w0, w1 = (p.model.head.weight for p in ingredients[:2])
    assert not torch.equal(w0, w1)


def test_random_search_ingredients_differ_and_repeat_for_the_same_seed():
    cfg = ModelSoupOptions(ingredients=6)
    draws = sample_ingredients(cfg, seed=0)
    assert draws == sample_ingredients(cfg, seed=0)
    assert draws != sample_ingredients(cfg, seed=1)
    for key in ("lr", "weight_decay", "epochs"):
        assert len({d[key] for d in draws}) > 1, key  # the search varies every hyperparameter
    for d in draws:  # within the reference's ranges (hparam_info.json)
        assert 1e-6 <= d["lr"] <= 1e-4 and 1e-4 <= d["weight_decay"] <= 0.5
        assert 4 <= d["epochs"] <= 16 and 0 <= d["label_smoothing"] <= 0.25
    assert [d["seed"] for d in draws] == list(range(6))


def test_random_search_soup_trains_its_draws_and_seed_only_grids_say_so(
    make_context, tiny_benchmark, tiny_backbone
):
    options = default_options("model_soup")  # random search, epochs drawn from [1, 2]
    options.ingredients = 2
    made, _ = run_recipe(make_context, tiny_benchmark, tiny_backbone, "model_soup", options)
    draws = sample_ingredients(options, seed=0)
    ingredients = [p for p in made if p.params.get("ingredient")]
    assert [p.name for p in ingredients] == ["model_soup[ingredient=0]", "model_soup[ingredient=1]"]
    for predictor, draw in zip(ingredients, draws, strict=True):
        assert {k: predictor.params[k] for k in draw} == draw
    assert [p.name for p in made[2:]] == ["model_soup[uniform]", "model_soup[greedy]"]
    grid = default_options("model_soup")
    grid.search, grid.seeds = "grid", [0, 1]
    made, _ = run_recipe(make_context, tiny_benchmark, tiny_backbone, "model_soup", grid)
    assert [p.name for p in made[2:]] == [
        "model_soup[uniform_seed_only]",
        "model_soup[greedy_seed_only]",
    ]
