"""WRENCH weak-supervision benchmarks (Zhang et al., NeurIPS 2021 Datasets and Benchmarks,
arXiv 2109.11377): ``youtube`` and ``sms`` spam detection, labelled by labelling functions.

Reads WRENCH's JSON files (``<dataset>/{train,valid,test}.json``: ``{id: {"label": gold,
"weak_labels": [one per labelling function, -1 = abstain], "data": {"text": ...}}}``) from
``path:`` (default ``$SHIFTLAB_DATA_DIR/wrench``). The training label is the majority vote of
the labelling functions (WRENCH's ``MajorityVoting``: ties go to the lower class index);
training examples on which every function abstains are dropped. The gold label is kept as each
example's true label, so models are scored on gold labels and label-issue detection is judged
against the true flips. ``valid`` and ``test`` are the ID val and test splits, labelled with gold
as in WRENCH's protocol; the other dataset's test split is the OOD domain (both are binary,
ham = 0, spam = 1). Example ids are ``<dataset>/<split>:<id>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.data.samples import under_data_dir
from shiftlab.errors import DataError
from shiftlab.registry import DATASETS
from shiftlab.runtime import data_dir
from shiftlab.typed import param

DATASETS_OF_WRENCH = ("youtube", "sms")
CLASS_NAMES = ["ham", "spam"]


@dataclass
class WrenchOptions:
    """Which WRENCH dataset, and where its files are."""

    dataset: Literal["youtube", "sms"] = param("youtube", "the ID dataset; the other is OOD")
    path: str | None = param(
        None, "folder holding youtube/ and sms/; default $SHIFTLAB_DATA_DIR/wrench"
    )


def majority_vote(weak: np.ndarray, num_classes: int) -> np.ndarray:
    """Majority vote per row of ``weak`` (N, F), -1 = abstain; -1 where every function abstains;
    ties go to the lower class index (argmax of the vote counts)."""
    counts = np.stack([(weak == k).sum(axis=1) for k in range(num_classes)], axis=1)
    votes = counts.argmax(axis=1)
    return np.where(counts.sum(axis=1) > 0, votes, -1)


def read_split(file: Path, prefix: str, weak_labels: bool) -> Domain:
    """One WRENCH JSON file as a domain: gold labels as true labels, and as given labels unless
    ``weak_labels`` (then the majority vote, abstain-only rows dropped)."""
    if not file.is_file():
        raise DataError(f"WRENCH file not found: {file}")
    rows = json.loads(file.read_text(encoding="utf-8"))
    ids = np.array([f"{prefix}:{key}" for key in rows], dtype=object)
    texts = [str(row["data"]["text"]) for row in rows.values()]
    gold = np.array([int(row["label"]) for row in rows.values()], dtype=np.int64)
    if not weak_labels:
        return Domain(texts, gold, ids=ids, true_labels=gold)
    weak = np.array([row["weak_labels"] for row in rows.values()], dtype=np.int64)
    given = majority_vote(weak, len(CLASS_NAMES))
    keep = np.flatnonzero(given >= 0)
    return Domain([texts[i] for i in keep], given[keep], ids=ids[keep], true_labels=gold[keep])


@DATASETS.register("wrench", options=WrenchOptions, fast=under_data_dir("wrench"))
def wrench(cfg: WrenchOptions, class_names: list[str] | None) -> LoadedData:
    """WRENCH youtube / sms spam: majority-vote training labels, gold kept for evaluation."""
    root = Path(cfg.path).expanduser() if cfg.path else None
    if root is None and data_dir():
        root = Path(data_dir()) / "wrench"
    if root is None or not root.is_dir():
        raise DataError(
            "wrench: set data.path (or SHIFTLAB_DATA_DIR) to the folder holding youtube/ and sms/"
        )
    if class_names is not None and len(class_names) != 2:
        raise DataError("WRENCH youtube and sms are binary: class_names must name 2 classes")
    other = next(d for d in DATASETS_OF_WRENCH if d != cfg.dataset)
    folder = root / cfg.dataset
    domains = {
        "train": read_split(folder / "train.json", f"{cfg.dataset}/train", weak_labels=True),
        "valid": read_split(folder / "valid.json", f"{cfg.dataset}/valid", weak_labels=False),
        "test": read_split(folder / "test.json", f"{cfg.dataset}/test", weak_labels=False),
        other: read_split(root / other / "test.json", f"{other}/test", weak_labels=False),
    }
    fixed = {"train": "train", "id_val": "valid", "id_test": "test"}
    return LoadedData(domains, list(class_names or CLASS_NAMES), "text", fixed_splits=fixed)
