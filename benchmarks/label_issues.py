"""Finding known label flips: shiftlab's ``label_issues`` vs the plain cleanlab pipeline.

Data: VADER movie snippets (the run's ID split, 20% of the training labels flipped, seeded and
symmetric, the clean labels kept), the same MiniLM mean-pooled, normalised features for both.
shiftlab: the curation plan's ``label_issues`` score (K-fold linear probes, its options as
given). Plain: what a cleanlab user writes, ``LogisticRegression()`` with scikit-learn's
defaults, ``cross_val_predict(cv=5, method="predict_proba")`` and
``cleanlab.filter.find_label_issues(labels, pred_probs)`` with its defaults, on the rows in a
seeded random order (a user's file order is arbitrary). shiftlab's training split is sorted by
example id, and VADER's ids run by sentiment: unshuffled 5-fold CV on that order is also printed
("plain, label-sorted rows"), for it scores higher by an accident of order (each fold's rows
come from one stretch of ids). Prints each one's precision, recall and F1 against the true
flips, then ``ratio=`` (shiftlab's F1 over the plain pipeline's on shuffled rows) last.

    python benchmarks/label_issues.py [--per-domain 1000] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from cleanlab.filter import find_label_issues
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from shiftlab.config.load import parse
from shiftlab.curation.plan import CurationPlan
from shiftlab.data import load_benchmark
from shiftlab.features import FeatureCache
from shiftlab.models import load_backbone


def scores(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of ``flagged`` against the true flips."""
    hits = float((flagged & truth).sum())
    precision = hits / max(flagged.sum(), 1)
    recall = hits / max(truth.sum(), 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-12)


def run(per_domain: int, seed: int, options: dict, cache: FeatureCache, backbone) -> dict:
    cfg = parse(
        {
            "data": {
                "kind": "vader",
                "id_domains": ["movie"],
                "ood_domains": ["tweets"],
                "max_per_domain": per_domain,
                "max_per_ood_domain": 10,
                "label_noise": {"rate": 0.2, "kind": "symmetric", "seed": seed},
            },
            "backbone": {"name": "minilm", "max_length": 128},
            "seed": seed,
            "recipes": ["linear_probe"],
            "curation": {"scores": {"label_issues": options}},
        }
    )
    bench = load_benchmark(cfg.data)
    train = bench.train
    truth = train.labels != train.true_labels
    plan = CurationPlan(
        cfg.curation, [], bench, cache, backbone.featurizer, backbone.fingerprint,
        seed=seed, device=torch.device("cpu"),
    )  # fmt: skip
    plan.plan()
    ours = scores(plan.scores["label_issues"].flagged, truth)
    features = cache.get(backbone.featurizer, train, backbone.fingerprint).numpy()
    order = np.random.default_rng(seed).permutation(len(train))
    x, y = features[order], train.labels[order]
    probs = cross_val_predict(LogisticRegression(), x, y, cv=5, method="predict_proba")
    plain = scores(find_label_issues(y, probs), truth[order])
    probs = cross_val_predict(
        LogisticRegression(), features, train.labels, cv=5, method="predict_proba"
    )
    sorted_rows = scores(find_label_issues(train.labels, probs), truth)
    return {
        "n": len(train),
        "flips": int(truth.sum()),
        "shiftlab": ours,
        "plain": plain,
        "plain, label-sorted rows": sorted_rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-domain", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    args = parser.parse_args()
    backbone = load_backbone(parse({"data": {"kind": "vader"}}).backbone, torch.device("cpu"))
    cache = FeatureCache(None, batch_size=32)
    f1: dict[str, list[float]] = {"shiftlab": [], "plain": [], "plain, label-sorted rows": []}
    for seed in args.seeds:
        result = run(args.per_domain, seed, {}, cache, backbone)
        for who in f1:
            p, r, f = result[who]
            f1[who].append(f)
            print(f"seed {seed} n={result['n']} flips={result['flips']} {who:24s} "
                  f"precision {p:.3f} recall {r:.3f} F1 {f:.3f}")  # fmt: skip
    ours, plain = np.mean(f1["shiftlab"]), np.mean(f1["plain"])
    for who, values in f1.items():
        print(
            f"mean F1 {who}: {np.mean(values):.3f} (+- {np.std(values) / len(values) ** 0.5:.3f})"
        )
    print(f"ratio={ours / plain:.3f}")


if __name__ == "__main__":
    main()
