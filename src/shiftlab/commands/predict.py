"""``shiftlab predict (RUN_DIR MODEL | EXPORT_DIR) --input FILE --out FILE``: batch inference
on new data, with the run's preprocessing.

Inputs: a CSV or JSONL file of texts (``--text-column``, default ``text``; ``--id-column``
optional, default the line number) or a folder of images (searched recursively; ids are the
paths relative to it). Output, by its extension: CSV or Parquet with ``id``, ``prediction``
(the class name) and one ``p_<class>`` column per class. Every input is read and checked before
anything runs, and the output is written at once at the end: a bad input leaves no file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from shiftlab.atomic import atomic_path
from shiftlab.commands.export import find_predictor, open_run
from shiftlab.data.benchmark import Split
from shiftlab.data.image_folder import IMAGE_SUFFIXES
from shiftlab.data.images import ImageFiles
from shiftlab.data.table import read_rows
from shiftlab.errors import ConfigError, DataError
from shiftlab.evaluate.records import model_logits
from shiftlab.exported import FORMAT_FILE, load
from shiftlab.files import check_out_dir

OUTPUT_SUFFIXES = (".csv", ".parquet")


def read_inputs(
    path: Path, text_column: str, id_column: str | None
) -> tuple[list[str], list[Any], str]:
    """Ids, inputs (texts, or image paths) and their kind (``text`` or ``image``).

    Raises:
        DataError: a missing file or column, an empty text, an unreadable row or image.
    """
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return [str(p.relative_to(path)) for p in files], [str(p) for p in files], "image"
    if not path.is_file():
        raise DataError(f"input not found: {path}")
    ids, texts = [], []
    for number, row in read_rows(path):
        for column in (text_column, id_column):
            if column is not None and column not in row:
                have = ", ".join(str(k) for k in row)
                raise DataError(f"{path}:{number} has no column '{column}' (columns: {have})")
        text = row[text_column]
        if text is None or not str(text).strip():
            raise DataError(f"{path}:{number}: empty text in column '{text_column}'")
        texts.append(str(text))
        ids.append(str(row[id_column]) if id_column else f"{path.name}:{number}")
    if not texts:
        raise DataError(f"{path} has no rows")
    return ids, texts, "text"


def check_images(paths: list[str]) -> None:
    """Raise a one-line DataError for the first image file that cannot be decoded."""
    from PIL import Image

    for path in paths:
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read image {path}: {exc}") from None


def run_probabilities(run_dir: Path, name: str, inputs: list[Any], kind: str) -> tuple:
    """Class probabilities of a run's model, through the path the run scored its splits with
    (:func:`shiftlab.evaluate.records.model_logits`: the run's featurizer, transform, batching)."""
    session, records = open_run(run_dir)
    model = find_predictor(session, records, name).model.eval()
    data = ImageFiles(inputs) if kind == "image" else list(inputs)
    split = Split("predict", "ood", data, np.zeros(len(inputs), dtype=np.int64))
    with torch.inference_mode():
        logits = model_logits(model, split, session.cache)
    return logits.float().softmax(-1).numpy(), session.benchmark.class_names


def predict(
    source: Path,
    model: str | None,
    input_path: Path,
    out: Path,
    *,
    text_column: str = "text",
    id_column: str | None = None,
) -> pd.DataFrame:
    """Predict every input of ``input_path`` with a run's model (``source`` a run directory
    and ``model`` a record's model name) or an export (``source`` an export folder); write and
    return the table."""
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(f"--out must end in .csv or .parquet, got {out.name}")
    check_out_dir(out.parent if str(out.parent) else Path("."), "predict --out")
    ids, inputs, kind = read_inputs(input_path, text_column, id_column)
    if kind == "image":
        check_images(inputs)
    exported = (source / FORMAT_FILE).is_file()
    if exported and model is not None:
        raise ConfigError(f"{source} is an export: give it without a model name")
    if not exported and model is None:
        raise ConfigError(f"{source} is a run directory: name the model to predict with")
    if exported:
        loaded = load(source)
        probs, class_names = loaded.predict(inputs), loaded.class_names
    else:
        probs, class_names = run_probabilities(source, model, inputs, kind)
    table = pd.DataFrame({"id": ids, "prediction": [class_names[i] for i in probs.argmax(1)]})
    for k, name in enumerate(class_names):
        table[f"p_{name}"] = probs[:, k]
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
    return table
