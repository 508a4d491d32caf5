"""One report across run directories: ``shiftlab compare RUN_DIR [RUN_DIR ...] --out DIR``.

Two backbones, curated against uncurated data, several seeds: the runs' records are combined
into one list, each model prefixed by its run's folder name (``vit/full_ft``), and rendered by
the report's own code (:func:`shiftlab.report.render.render_report`): the same tables, intervals,
paired tests and summary as a single run's report. Each combined record keeps where its
predictions are (``run_dir``) and its model's name there (``run_model``), so the paired tests
read every model's per-example predictions from its own run.

Paired tests need the same examples: every run must hold the same splits, each with the same
example ids (in any order: examples are aligned by id to the first run's order, and resampled
with the first run's seed). Otherwise the comparison is refused with a one-line
:class:`~shiftlab.errors.RunDirError` before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shiftlab.atomic import write_atomic, write_bytes_atomic
from shiftlab.errors import RunDirError
from shiftlab.files import check_out_dir
from shiftlab.predictions import split_predictions
from shiftlab.report.curation import curation_section
from shiftlab.report.outcomes import Outcomes
from shiftlab.report.render import load_run, render_report, run_facts


def split_ids(run_dir: Path, records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Example ids (N,) of every split of a run, from the first stored record of each split.

    Raises:
        RunDirError: a record names no stored predictions.
    """
    ids: dict[str, np.ndarray] = {}
    for record in records:
        if record["split"] in ids:
            continue
        if not record.get("predictions") or not (run_dir / record["predictions"]).is_file():
            raise RunDirError(
                f"{run_dir} has no stored predictions for split '{record['split']}' "
                "(a run of an older shiftlab?); rerun it to compare it with other runs"
            )
        ids[record["split"]] = np.asarray(split_predictions(run_dir, record)[0]).astype(str)
    return ids


def check_same_examples(
    first: tuple[Path, dict[str, np.ndarray]], other: tuple[Path, dict[str, np.ndarray]]
) -> None:
    """Refuse two runs whose splits differ (names, or the example ids of a split).

    Raises:
        RunDirError: one line naming the first difference.
    """
    (a, a_ids), (b, b_ids) = first, other
    if set(a_ids) != set(b_ids):
        only_a = sorted(set(a_ids) - set(b_ids))
        only_b = sorted(set(b_ids) - set(a_ids))
        parts = [f"{a} alone has {', '.join(only_a)}"] if only_a else []
        parts += [f"{b} alone has {', '.join(only_b)}"] if only_b else []
        raise RunDirError(f"cannot compare {a} and {b}: their splits differ ({'; '.join(parts)})")
    for split, ids in a_ids.items():
        theirs = b_ids[split]
        if len(ids) != len(theirs) or set(ids) != set(theirs):
            differ = len(set(ids) ^ set(theirs))
            raise RunDirError(
                f"cannot compare {a} and {b}: split '{split}' holds other examples "
                f"({len(ids)} and {len(theirs)} examples, {differ} ids in only one run)"
            )


def _prefixed_baselines(runs: list[tuple[str, dict[str, Any]]]) -> list[str] | None:
    names: list[str] = []
    for name, config in runs:
        for baseline in (config.get("report") or {}).get("baselines") or []:
            names += [f"{name}/{baseline}", baseline]
    return list(dict.fromkeys(names)) or None


def combined_report(
    run_dirs: list[Path], reference: str | None = None
) -> tuple[str, str, dict[str, bytes]]:
    """HTML text, Markdown text and plots of one report across ``run_dirs``.

    Args:
        run_dirs: run directories holding the same splits of the same examples.
        reference: the paired comparisons' reference model (``RUN/MODEL``, or a model name of
            the first run that has it); default: the first run's ``report.reference``, else
            ``full_ft``, as in a single run's report.

    Raises:
        RunDirError: a folder is not a run directory, two share a folder name, or their splits
            differ.
    """
    if not run_dirs:
        raise RunDirError("compare needs at least one run directory")
    loaded = [(Path(d), *load_run(Path(d))) for d in run_dirs]
    names = [d.resolve().name for d, _, _ in loaded]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise RunDirError(
            f"two run directories are named '{twice}'; models are prefixed by folder name, so "
            "give each run its own folder name"
        )
    ids = [(d, split_ids(d, records)) for d, records, _ in loaded]
    for other in ids[1:]:
        check_same_examples(ids[0], other)

    combined: list[dict[str, Any]] = []
    for name, (run_dir, records, _) in zip(names, loaded, strict=True):
        combined += [
            {
                **r,
                "model": f"{name}/{r['model']}",
                "run": name,
                "run_dir": str(run_dir.resolve()),
                "run_model": r["model"],
            }
            for r in records
        ]
    first_config = loaded[0][2]
    report_cfg = dict(first_config.get("report") or {})
    configs = [(name, config) for name, (_, _, config) in zip(names, loaded, strict=True)]
    report_cfg["baselines"] = _prefixed_baselines(configs)
    if reference:
        report_cfg["reference"] = reference
    config = {**first_config, "report": report_cfg}

    tables, curves = [], {}
    for name, (run_dir, records, _) in zip(names, loaded, strict=True):
        run_tables, run_curves = curation_section(
            run_dir, [r for r in records if not r.get("trend_point")]
        )
        for table in run_tables:
            table.title = f"{name}: {table.title}"
        tables += run_tables
        curves.update({f"{name}/{k}": v for k, v in run_curves.items()})

    shown = [r for r in combined if not r.get("trend_point")]
    runs_line = ", ".join(
        f"{name} (seed {config.get('seed', '—')}, backbone "
        f"{(config.get('backbone') or {}).get('name', '—')})"
        for name, (_, _, config) in zip(names, loaded, strict=True)
    )
    meta = [("runs", runs_line)] + [
        (k, v)
        for k, v in run_facts(first_config, shown)
        if k in ("data", "OOD splits", "ID val / test size")
    ]
    seed = next((r.get("seed", 0) for r in loaded[0][1]), 0)
    outcomes = Outcomes(None, seed=seed, orders=ids[0][1])
    return render_report(
        combined,
        config,
        title=f"shiftlab comparison: {', '.join(names)}",
        meta=meta,
        outcomes=outcomes,
        curation=(tables, curves),
    )


def compare_runs(run_dirs: list[Path], out: Path, reference: str | None = None) -> Path:
    """Write ``report.html``, ``report.md`` and ``report_files/`` of a report across runs into
    ``out``; nothing is written when the runs cannot be compared.

    Raises:
        RunDirError: as :func:`combined_report`, or ``out`` is one of the runs.
        ConfigError: ``out`` is a file or cannot be written.
    """
    out = Path(out)
    if any(out.resolve() == Path(d).resolve() for d in run_dirs):
        raise RunDirError(f"--out {out} is one of the compared runs; choose another folder")
    check_out_dir(out)
    page, markdown, images = combined_report([Path(d) for d in run_dirs], reference)
    files = out / "report_files"
    files.mkdir(parents=True, exist_ok=True)
    for name, png in images.items():
        write_bytes_atomic(files / name, png)
    write_atomic(out / "report.md", markdown)
    write_atomic(out / "report.html", page)
    return out / "report.html"
