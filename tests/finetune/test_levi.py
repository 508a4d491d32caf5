"""LEVI: the ensemble of adapting layers, the frozen backbone, learning, and layer selection."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from recipe_helpers import default_options, run_recipe

import shiftlab.training.trainer as trainer_module
from shiftlab.data.benchmark import Benchmark, Split
from shiftlab.errors import ConfigError
from shiftlab.evaluate import predictor_logits


def options(**changes):
    """levi's tiny options (one short epoch), with a small view of its own."""
    return dataclasses.replace(default_options("levi"), hidden_dim=16, buckets=1024, **changes)


def pooled_hidden_states(encoder, texts, layers):
    """By hand: the Hugging Face model's hidden states, mean-pooled over the attention mask
    and L2-normalised (as the encoder pools its last layer)."""
    batch = encoder.tokenizer(
        list(texts), padding=True, truncation=True, max_length=encoder.max_length,
        return_tensors="pt",
    )  # fmt: skip
    with torch.no_grad():
        states = encoder.model(**batch, output_hidden_states=True).hidden_states
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return [F.normalize((states[i] * mask).sum(1) / mask.sum(1), dim=-1) for i in layers]


def test_prediction_is_the_mean_of_the_adapting_layers_logits(
    make_context, tiny_benchmark, tiny_backbone
):
    made, ctx = run_recipe(make_context, tiny_benchmark, tiny_backbone, "levi", options())
    assert [p.name for p in made] == ["levi"] and not made[0].save
    model = made[0].model
    test = tiny_benchmark.test
    texts = test.inputs[:8]
    views = pooled_hidden_states(tiny_backbone.featurizer, texts, model.views.layers)
    with torch.no_grad():
        small = model.small(texts)
        by_layer = [a(torch.cat([h, small], 1)) for a, h in zip(model.adapters, views, strict=True)]
        expected = torch.stack(by_layer).mean(0)  # the mean of the logits (not of probabilities)
        torch.testing.assert_close(model(texts), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            model.layer_logits(texts), torch.stack(by_layer), atol=1e-5, rtol=1e-5
        )
    # What the evaluator scores (from cached features) is the same ensemble.
    scored = predictor_logits(made[0], test, ctx.cache)
    torch.testing.assert_close(scored[:8], expected, atol=1e-5, rtol=1e-5)
    assert len(model.adapters) == len(model.views.layers) == 3  # default: the last three


def test_the_backbone_stays_frozen(make_context, tiny_benchmark, tiny_backbone, monkeypatch):
    encoder = tiny_backbone.featurizer
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    for p in encoder.parameters():
        p.grad = None
    optimised = []
    real = trainer_module.make_optimizer

    def spy(params, cfg):
        params = list(params)
        optimised.extend(q for g in params for q in (g["params"] if isinstance(g, dict) else [g]))
        return real(params, cfg)

    monkeypatch.setattr(trainer_module, "make_optimizer", spy)
    made, _ = run_recipe(make_context, tiny_benchmark, tiny_backbone, "levi", options())
    model = made[0].model
    assert model.views.featurizer is encoder  # shared, never copied
    backbone = {id(p) for p in encoder.parameters()}
    trained = {id(p) for p in [*model.small.parameters(), *model.adapters.parameters()]}
    assert optimised and {id(p) for p in optimised} == trained and not backbone & trained
    assert all(p.grad is None for p in encoder.parameters())
    after = encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not encoder.training and not any(m.training for m in encoder.modules())


def word_task(seed):
    """Two classes told apart by a sentiment word among random filler words."""
    rng = np.random.default_rng(seed)
    words = [["excellent", "great", "wonderful", "superb"], ["awful", "terrible", "poor", "bad"]]
    filler = [
        "the",
        "a",
        "phone",
        "it",
        "was",
        "this",
        "battery",
        "screen",
        "case",
        "day",
        "with",
        "and",
        "very",
    ]

    def split(name, role, n):
        labels = rng.integers(0, 2, n)
        texts = [
            " ".join([*rng.choice(filler, 4), rng.choice(words[y]), *rng.choice(filler, 3)])
            for y in labels
        ]
        return Split(name, role, texts, labels.astype(np.int64))

    ood = split("ood", "ood", 40)
    return Benchmark(
        "words", ["negative", "positive"], "text", split("train", "train", 96),
        split("id_val", "id_val", 32), split("id_test", "id_test", 64), [ood], ["words"],
    )  # fmt: skip


