"""What the bootstrap intervals and paired tests cost in a finished run, against the run itself.

For every record of ``RUN_DIR`` with stored predictions, recomputes from those predictions
(``shiftlab.predictions.split_predictions``) the record's point metrics (the plain way:
``classification_metrics``, what a run without intervals computes) and its 95% bootstrap
intervals (``metric_intervals``, 1,000 resamples, the record's own seed), checks both equal the
record's, and times each; then times writing the report (``shiftlab report``: paired bootstrap
and McNemar tests, the what-to-deploy summary) once. The run's own wall time is read from the
run directory (``config.yaml`` is written when a run starts, ``records.jsonl`` last rewritten
when it ends), so run a fresh, uninterrupted run first:

    shiftlab run examples/quickstart.yaml --out runs/quickstart
    python benchmarks/bootstrap.py runs/quickstart

Prints ``ratio=`` (seconds of intervals + report over the run's seconds, i.e. the share of the
run the trustworthy-comparison work adds) last.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from shiftlab.evaluate.intervals import bootstrap_seed, metric_intervals
from shiftlab.evaluate.metrics import classification_metrics
from shiftlab.predictions import split_predictions
from shiftlab.report import write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    run_dir = args.run_dir
    records = [
        json.loads(line)
        for line in (run_dir / "records.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    scored = [r for r in records if r.get("predictions") and "ci" in r and "accuracy" in r]
    if not scored:
        raise SystemExit(f"{run_dir}: no records with intervals and predictions")
    point_s = interval_s = 0.0
    worst = 0.0
    for record in scored:
        _, labels, true_labels, logits = split_predictions(run_dir, record)
        truth = true_labels if true_labels is not None else labels
        groups = None  # the quickstart has no groups; group records keep their own check
        started = time.perf_counter()
        metrics = classification_metrics(logits, truth, groups)
        point_s += time.perf_counter() - started
        started = time.perf_counter()
        ci = metric_intervals(
            logits, truth, groups, seed=bootstrap_seed(record["seed"], record["split"])
        )
        interval_s += time.perf_counter() - started
        assert abs(metrics["accuracy"] - record["accuracy"]) < 1e-9, record["model"]
        for name in ("accuracy", "macro_f1", "ece", "nll"):
            worst = max(worst, float(np.max(np.abs(np.subtract(ci[name], record["ci"][name])))))
    started = time.perf_counter()
    write_report(run_dir)
    report_s = time.perf_counter() - started
    run_s = (run_dir / "records.jsonl").stat().st_mtime - (run_dir / "config.yaml").stat().st_mtime
    print(f"records={len(scored)} (each: 1,000 bootstrap resamples of 4 metrics)")
    print(f"max |interval - record's interval| = {worst:.2e}")
    print(f"point metrics (the plain way): {point_s:.2f} s")
    print(
        f"bootstrap intervals: {interval_s:.2f} s "
        f"({1000 * interval_s / len(scored):.1f} ms per record)"
    )
    print(f"report with paired tests and summary: {report_s:.2f} s")
    print(f"run: {run_s:.1f} s")
    print(f"ratio={(interval_s + report_s) / run_s:.4f}")


if __name__ == "__main__":
    main()
