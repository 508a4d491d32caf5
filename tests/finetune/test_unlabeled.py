"""Learning from an unlabeled pool and from annotations: what makes each method that method
(DivDis' repulsion, D-BAT's disagreement, pseudo-labels' threshold, FixMatch's views, ENP's
invariance), and a pool whose labels no recipe can read."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import write_config
from shiftlab import config
from shiftlab.data.build import load_benchmark
from shiftlab.finetune.dbat import disagreement_loss
from shiftlab.finetune.divdis import pairwise_mutual_information, repulsion
from shiftlab.finetune.fixmatch import FixMatchOptions, drop_words, views
from shiftlab.finetune.unlabeled import pseudo_label_loss
from shiftlab.runner import run
from shiftlab.store import read_records


def test_repulsion_is_zero_when_one_head_is_constant():
    rng = np.random.default_rng(0)
    moving = torch.as_tensor(rng.dirichlet([1, 1, 1], size=50), dtype=torch.float32)
    constant = torch.tensor([0.2, 0.5, 0.3]).expand(50, 3)
    probs = torch.stack([moving, constant], dim=1)  # the joint factorises exactly
    assert repulsion(probs).item() == pytest.approx(0.0, abs=1e-6)


def test_repulsion_of_two_identical_heads_is_their_mutual_information_by_hand():
    p = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    probs = torch.stack([p, p], dim=1)
    joint = np.zeros((2, 2))
    for row in p.numpy():
        joint += np.outer(row, row) / 3
    marginal = p.numpy().mean(0)
    expected = sum(
        joint[c, d] * math.log(joint[c, d] / (marginal[c] * marginal[d]))
        for c in range(2)
        for d in range(2)
    )
    assert expected > 0
    assert repulsion(probs).item() == pytest.approx(expected, rel=1e-5)
    grid = pairwise_mutual_information(probs)
    assert grid[0, 1].item() == pytest.approx(grid[1, 0].item())


def test_dbat_loss_is_the_reference_formula():
    earlier = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    current = torch.tensor([[0.5, 0.4, 0.1], [0.2, 0.2, 0.6]], requires_grad=True)
    # earlier's argmax: classes 0 and 2, p1 = 0.7 and 0.6; current's p2 of them: 0.5 and 0.6
    by_hand = -(math.log(0.7 * 0.5 + 0.5 * 0.3 + 1e-7) + math.log(0.6 * 0.4 + 0.6 * 0.4 + 1e-7)) / 2
    loss = disagreement_loss(earlier, current)
    assert loss.item() == pytest.approx(by_hand, rel=1e-6)
    loss.backward()
    assert current.grad is not None  # the current model learns; the earlier one is fixed


def test_a_pseudo_label_below_the_threshold_contributes_nothing():
    logits = torch.tensor([[2.0, 0.0], [0.1, 0.0], [0.0, 3.0]], requires_grad=True)
    teacher = logits.detach()
    confidence = teacher.softmax(-1).max(-1).values  # 0.88, 0.52, 0.95
    loss = pseudo_label_loss(logits, teacher, threshold=0.8)
    loss.backward()
    assert logits.grad[1].abs().sum() == 0  # below the threshold: no gradient at all
    kept = confidence >= 0.8
    expected = torch.nn.functional.cross_entropy(logits[kept], teacher[kept].argmax(-1)) * 2 / 3
    assert loss.item() == pytest.approx(expected.item())
    assert pseudo_label_loss(logits, teacher, threshold=0.99).item() == 0.0


def test_fixmatch_trains_the_strong_view_on_the_weak_views_label():
    weak = torch.tensor([[4.0, 0.0], [0.0, 4.0]])  # confident: classes 0 and 1
    strong = torch.tensor([[0.0, 1.0], [1.0, 0.0]], requires_grad=True)  # says the opposite
    loss = pseudo_label_loss(strong, weak, threshold=0.7)
    expected = torch.nn.functional.cross_entropy(strong, torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(expected.item())
    wrong = torch.nn.functional.cross_entropy(strong, torch.tensor([1, 0]))
    assert loss.item() > wrong.item()  # the strong view's own argmax is not the target


def test_fixmatch_views_keep_texts_and_drop_words_only_from_the_strong_one():
    rng = np.random.default_rng(0)
    texts = ["the film was long and slow", "great"]
    weak, strong = views(texts, FixMatchOptions(word_dropout=0.5), rng)
    assert weak == texts
    assert strong[1] == "great" and len(strong[0].split()) < 6
    assert set(strong[0].split()) <= set(texts[0].split())
    assert drop_words("a b c", 0.999, np.random.default_rng(1)) in {"a", "b", "c"}


def test_enp_output_ignores_a_resampled_unreliable_feature(make_context):
    from shiftlab.config.sections import BackboneConfig
    from shiftlab.finetune.enp import ENPOptions, enp
    from shiftlab.models import load_backbone

    data = config.parse(
        {
            "data": {
                "kind": "contextual_reliability",
                "train": 400,
                "flipped": 100,
                "size": 8,
                "annotated": 0.3,
            }
        }
    ).data
    benchmark = load_benchmark(data)
    backbone = load_backbone(
        BackboneConfig(name="small_cnn"), torch.device("cpu"), input_shape=benchmark.input_shape
    )
    ctx = make_context(benchmark, backbone, name="enp")
    (predictor,) = enp(ctx, ENPOptions(epochs=2, batch_size=32, select="last"))
    model = predictor.model.eval()
    masker = model.featurizer.masker
    x = torch.as_tensor(benchmark.ood[0].inputs[:100])
    patch = torch.as_tensor(benchmark.regions["patch"])
    resampled = torch.where(patch, torch.rand_like(x) * 2, x)  # a new patch, nothing else
    keep = masker.keep(x)[:, 1]
    same_decision = masker.keep(resampled)[:, 1] == keep
    unreliable = ~keep & same_decision
    assert unreliable.sum() > 10 and same_decision.float().mean() > 0.9
    with torch.no_grad():
        before, after = model(x), model(resampled)
    assert torch.equal(before[unreliable], after[unreliable])
    assert not torch.equal(before[keep & same_decision], after[keep & same_decision])
    assert predictor.info["stage1_train_agreement"] > 0.9


POOL_CSV = """
data:
  kind: csv
  path: {path}
  text_column: text
  label_column: label
  domain_column: domain
  id_domains: [a]
  ood_domains: [b]
  unlabeled: {{domains: [b], fraction: 0.5}}
