"""``shiftlab compare``: one report across runs, refused where the runs' splits differ.

``write_run`` (synthetic run directories with per-example predictions, records made by the real
``make_record``) is shared with tests/report/test_decision.py and test_browser.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from shiftlab import predictions
from shiftlab.cli import main
from shiftlab.compare import combined_report, compare_runs
from shiftlab.data.benchmark import Split
from shiftlab.errors import RunDirError
from shiftlab.evaluate.records import make_record
from shiftlab.models.classifier import Predictor
from shiftlab.predictions import Scored
from shiftlab.store import safe_name

# name, recipe, (ID accuracy, OOD accuracy), extra record keys
MODELS: list[tuple[str, str, tuple[float, float], dict[str, Any]]] = [
    ("zero_shot", "zero_shot", (0.62, 0.66), {}),
    ("linear_probe", "linear_probe", (0.74, 0.60), {"standard": True}),
    ("full_ft", "full_ft", (0.86, 0.64), {"standard": True}),
    ("full_ft+ts", "full_ft", (0.86, 0.64), {"calibrated": True}),  # same predictions
    ("lp_ft", "lp_ft", (0.85, 0.70), {}),
]
GROUP_NAMES = ["a/x", "a/y", "b/x", "b/y"]


def _code(name: str) -> int:
    return sum(ord(c) * 31**i for i, c in enumerate(name)) % 2**31


def _split_data(name: str, n: int, groups: bool) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(_code(name))
    labels = rng.integers(0, 2, n)
    return labels, (rng.integers(0, len(GROUP_NAMES), n) if groups else None)


def write_run(
    folder: Path,
    *,
    seed: int = 0,
    n: int = 150,
    ood: tuple[str, ...] = ("tweets", "nyt"),
    models: list[tuple[str, str, tuple[float, float], dict[str, Any]]] = MODELS,
    groups: bool = False,
    order_seed: int | None = None,
    id_offset: int = 0,
    report: dict[str, Any] | None = None,
) -> Path:
    """A run directory as the runner writes one: config.yaml, records.jsonl (records from
    ``make_record``, naming their predictions) and predictions/<model>.parquet.

    Example ``i`` of a split has id ``<split>:<i + id_offset>``; its label and every model's
    prediction depend on the split, the model and the id only, so runs that share ids share
    outcomes. ``order_seed`` stores the examples in a seeded random order instead.
    """
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    splits = [("id_val", "id_val"), ("id_test", "id_test")] + [(s, "ood") for s in ood]
    scored: dict[str, list[Scored]] = {}
    for split_name, role in splits:
        labels, group_ids = _split_data(split_name, n, groups)
        ids = np.array([f"{split_name}:{i + id_offset}" for i in range(n)])
        order = (
            np.arange(n) if order_seed is None else np.random.default_rng(order_seed).permutation(n)
        )
        split = Split(
            split_name,
            role,
            [f"text {i}" for i in ids[order]],
            labels[order],
            None if group_ids is None else group_ids[order],
            ids=ids[order],
        )
        for k, (name, recipe, (p_id, p_ood), extra) in enumerate(models):
            p = p_ood if role == "ood" else p_id
            twin = name.endswith("+ts")
            rng = np.random.default_rng([k - twin, _code(split_name), id_offset])
            correct = rng.random(n) < p
            margin = rng.uniform(0.2, 3.0, n)
            predicted = np.where(correct, labels, 1 - labels)
            logits = np.zeros((n, 2), dtype=np.float32)
            logits[np.arange(n), predicted] = margin * (0.4 if twin else 1.0)
            logits = torch.from_numpy(logits[order])
            predictor = Predictor(name, recipe, None, {}, info=dict(extra))  # type: ignore[arg-type]
            record = make_record(
                predictor, split, logits, seed=seed, group_names=GROUP_NAMES if groups else None
            )
            record["predictions"] = f"predictions/{safe_name(name)}.parquet"
            records.append(record)
            scored.setdefault(name, []).append(Scored(record, logits, split))
    for name, items in scored.items():
        predictions.write(folder / "predictions" / f"{safe_name(name)}.parquet", items)
    order = {m[0]: i for i, m in enumerate(models)}
    records.sort(key=lambda r: order[r["model"]])  # records.jsonl: model by model
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = {
        "data": {"kind": "synthetic", "id_domains": ["movie"]},
        "backbone": {"name": "tiny"},
        "seed": seed,
        "report": {"baselines": None, "link": "logit", **(report or {})},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_compare_writes_one_report_with_prefixed_models(tmp_path, capsys):
    a = write_run(tmp_path / "minilm")
    b = write_run(tmp_path / "bert", seed=3, order_seed=1)  # same examples, stored shuffled
    code = main(["compare", str(a), str(b), "--out", str(tmp_path / "both")])
    assert code == 0
    assert capsys.readouterr().out.strip().endswith("report.html")
    markdown = (tmp_path / "both" / "report.md").read_text()
    assert "# shiftlab comparison: minilm, bert" in markdown
    assert "| minilm/full_ft | full_ft |" in markdown and "| bert/lp_ft | lp_ft |" in markdown
    assert "### Paired comparison against minilm/full_ft" in markdown
    # bert's models make the same predictions on the same ids as minilm's: once aligned by id
    # the paired differences are exactly zero
    paired = markdown.split("### Paired comparison against minilm/full_ft", 1)[1].split("###")[0]
    line = next(r for r in paired.splitlines() if r.startswith("| bert/full_ft |"))
    assert line.count("+0.000 [+0.000, +0.000]") == 4  # ID test, tweets, nyt, OOD mean
    assert line.count("| 1.000 |") == 3  # McNemar: no discordant pair
    assert "- **runs**: minilm (seed 0, backbone tiny), bert (seed 3, backbone tiny)" in markdown
    assert (tmp_path / "both" / "report.html").is_file()
    assert (tmp_path / "both" / "report_files" / "id_vs_ood.png").is_file()


def test_compare_takes_a_reference_by_run_and_model(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b")
    _, markdown, _ = combined_report([a, b], reference="b/lp_ft")
    assert "### Paired comparison against b/lp_ft" in markdown
    _, markdown, _ = combined_report([a, b], reference="linear_probe")  # the first run's
    assert "### Paired comparison against a/linear_probe" in markdown


def test_compare_refuses_runs_whose_examples_differ(tmp_path, capsys):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", id_offset=5)  # 5 examples of each split differ
    out = tmp_path / "out"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(
        r"shiftlab: error: cannot compare .*a and .*b: split 'id_val' holds other examples "
        r"\(150 and 150 examples, 10 ids in only one run\)",
        err,
    ), err
    assert not out.exists()  # nothing written


def test_compare_refuses_runs_whose_splits_differ(tmp_path):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", ood=("tweets", "amazon"))
    with pytest.raises(RunDirError, match=r"their splits differ \(.*a alone has nyt; .*b alone"):
        compare_runs([a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_compare_refuses_runs_without_predictions_or_with_one_name(tmp_path):
    a = write_run(tmp_path / "a")
    old = write_run(tmp_path / "old")
    lines = (old / "records.jsonl").read_text().splitlines()
    stripped = [{k: v for k, v in json.loads(x).items() if k != "predictions"} for x in lines]
    (old / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stripped))
    with pytest.raises(RunDirError, match="has no stored predictions for split 'id_val'"):
        compare_runs([a, old], tmp_path / "out")
    twin = write_run(tmp_path / "x" / "a")
    with pytest.raises(RunDirError, match="two run directories are named 'a'"):
        compare_runs([a, twin], tmp_path / "out")
    with pytest.raises(RunDirError, match="has no records.jsonl"):
        compare_runs([a, tmp_path / "missing"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
