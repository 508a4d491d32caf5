"""``shiftlab membership CONFIG --out DIR``: score texts with known membership and measure each
membership score (AUROC, TPR at 1% and 5% FPR, scikit-learn).

The config names a causal LM backbone and a ``membership:`` section: a CSV or JSONL file of
texts with a member column (1 / true: in the model's training data), the scores, and k. Writes
``DIR/scores.csv`` (every text's every score), ``DIR/membership.json`` and a report.
"""

from __future__ import annotations

import csv
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from shiftlab.atomic import atomic_path, write_atomic
from shiftlab.commands.lm_config import check_output, read_lm_config
from shiftlab.errors import ConfigError, DataError
from shiftlab.registry import MEMBERSHIP
from shiftlab.report.tables import Table, fmt_interval
from shiftlab.typed import build, param


@dataclass
class MembershipConfig:
    """Texts with known membership, and the scores to measure."""

    path: str = param("", "CSV or JSONL file of texts", nonempty=True)
    text_column: str = param("text", "column of the texts")
    member_column: str = param("member", "column saying whether each text is a member")
    methods: list[str] = param(
        ["loss", "zlib", "min_k", "min_k_pp"], "membership scores", nonempty=True, unique=True
    )
    k: float = param(0.2, "fraction of tokens Min-K% and Min-K%++ average", within="(0, 1]")
    reference: str | None = param(None, "reference model of the `reference` score (name or path)")

    def __post_init__(self) -> None:
        for method in self.methods:
            MEMBERSHIP[method]  # unknown score: did-you-mean
        if "reference" in self.methods and not self.reference:
            raise ConfigError("membership score 'reference' needs membership.reference: a model")


def read_texts(cfg: MembershipConfig) -> tuple[list[str], np.ndarray]:
    """The texts and their membership (bool) from the file."""
    from shiftlab.data.table import rows_csv, rows_jsonl

    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise DataError(f"membership file not found: {path}")
    rows = rows_jsonl(path) if path.suffix in (".jsonl", ".json") else rows_csv(path)
    texts, members = [], []
    for number, row in rows:
        for column in (cfg.text_column, cfg.member_column):
            if column not in row:
                raise DataError(f"{path}:{number} has no '{column}' field")
        texts.append(str(row[cfg.text_column]))
        members.append(str(row[cfg.member_column]).strip().lower() in ("1", "true", "yes"))
    truth = np.asarray(members)
    if truth.all() or not truth.any():
        raise DataError(f"{path}: membership needs both members and non-members")
    return texts, truth


def run_membership(config_path: Path, out: Path) -> Path:
    """Score every text with every method; write scores, metrics and a report."""
    from shiftlab.membership import attack_intervals, attack_metrics, score_all
    from shiftlab.models import load_backbone

    backbone_cfg, section = read_lm_config(
        config_path, "membership", "membership scores read a language model's token probabilities"
    )
    cfg = build(MembershipConfig, section, "membership")
    check_output(out, "membership.json", "membership")
    texts, truth = read_texts(cfg)
    backbone = load_backbone(backbone_cfg, torch.device("cpu"))
    scores = score_all(
        backbone.featurizer.model,
        backbone.featurizer.tokenizer,
        texts,
        cfg.methods,
        k=cfg.k,
        reference=cfg.reference,
    )
    metrics = {
        m: {**attack_metrics(s, truth), "ci": attack_intervals(s, truth, seed=[0, i])}
        for i, (m, s) in enumerate(scores.items())
    }
    out.mkdir(parents=True, exist_ok=True)
    with (
        atomic_path(out / "scores.csv") as tmp,
        tmp.open("w", newline="", encoding="utf-8") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(["text", "member", *cfg.methods])
        for i, text in enumerate(texts):
            writer.writerow(
                [text, int(truth[i]), *[round(float(scores[m][i]), 6) for m in cfg.methods]]
            )
    write_atomic(out / "membership.json", json.dumps(metrics, indent=1))
    table = Table(
        f"Membership scores ({int(truth.sum())} members, {int((~truth).sum())} non-members)",
        ["score", "AUROC", "TPR at 1% FPR", "TPR at 5% FPR"],
        [
            [m, *(fmt_interval(v[k], v["ci"][k]) for k in ("auroc", "tpr_at_1fpr", "tpr_at_5fpr"))]
            for m, v in metrics.items()
        ],
        note="Higher scores mean 'member'. AUROC 0.5 is chance. Brackets: 95% bootstrap "
        "intervals, members and non-members resampled apart.",
    )
    write_atomic(out / "report.md", f"# shiftlab membership: {out.name}\n\n{table.to_markdown()}")
    page = f"<!doctype html><meta charset='utf-8'><title>{html.escape(out.name)}</title>"
    write_atomic(out / "report.html", page + table.to_html())
    return out / "report.html"


__all__ = ["MembershipConfig", "run_membership"]
