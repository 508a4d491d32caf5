"""Per-example predictions: every record's logits, stored so any metric can be recomputed.

Each finished entry of a run (a recipe, an adapter, a curation step) writes one Parquet file,
``RUN_DIR/predictions/<entry>.parquet`` (Apache Arrow's ``pyarrow``), with one row per
(model, adapter, split, example)::

    model     string    the record's model
    adapter   string    the record's adapter (null: none)
    conjugate string    the record's conjugate prompt transform entry (null: none)
    split     string    the record's split
    example   string    the example's stable id
    label     int64     the label as given (what training and selection saw)
    true_label int64    the clean label of a label-noise benchmark (null elsewhere)
    group     int64     the example's group (null without groups)
    logits    fixed_size_list<float32, K>: the model's K logits for the example (NaN-padded
              to the largest K of the file; NaN for generation tasks)
    output    string    the generated answer (generation tasks; null elsewhere)

Every record names its file (``"predictions": "predictions/<entry>.parquet"``); pandas, polars
or DuckDB read these files without shiftlab. :func:`read` returns all of a run's rows as one
table; :func:`split_predictions` the arrays of one (model, adapter, split).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shiftlab.atomic import atomic_path
from shiftlab.data.benchmark import Split
from shiftlab.errors import RunDirError

FOLDER = "predictions"


@dataclass
class Scored:
    """A record together with the logits (N, K) it was computed from, on ``split``."""

    record: dict[str, Any]
    logits: torch.Tensor
    split: Split
    outputs: list[str] | None = None  # generated answers (generation tasks: no logits)


def _table(scored: Iterable[Scored]):  # -> pyarrow.Table
    import pyarrow as pa

    scored = list(scored)
    columns: dict[str, list[Any]] = {
        k: []
        for k in (
            "model",
            "adapter",
            "conjugate",
            "split",
            "example",
            "label",
            "true_label",
            "group",
        )
    }
    outputs: list[str | None] = []
    logits = []
    for item in scored:
        split, n = item.split, len(item.split)
        ids = split.ids if split.ids is not None else [f"{split.name}:{i}" for i in range(n)]
        columns["model"] += [item.record["model"]] * n
        columns["adapter"] += [item.record.get("adapter")] * n
        columns["conjugate"] += [item.record.get("conjugate")] * n
        columns["split"] += [item.record["split"]] * n
        columns["example"] += [str(i) for i in ids]
        columns["label"] += split.labels.tolist()
        columns["true_label"] += (
            [None] * n if split.true_labels is None else split.true_labels.tolist()
        )
        columns["group"] += [None] * n if split.groups is None else split.groups.tolist()
        outputs += item.outputs if item.outputs is not None else [None] * n
    widths = {item.logits.shape[1] for item in scored if item.outputs is None}
    k = max(max(widths, default=0), 1)  # no logits at all: one NaN column (Arrow needs K > 0)
    for item in scored:  # generation rows (no logits) and tasks of fewer classes: NaN padded
        values = item.logits.detach().float().cpu().numpy()
        padded = np.full((len(values), k), np.nan, dtype=np.float32)
        padded[:, : values.shape[1]] = values
        logits.append(padded)
    flat = np.concatenate(logits).reshape(-1) if logits else np.zeros(0, dtype=np.float32)
    arrays = {
        "model": pa.array(columns["model"], pa.string()).dictionary_encode(),
        "adapter": pa.array(columns["adapter"], pa.string()).dictionary_encode(),
        "conjugate": pa.array(columns["conjugate"], pa.string()).dictionary_encode(),
        "split": pa.array(columns["split"], pa.string()).dictionary_encode(),
        "example": pa.array(columns["example"], pa.string()),
        "label": pa.array(columns["label"], pa.int64()),
        "true_label": pa.array(columns["true_label"], pa.int64()),
        "group": pa.array(columns["group"], pa.int64()),
        "logits": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), k),
        "output": pa.array(outputs, pa.string()),
    }
    return pa.table(arrays)


def write(path: Path, scored: list[Scored]) -> None:
    """Write the rows of ``scored`` to ``path`` atomically (a temporary file, then a rename)."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(_table(scored), tmp)


def read_table(path: Path, columns: list[str] | None = None):  # -> pyarrow.Table
    """One predictions file (those ``columns`` of it, default all).

    Raises:
        RunDirError: the file is missing, or is not a Parquet file pyarrow can read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"predictions file not found: {path}; run again to write it")
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunDirError(
            f"predictions file {path} cannot be read ({problem}); delete it and run again"
        ) from None


def read(run_dir: Path):  # -> pyarrow.Table
    """Every stored prediction of a run, as one table (columns as in the module docstring)."""
    import pyarrow as pa

    files = sorted((Path(run_dir) / FOLDER).glob("*.parquet"))
    tables = [read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="permissive") if tables else None


def split_predictions(
    run_dir: Path, record: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Example ids (N,), given labels (N,), true labels (N,) or None, and logits (N, K) behind
    one record, read from the file it names."""
    import pyarrow.compute as pc

    table = read_table(Path(run_dir) / record["predictions"])
    adapter = record.get("adapter")
    mask = pc.and_(
        pc.equal(table["model"].cast("string"), record["model"]),
        pc.equal(table["split"].cast("string"), record["split"]),
    )
    adapters = table["adapter"].cast("string")
    mask = pc.and_(mask, pc.is_null(adapters) if adapter is None else pc.equal(adapters, adapter))
    if "conjugate" in table.column_names:  # files written before the column existed have none
        conjugates, conjugate = table["conjugate"].cast("string"), record.get("conjugate")
        mask = pc.and_(
            mask, pc.is_null(conjugates) if conjugate is None else pc.equal(conjugates, conjugate)
        )
    rows = table.filter(mask)
    logits = np.array(rows["logits"].combine_chunks().flatten()).reshape(rows.num_rows, -1)
    logits = logits[:, ~np.isnan(logits).all(axis=0)] if rows.num_rows else logits  # padding
    true = rows["true_label"]
    true_labels = None if true.null_count == rows.num_rows else np.asarray(true)
    return np.asarray(rows["example"]), np.asarray(rows["label"]), true_labels, logits
