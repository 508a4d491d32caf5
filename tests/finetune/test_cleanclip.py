import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from recipe_helpers import default_options, run_recipe

from shiftlab.data.batches import ImageTransform
from shiftlab.errors import ConfigError
from shiftlab.finetune import cleanclip as cc
from shiftlab.finetune.cleanclip import (
    autoaugmented,
    cleanclip_loss,
    decay_groups,
    input_views,
    paired_texts,
)
from shiftlab.finetune.eda import eda
from shiftlab.finetune.flyp import FLYPModel, clip_loss
from shiftlab.models.backbone import Backbone


def hand_ce(a, b, scale):
    """Mean over rows i of -log softmax_j(scale <a_i, b_j>)[i], by explicit loops."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    n, total = len(a), 0.0
    for i in range(n):
        logits = [scale * float(a[i] @ b[j]) for j in range(n)]
        top = max(logits)
        lse = top + math.log(sum(math.exp(v - top) for v in logits))
        total += lse - logits[i]
    return total / n


def test_loss_matches_a_hand_computation_and_without_the_inmodal_term_is_clip_loss():
    torch.manual_seed(0)
    image, text, aug_image, aug_text = (torch.randn(3, 4) for _ in range(4))
    scale, wc, wi = 5.0, 0.7, 1.3
    log_scale = torch.tensor(math.log(scale))
    ours = float(cleanclip_loss(image, text, aug_image, aug_text, log_scale, wc, wi))
    crossmodal = (hand_ce(image, text, scale) + hand_ce(text, image, scale)) / 2
    inmodal = (hand_ce(image, aug_image, scale) + hand_ce(text, aug_text, scale)) / 2
    assert ours == pytest.approx(wc * crossmodal + wi * inmodal, abs=1e-5)
    # One direction per modality: the transposed in-modal terms are not the ones used.
    transposed = (hand_ce(aug_image, image, scale) + hand_ce(aug_text, text, scale)) / 2
    assert ours != pytest.approx(wc * crossmodal + wi * transposed, abs=1e-3)
    plain = cleanclip_loss(image, text, aug_image, aug_text, log_scale, 1.0, 0.0)
    torch.testing.assert_close(plain, clip_loss(image, text, log_scale))


TEXT = "the quick brown fox jumps over the lazy dog today"


def test_eda_is_seeded_changes_the_text_and_uses_only_its_words():
    views = [eda(TEXT, np.random.default_rng(seed)) for seed in range(60)]
    assert views == [eda(TEXT, np.random.default_rng(seed)) for seed in range(60)]
    assert len(set(views)) > 10  # different seeds, different views
    assert sum(v != TEXT for v in views) >= 45  # most views change the text
    for text in (TEXT, "one", "two words", "a  b\tc"):
        for seed in range(20):
            view = eda(text, np.random.default_rng(seed), alpha=0.5)
            assert view.split() and set(view.split()) <= set(text.split())
    assert eda(TEXT, np.random.default_rng(0), alpha=0.0) == TEXT
    words = TEXT.split()
    rng = np.random.default_rng(3)
    inserted = eda(TEXT, rng, 0.2, operations=("insert",)).split()
    assert len(inserted) == len(words) + 2
    swapped = eda(TEXT, rng, 0.2, operations=("swap",)).split()
    assert sorted(swapped) == sorted(words) and swapped != words
    deleted = eda(TEXT, rng, 0.5, operations=("delete",)).split()
    assert 0 < len(deleted) < len(words) and deleted == [w for w in words if w in deleted]


def test_texts_are_captions_or_class_prompts():
    prompts = [["a bad one.", "bad!"], ["a good one.", "good!"]]
    generator = torch.Generator().manual_seed(0)
    captions = np.array(["cap zero", "", "cap two"])
    texts = paired_texts(np.array([2, 1, 0]), np.array([1, 0, 1]), captions, prompts, generator)
    assert texts[0] == "cap two" and texts[1] in prompts[0] and texts[2] == "cap zero"
    texts = paired_texts(np.array([0, 1]), np.array([1, 0]), None, prompts, generator)
    assert texts[0] in prompts[1] and texts[1] in prompts[0]


def test_image_views_are_seeded_and_keep_the_shape():
    transform = ImageTransform(8, (0.5, 0.4, 0.3), (0.2, 0.3, 0.25), eval_pil=None)
    images = torch.randn(4, 3, 8, 8)
    first = autoaugmented(images, transform, np.random.default_rng(0))
    again = autoaugmented(images, transform, np.random.default_rng(0))
    assert first.shape == images.shape and torch.equal(first, again)
    assert not torch.allclose(first, images, atol=0.05)
    state = torch.get_rng_state()
    autoaugmented(images, transform, np.random.default_rng(1))
    assert torch.equal(torch.get_rng_state(), state)  # the run's random state is untouched
    cfg = default_options("cleanclip")
    digits = torch.rand(4, 3, 16, 16)
    view = input_views(digits, "arrays", None, cfg, np.random.default_rng(0))
    assert view.shape == digits.shape and not torch.equal(view, digits)


def test_decay_spares_norms_biases_and_the_temperature(tiny_backbone):
    model = FLYPModel(tiny_backbone.featurizer, 20.0)
    decay, rest = decay_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    spared = {names[id(p)] for p in rest["params"]}
    assert "log_scale" in spared and rest["weight_decay"] == 0.0
    assert all("LayerNorm" in n or n.endswith("bias") or n == "log_scale" for n in spared)
    assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.1


def test_trains_both_sides_and_the_temperature(make_context, tiny_benchmark, tiny_backbone):
    (predictor,), ctx = run_recipe(make_context, tiny_benchmark, tiny_backbone, "cleanclip")
    assert predictor.name == "cleanclip" and predictor.recipe == "cleanclip"
    scale = predictor.params["logit_scale"]
    assert scale != tiny_backbone.logit_scale
    head = predictor.model.head.weight
    torch.testing.assert_close(head.norm(dim=1), torch.full((2,), scale), atol=1e-3, rtol=0)
    pretrained = ctx.zero_shot_head().weight
    assert not torch.allclose(F.normalize(head, dim=1), F.normalize(pretrained, dim=1))
    # The ablation without the in-modal term runs, and differs.
    options = dataclasses.replace(default_options("cleanclip"), inmodal_weight=0.0)
    (plain,), _ = run_recipe(
        make_context, tiny_benchmark, tiny_backbone, "cleanclip", options, name="plain"
    )
    assert plain.params["inmodal_weight"] == 0.0
    assert not torch.allclose(plain.model.head.weight, head)
    # The learned scale is clamped as the reference clamps it (here to at most 1).
    options = dataclasses.replace(default_options("cleanclip"), max_logit_scale=1.0)
    (clamped,), _ = run_recipe(
        make_context, tiny_benchmark, tiny_backbone, "cleanclip", options, name="clamped"
    )
    assert clamped.params["logit_scale"] == 1.0


def test_pairs_each_example_with_its_caption(
    make_context, tiny_benchmark, tiny_backbone, monkeypatch
):
    train = tiny_benchmark.train
    caption_of = {x: f"caption number {i}: {x}" for i, x in enumerate(train.inputs)}
    captions = np.array([caption_of[x] for x in train.inputs], dtype=object)
    benchmark = dataclasses.replace(
        tiny_benchmark, train=dataclasses.replace(train, captions=captions)
    )
    inputs_seen, texts_seen = [], []
    original_views, original_side = cc.input_views, Backbone.text_side

    def recording_views(inputs, *args):
        inputs_seen.append(list(inputs))
        return original_views(inputs, *args)

    def recording_side(featurizer):
        encode = original_side(featurizer)
        return lambda texts: texts_seen.append(list(texts)) or encode(texts)

    monkeypatch.setattr(cc, "input_views", recording_views)
    monkeypatch.setattr(Backbone, "text_side", staticmethod(recording_side))
    run_recipe(make_context, benchmark, tiny_backbone, "cleanclip")
    steps = len(inputs_seen)
    assert steps == math.ceil(len(train) / default_options("cleanclip").batch_size)
    for inputs, texts in zip(inputs_seen, texts_seen[:steps], strict=True):
        assert texts[: len(inputs)] == [caption_of[x] for x in inputs]  # row i: x_i's caption
    seen = [t for texts in texts_seen[:steps] for t in texts]
    assert set(captions) <= set(seen)  # every example's caption, in one epoch
    assert not any("review." in t for t in seen)  # no class prompt while captions exist


def test_clean_data_leaves_out_exactly_the_poisoned_examples_of_any_subset(
    make_context, tiny_benchmark, tiny_backbone
):
    """``data: clean`` drops the examples data.poison poisoned, by the mask every subset keeps
    in step (a curated set or a fold of the poisoned split, not only the split itself)."""
    from shiftlab.config.sections import PoisonConfig
    from shiftlab.data.poison import poison

    train, _ = poison(tiny_benchmark.train, tiny_benchmark.test, tiny_benchmark.class_names,
                      PoisonConfig(target="positive", fraction=0.3), seed=0)  # fmt: skip
    poisoned_texts = {t for t, p in zip(train.inputs, train.poisoned, strict=True) if p}
    half = train.subset(np.arange(len(train) // 3, len(train)))
    for split in (train, half):
        benchmark = dataclasses.replace(tiny_benchmark, train=split)
        clean = cc.clean_context(make_context(benchmark, tiny_backbone)).benchmark.train
        expected = [t for t in split.inputs if t not in poisoned_texts]
        assert list(clean.inputs) == expected and not clean.poisoned.any()
        assert len(clean) == len(split) - int(split.poisoned.sum()) < len(split)
    with pytest.raises(ConfigError, match="needs poisoned data"):
        cc.clean_context(make_context(tiny_benchmark, tiny_backbone))