def test_it_learns_a_separable_text_task(make_context, tiny_backbone):
    benchmark = word_task(0)
    # lr 1e-2: 90 steps from scratch on 96 texts (the default 1e-3 suits hundreds of steps)
    cfg = options(epochs=15, batch_size=16, warmup_steps=0, lr=1e-2)
    made, ctx = run_recipe(make_context, benchmark, tiny_backbone, "levi", cfg)
    logits = predictor_logits(made[0], benchmark.test, ctx.cache)
    accuracy = float((logits.argmax(1).numpy() == benchmark.test.labels).mean())
    assert accuracy >= 0.75, accuracy  # a constant prediction scores at most 0.56 here


def test_layers_name_exactly_the_hidden_states_read(make_context, tiny_benchmark, tiny_backbone):
    encoder = tiny_backbone.featurizer  # 2 layers: hidden_states 0 (embeddings), 1, 2
    made, ctx = run_recipe(
        make_context, tiny_benchmark, tiny_backbone, "levi", options(layers=[1, -1])
    )
    model = made[0].model
    assert model.views.layers == (1, 2) and made[0].params == {"layers": [1, 2]}
    assert model.views.dims == (32, 32) and len(model.adapters) == 2
    assert model.adapters[0].linear.in_features == 32 + 16
    texts = tiny_benchmark.test.inputs[:8]
    first, last = pooled_hidden_states(encoder, texts, [1, -1])
    with torch.no_grad():
        torch.testing.assert_close(model.views(texts), torch.cat([first, last], 1))
        torch.testing.assert_close(last, encoder(texts))  # the last layer: the usual features
        assert not torch.allclose(first, last)
    # What training read: the cached views of the training split, the same layers.
    train = tiny_benchmark.train
    by_hand = torch.cat(pooled_hidden_states(encoder, train.inputs, [1, 2]), 1)
    torch.testing.assert_close(ctx.features(train, model.views), by_hand, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("layers", "message"), [([3], "not 3"), ([2, -1], "twice")])
def test_layers_the_backbone_lacks_are_refused(
    layers, message, make_context, tiny_benchmark, tiny_backbone
):
    with pytest.raises(ConfigError, match=message):
        run_recipe(make_context, tiny_benchmark, tiny_backbone, "levi", options(layers=layers))


def test_small_cnn_layers_and_an_image_run(make_context):
    from shiftlab.config.sections import BackboneConfig
    from shiftlab.models import load_backbone

    rng = np.random.default_rng(0)

    def split(name, role, n):
        labels = rng.integers(0, 2, n)
        images = rng.random((n, 1, 8, 8)).astype(np.float32)
        images[:, 0, :4] += labels[:, None, None]  # the label lights the top half
        return Split(name, role, images / 2, labels.astype(np.int64))

    benchmark = Benchmark(
        "blocks", ["a", "b"], "image", split("train", "train", 32), split("id_val", "id_val", 16),
        split("id_test", "id_test", 16), [split("ood", "ood", 16)], ["blocks"],
    )  # fmt: skip
    backbone = load_backbone(
        BackboneConfig(name="small_cnn"), torch.device("cpu"), input_shape=(1, 8, 8)
    )
    x = torch.as_tensor(benchmark.test.inputs)
    with torch.no_grad():
        torch.testing.assert_close(
            backbone.featurizer.hidden_layers(x, [-1])[0], backbone.featurizer(x)
        )
    made, ctx = run_recipe(make_context, benchmark, backbone, "levi", options(layers=[0, -1]))
    model = made[0].model
    assert model.views.layers == (0, 3) and model.views.dims == (32, 128)
    logits = predictor_logits(made[0], benchmark.test, ctx.cache)
    assert logits.shape == (16, 2) and torch.isfinite(logits).all()
    with torch.no_grad():
        torch.testing.assert_close(model.layer_logits(x).mean(0), logits, atol=1e-5, rtol=1e-5)