backbone: {backbone}
recipes:
  - linear_probe
  - pseudo_label: {{head_only: true, epochs: 2, batch_size: 16, threshold: 0.5}}
"""


def pool_csv(path, flip_pool: bool, ids_of_pool: set[str] | None = None):
    words = {"pos": ["good", "great", "fine"], "neg": ["bad", "awful", "poor"]}
    rows = ["id,text,label,domain"]
    for domain in ("a", "b"):
        for i in range(60):
            label = "pos" if i % 2 else "neg"
            text = f"{words[label][i % 3]} thing {i} {domain}"
            given = label
            if flip_pool and ids_of_pool is not None and f"{domain}-{i}" in ids_of_pool:
                given = "neg" if label == "pos" else "pos"
            rows.append(f"{domain}-{i},{text},{given},{domain}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_no_recipe_reads_a_pool_label(tmp_path, tiny_encoder_dir):
    first = pool_csv(tmp_path / "d.csv", flip_pool=False)
    cfg = config.load(
        write_config(tmp_path / "c.yaml", POOL_CSV.format(path=first, backbone=tiny_encoder_dir))
    )
    pool_ids = set(load_benchmark(cfg.data).unlabeled.ids.astype(str))
    assert len(pool_ids) == 30
    out1 = run(cfg, tmp_path / "run1")
    pool_csv(tmp_path / "d.csv", flip_pool=True, ids_of_pool=pool_ids)  # every pool label flips
    out2 = run(config.load(tmp_path / "c.yaml"), tmp_path / "run2")
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    first_records = [strip(r) for r in read_records(out1 / "records.jsonl")]
    assert first_records == [strip(r) for r in read_records(out2 / "records.jsonl")]
    b = [r for r in first_records if r["split"] == "b"]
    assert b and all(r["n"] == 30 and r["unlabeled_fraction"] == 0.5 for r in b)


def test_a_whole_domain_as_pool_is_not_scored(tmp_path):
    path = pool_csv(tmp_path / "d.csv", flip_pool=False)
    cfg = config.parse(
        {
            "data": {
                "kind": "csv",
                "path": str(path),
                "text_column": "text",
                "label_column": "label",
                "domain_column": "domain",
                "id_domains": ["a"],
                "ood_domains": ["b"],
                "unlabeled": {"domains": ["b"], "fraction": 1},
            }
        }
    )
    benchmark = load_benchmark(cfg.data)
    assert benchmark.ood == [] and len(benchmark.unlabeled) == 60
    assert (benchmark.unlabeled.labels == -1).all()


def test_the_query_asks_for_the_most_disagreed_examples_and_picks_who_got_them_right():
    from types import SimpleNamespace

    from shiftlab.finetune.unlabeled import best_by_query, member_disagreement

    truth = np.array([0, 1, 0, 1, 1, 0])
    asked: list[np.ndarray] = []

    def oracle(index):
        asked.append(np.asarray(index))
        return truth[index]

    ctx = SimpleNamespace(name="divdis", benchmark=SimpleNamespace(pool_oracle=oracle))
    agree = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.8, 0.2]])
    second = agree.clone()
    second[[3, 4]] = torch.tensor([[0.9, 0.1], [0.8, 0.2]])  # disagrees on 3 and 4, and is wrong
    probs = torch.stack([second, agree])
    scores = member_disagreement(probs)
    assert scores[3] > 0 and scores[4] > 0 and scores[[0, 1, 2, 5]].abs().sum() == 0
    chosen, accuracy = best_by_query(ctx, probs, scores, queries=2)
    assert sorted(asked[0].tolist()) == [3, 4]  # only the two most-disagreed labels were read
    assert chosen == 1 and accuracy == [0.0, 1.0]
