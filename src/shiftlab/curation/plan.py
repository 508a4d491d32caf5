"""A run's curation plan: scores of the ID training split, curated training sets, and a look for
label errors in the evaluation splits (the curated stage, :mod:`shiftlab.stages.curated`,
retrains on the sets).

It runs before the run directory is made (so a curation that would empty a class is refused
first), from cached pretrained features: no encoder pass beyond the one per split. Its files, in
``RUN_DIR/curation/``, are readable without shiftlab:

- ``<score>.csv``: one row per training example: ``example_id, domain, given_label,
  true_label`` (label-noise benchmarks), ``score, flagged, suggested_label``, the score's own
  columns (``text_boxes`` of ``tmars``), ``input`` (the text, or the image path);
- ``near_duplicates_pairs.csv``: ``example_id, other_split, other_id, similarity``;
- ``test_label_issues.csv``: likely label errors of ID test and each OOD split, flagged by
  confident learning on a linear probe trained on the ID training split (which never saw them);
- ``summary.json``: per score its meaning and counts, detection precision / recall / F1 and
  AUROC against the true flips where the benchmark knows them, and every curated set.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from shiftlab.atomic import atomic_path, write_atomic
from shiftlab.config.sections import CurationConfig, EntrySpec
from shiftlab.curation.actions import Variant, check_classes
from shiftlab.curation.context import CurationContext, ScoreResult
from shiftlab.curation.detection import detection_metrics
from shiftlab.curation.label_issues import label_issues
from shiftlab.curation.oof import (
    out_of_sample_generic,
    out_of_sample_probabilities,
    out_of_sample_sweep,
)
from shiftlab.data.benchmark import Benchmark, Split
from shiftlab.errors import ConfigError
from shiftlab.features import FeatureCache
from shiftlab.finetune.linear_probe import LinearProbeOptions, fit_linear_probe
from shiftlab.registry import CURATE, CURATE_ACTIONS
from shiftlab.runtime import log
from shiftlab.typed import build

FOLDER = "curation"


def needed_scores(cfg: CurationConfig, actions: list[EntrySpec]) -> list[str]:
    """Scores to compute: what the actions need, then those asked for, each once."""
    names = [need for spec in actions for need in spec.options.needs()]
    names += list(cfg.scores)
    if cfg.test_label_errors or names:
        names.insert(0, "label_issues")
    return list(dict.fromkeys(names))


class CurationPlan:
    """Scores, curated training sets and test-label issues of one run's benchmark."""

    def __init__(
        self,
        cfg: CurationConfig,
        actions: list[EntrySpec],
        benchmark: Benchmark,
        cache: FeatureCache,
        pretrained: torch.nn.Module,
        fingerprint: str,
        *,
        seed: int,
        device: torch.device,
        recipe_probabilities: Callable[[EntrySpec, np.ndarray, np.ndarray], np.ndarray]
        | None = None,
        scorer_spec: EntrySpec | None = None,
    ) -> None:
        self.cfg, self.actions, self.benchmark = cfg, actions, benchmark
        self.cache, self.pretrained, self.fingerprint = cache, pretrained, fingerprint
        self.seed, self.device = seed, device
        self.recipe_probabilities, self.scorer_spec = recipe_probabilities, scorer_spec
        self._oof: np.ndarray | None = None
        self._probe: tuple[float, torch.Tensor, torch.Tensor] | None = None
        self.scores: dict[str, ScoreResult] = {}
        self.variants: list[Variant] = []
        self.test_issues: list[dict[str, Any]] = []

    def features(self, split: Split) -> torch.Tensor:
        return self.cache.get(self.pretrained, split, self.fingerprint)

    def probe(self) -> tuple[float, torch.Tensor, torch.Tensor]:
        """The linear probe on the whole training split, C chosen on ID val (as linear_probe):
        C, weight (K, D), bias (K,)."""
        if self._probe is None:
            bench = self.benchmark
            fitted = fit_linear_probe(
                self.features(bench.train).numpy(),
                bench.train.labels,
                self.features(bench.val).numpy(),
                bench.val.labels,
                bench.num_classes,
                LinearProbeOptions(trend_points=0),
                self.seed,
            )
            self._probe = (fitted.c, fitted.weight, fitted.bias)
        return self._probe

    def out_of_sample(self) -> np.ndarray:
        """(N, K) K-fold probabilities of every training example (computed once)."""
        if self._oof is None:
            train, k = self.benchmark.train, self.benchmark.num_classes
            if self.scorer_spec is None:
                features = self.features(train).numpy()
                self._oof = self.probe_probabilities(features, train.labels, k)
            else:
                spec, fit = self.scorer_spec, self.recipe_probabilities
                log(f"curation: {self.cfg.folds}-fold out-of-sample probabilities by {spec.name}")
                self._oof = out_of_sample_generic(
                    lambda fit_idx, held_idx: fit(spec, fit_idx, held_idx),
                    train.labels,
                    k,
                    folds=self.cfg.folds,
                    seed=self.seed,
                )
        return self._oof

    def probe_probabilities(self, features: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
        """K-fold probabilities of linear probes at the C that ``curation.probe_c`` names: the
        one of lowest out-of-sample log loss among half-decades from 1e-5 to 10, the
        linear_probe recipe's, or the number given."""

        def at(c: float) -> np.ndarray:
            folds, seed = self.cfg.folds, self.seed
            return out_of_sample_probabilities(features, labels, k, folds=folds, seed=seed, c=c)

        if self.cfg.probe_c == "id_val":
            return at(self.probe()[0])
        if self.cfg.probe_c != "log_loss":
            return at(float(self.cfg.probe_c))
        cs = [10.0**e for e in np.arange(-5.0, 1.01, 0.5)]
        sweep = out_of_sample_sweep(features, labels, k, cs, folds=self.cfg.folds, seed=self.seed)
        losses = [
            float(-np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())
            for p in sweep
        ]
        i = int(np.argmin(losses))
        log(f"curation: linear-probe C {cs[i]:.3g} (lowest out-of-sample log loss {losses[i]:.3f})")
        return sweep[i]

    def plan(self) -> list[Variant]:
        """Compute the scores, build every curated set, and check none loses a class.

        Raises:
            DataError: a curated set has no example left of a class.
        """
        ctx = CurationContext(
            self.benchmark,
            self.features,
            self.out_of_sample,
            self.seed,
            self.device,
            featurizer=self.pretrained,
        )
        for name in needed_scores(self.cfg, self.actions):
            entry = CURATE[name]
            options = build(entry.options, self.cfg.scores.get(name) or {}, f"curation.{name}")
            self.scores[name] = entry.obj(ctx, options)
            log(f"curation: {name} {self.scores[name].summary}")
        train = self.benchmark.train
        for spec in self.actions:
            for variant in CURATE_ACTIONS[spec.kind].obj(
                self.scores, train, spec.options, self.seed
            ):
                if spec.name != spec.kind:  # a named entry: its name replaces the action's
                    variant.label = spec.name + variant.label[len(spec.kind) :]
                check_classes(variant, self.benchmark.class_names, train.labels)
                self.variants.append(variant)
        labels = [v.label for v in self.variants]
        if len(set(labels)) != len(labels):
            raise ConfigError("two curate entries make the same curated set; name one")
        if self.cfg.test_label_errors:
            self.test_issues = self.evaluation_label_issues()
        return self.variants

    def evaluation_label_issues(self) -> list[dict[str, Any]]:
        """Likely label errors of ID test and every natural OOD split (confident learning on
        probabilities of the ID-trained probe, which never saw these examples)."""
        _, weight, bias = self.probe()
        rows = []
        for split in [self.benchmark.test, *self.benchmark.ood]:
            if "corruption" in split.info or len(np.unique(split.labels)) < 2:
                continue
            probs = torch.softmax(self.features(split) @ weight.T + bias, dim=1).numpy()
            found = label_issues(split.labels, probs)
            for i in np.flatnonzero(found.flagged):
                rows.append(
                    {
                        "split": split.name,
                        "example_id": str(split.ids[i]),
                        "given_label": int(split.labels[i]),
                        "true_label": None
                        if split.true_labels is None
                        else int(split.true_labels[i]),
                        "suggested_label": int(found.suggested[i]),
                        "quality": round(float(found.quality[i]), 6),
                        "input": str(split.inputs[i]),
                    }
                )
        return rows

    def summary(self) -> dict[str, Any]:
        """Per score its meaning, counts and, with true labels, how well it finds the flips."""
        train = self.benchmark.train
        truth = None if train.true_labels is None else train.labels != train.true_labels
        out: dict[str, Any] = {"scores": {}, "variants": [], "n_train": len(train)}
        if truth is not None:
            out["true_flips"] = int(truth.sum())
        for name, result in self.scores.items():
            item: dict[str, Any] = {"meaning": result.meaning, **result.summary}
            if truth is not None:
                if result.flagged is not None and name == "label_issues":
                    item["detection"] = detection_metrics(result.flagged, truth)
                if 0 < truth.sum() < len(truth):
                    oriented = -result.values if name == "label_issues" else result.values
                    item["auroc_true_flips"] = round(float(roc_auc_score(truth, oriented)), 4)
            out["scores"][name] = item
        out["variants"] = [{"label": v.label, **v.info()} for v in self.variants]
        out["test_label_issues"] = {
            split: sum(r["split"] == split for r in self.test_issues)
            for split in dict.fromkeys(r["split"] for r in self.test_issues)
        }
        return out

    def write(self, run_dir: Path, class_names: list[str]) -> None:
        """Write the per-example CSVs and summary.json into ``run_dir/curation/``."""
        folder = run_dir / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        train = self.benchmark.train
        for name, result in self.scores.items():
            rows = []
            for i in range(len(train)):
                rows.append(
                    {
                        "example_id": str(train.ids[i]),
                        "domain": "" if train.domains is None else str(train.domains[i]),
                        "given_label": class_names[int(train.labels[i])],
                        "true_label": ""
                        if train.true_labels is None
                        else class_names[int(train.true_labels[i])],
                        "score": round(float(result.values[i]), 6),
                        "flagged": "" if result.flagged is None else int(result.flagged[i]),
                        "suggested_label": ""
                        if result.suggested is None
                        else class_names[int(result.suggested[i])],
                        **{key: column_value(values[i]) for key, values in result.columns.items()},
                        "input": str(train.inputs[i]),
                    }
                )
            write_csv(folder / f"{name}.csv", rows)
            if result.pairs:
                splits = {s.name: s for s in [train, *self.benchmark.eval_splits()]}
                write_csv(
                    folder / f"{name}_pairs.csv",
                    [
                        {
                            "example_id": str(train.ids[i]),
                            "other_split": split,
                            "other_id": str(splits[split].ids[j]),
                            "similarity": round(similarity, 6),
                        }
                        for split, i, j, similarity in result.pairs
                    ],
                )
        for row in self.test_issues:
            for key in ("given_label", "true_label", "suggested_label"):
                if row[key] is not None:
                    row[key] = class_names[row[key]]
        write_csv(
            folder / "test_label_issues.csv",
            self.test_issues,
            [
                "split",
                "example_id",
                "given_label",
                "true_label",
                "suggested_label",
                "quality",
                "input",
            ],
        )
        write_atomic(folder / "summary.json", json.dumps(self.summary(), indent=1))


def column_value(value: Any) -> Any:
    """A score's extra per-example value as a CSV cell (floats rounded as scores are)."""
    if isinstance(value, float | np.floating):
        return round(float(value), 6)
    return value.item() if isinstance(value, np.generic) else value


def write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str] | None = None) -> None:
    """Rows as a UTF-8 CSV with a header (the fields of the first row unless given)."""
    fields = fields or (list(rows[0]) if rows else ["example_id"])
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
