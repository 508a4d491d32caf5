import math

import torch
import torch.nn.functional as F
from recipe_helpers import run_recipe

from shiftlab.finetune.flyp import clip_loss


def hand_clip_loss(a, b, scale, soft=None):
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    n = len(a)
    total = 0.0
    for i in range(n):
        row = [scale * float(a[i] @ b[j]) for j in range(n)]
        col = [scale * float(b[i] @ a[j]) for j in range(n)]
        targets = soft[i] if soft is not None else [1.0 if j == i else 0.0 for j in range(n)]
        for logits in (row, col):
            lse = math.log(sum(math.exp(v) for v in logits))
            total += sum(t * (lse - v) for t, v in zip(targets, logits, strict=True)) / 2
    return total / n


def test_symmetric_contrastive_loss_matches_a_hand_computation():
    torch.manual_seed(0)
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    ours = float(clip_loss(a, b, torch.tensor(math.log(7.0))))
    assert abs(ours - hand_clip_loss(a, b, 7.0)) < 1e-5


def test_label_aware_targets_spread_over_same_class_rows():
    torch.manual_seed(1)
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    labels = torch.tensor([0, 0, 1])
    soft = [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    ours = float(clip_loss(a, b, torch.tensor(0.0), labels))
    assert abs(ours - hand_clip_loss(a, b, 1.0, soft)) < 1e-5


def test_trains_both_sides_and_the_temperature(make_context, tiny_benchmark, tiny_backbone):
    (predictor,), ctx = run_recipe(make_context, tiny_benchmark, tiny_backbone, "flyp")
    scale = predictor.params["logit_scale"]
    assert scale != tiny_backbone.logit_scale  # the temperature is learned
    # The evaluated head is the zero-shot head rebuilt from the fine-tuned prompt side, with
    # every class row scaled by the learned temperature.
    head = predictor.model.head.weight
    torch.testing.assert_close(head.norm(dim=1), torch.full((2,), scale), atol=1e-3, rtol=0)
    encoder = predictor.model.featurizer.eval()
    with torch.no_grad():
        prompts = F.normalize(encoder(["a negative review.", "a positive review."]), dim=-1)
    torch.testing.assert_close(F.normalize(head, dim=1), prompts, atol=1e-5, rtol=0)
    pretrained = ctx.zero_shot_head().weight
    assert not torch.allclose(F.normalize(head, dim=1), F.normalize(pretrained, dim=1))


def test_flyp_trains_without_gradient_clipping(
    make_context, tiny_benchmark, tiny_backbone, monkeypatch
):
    calls = []
    original = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_norm_", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    run_recipe(make_context, tiny_benchmark, tiny_backbone, "flyp")
    assert calls == []  # locuslab/FLYP clips nothing
    run_recipe(make_context, tiny_benchmark, tiny_backbone, "full_ft")
    assert calls  # full_ft clips at norm 1, as WiSE-FT's fine-tuning


def test_image_text_data_pairs_each_example_with_its_caption(
    make_context, tiny_benchmark, tiny_backbone, monkeypatch
):
    """With captions on the training split, every step contrasts the batch's inputs with their
    own captions (distinct ones encoded once), and no class prompt is encoded while training.
    Each caption here is its input's own text, so on this one-tower encoder row i of the
    captions' embeddings must be row i of the inputs' nearest (the two passes differ only by
    dropout) when the rows are paired right."""
    import dataclasses

    import numpy as np

    import shiftlab.finetune.flyp as flyp_module

    train = tiny_benchmark.train
    captions = np.array(list(train.inputs), dtype=object)
    benchmark = dataclasses.replace(
        tiny_benchmark, train=dataclasses.replace(train, captions=captions)
    )
    pairs = []
    original = flyp_module.clip_loss

    def recording(inputs, prompts, log_scale, labels=None):
        pairs.append((inputs.detach(), prompts.detach()))
        return original(inputs, prompts, log_scale, labels)

    seen = []
    original_distinct = flyp_module.encode_distinct

    def recording_distinct(encode, texts):
        seen.append(list(texts))
        return original_distinct(encode, texts)

    monkeypatch.setattr(flyp_module, "clip_loss", recording)
    monkeypatch.setattr(flyp_module, "encode_distinct", recording_distinct)
    run_recipe(make_context, benchmark, tiny_backbone, "flyp")
    assert seen and len(seen) == len(pairs)
    assert {t for texts in seen for t in texts} == set(captions)  # every caption, nothing else
    hits = rows = 0
    for inputs, texts in pairs:
        similarity = F.normalize(inputs, dim=-1) @ F.normalize(texts, dim=-1).T
        hits += int((similarity.argmax(1) == torch.arange(len(inputs))).sum())
        rows += len(inputs)
    assert hits >= 0.9 * rows, (hits, rows)
