"""Hugging Face ``datasets`` from disk: ``hf_datasets``.

Follows the ``datasets`` library's own ways of reading local data: a folder written by
``Dataset.save_to_disk`` (``load_from_disk``), or data files by format (``parquet``, ``csv``,
``json``, ``imagefolder``, through ``load_dataset`` with ``data_files``); nothing is fetched from
the Hub. Inputs are a text column, or an image column: an ``Image`` feature is read lazily, row
by row, by an :class:`~shiftlab.data.images.ImageReader` (keys ``hf:<row>``), a string column
as image file paths. A ``ClassLabel`` label column gives the class names; a domain column gives
the domains (else one domain, ``all``). Rows without a label are left out (and counted).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shiftlab._optional import require
from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.data.images import ImageFiles
from shiftlab.data.labels import encode_labels
from shiftlab.data.samples import sample_hf_dataset
from shiftlab.errors import DataError
from shiftlab.registry import DATASETS, closest
from shiftlab.runtime import cache_dir, log
from shiftlab.typed import param

ALL = "all"  # the domain name when the data has no domain column


@dataclass
class HFDatasetsOptions:
    """Where the dataset is and which columns hold what."""

    path: str = param("", "folder saved with save_to_disk; with format, the data files' folder")
    format: Literal["parquet", "csv", "json", "imagefolder"] | None = param(
        None, "read data files of this format (load_dataset) instead of a save_to_disk folder"
    )
    data_files: list[str] | dict[str, list[str]] | None = param(
        None, "with format: files (relative to path), or split name -> files"
    )
    dataset_split: str = param("train", "which split of a DatasetDict")
    image_column: str | None = param(None, "column of images; default the Image feature column")
    text_column: str | None = param(None, "column of texts (when there is no image column)")
    label_column: str = param("label", "column of labels (a ClassLabel's names are the classes)")
    domain_column: str | None = param(None, "column naming each row's domain; default one: all")


class HFImageReader:
    """Reads ``hf:<row>`` from the image column of a ``datasets.Dataset``, one row at a time.

    Pickles cheaply for DataLoader workers: a dataset read from disk pickles as its file paths.
    """

    def __init__(self, dataset: Any, column: str) -> None:
        self.dataset = dataset.select_columns([column])
        self.column = column
        self.identity = f"hf:{getattr(dataset, '_fingerprint', '')}:{len(dataset)}:{column}"

    def __call__(self, key: str):  # -> PIL.Image.Image
        """The image of row ``key`` (``hf:<row>``), in its stored mode."""
        return self.dataset[int(key.removeprefix("hf:"))][self.column]


def _open(cfg: HFDatasetsOptions) -> Any:
    datasets = require("datasets", "datasets")
    if not cfg.path:
        raise DataError("data.path is required for kind 'hf_datasets'")
    folder = Path(cfg.path).expanduser()
    if not folder.exists():
        raise DataError(f"hf_datasets: {folder} not found (data.path)")
    try:
        if cfg.format is None:
            return datasets.load_from_disk(str(folder))
        files = cfg.data_files
        if isinstance(files, list):
            files = [str(folder / f) for f in files]
        elif isinstance(files, dict):
            files = {split: [str(folder / f) for f in fs] for split, fs in files.items()}
        return datasets.load_dataset(
            cfg.format,
            data_dir=str(folder) if files is None else None,
            data_files=files,
            cache_dir=os.path.join(cache_dir(), "hf-datasets"),
        )
    except (FileNotFoundError, ValueError, OSError) as exc:
        how = "load_from_disk" if cfg.format is None else f"format {cfg.format}"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"hf_datasets: cannot read {folder} ({how}): {first}") from None


def _split(data: Any, split: str) -> Any:
    if not hasattr(data, "keys"):  # a Dataset, not a DatasetDict
        return data
    if split not in data:
        raise DataError(
            f"hf_datasets: no split '{split}' (data.dataset_split); it has {', '.join(data)}"
        )
    return data[split]


def _column(ds: Any, column: str, option: str) -> list[Any]:
    if column not in ds.column_names:
        hint = closest(column, ds.column_names)
        more = f"; did you mean '{hint}'?" if hint else ""
        raise DataError(
            f"column '{column}' (data.{option}) not found{more} "
            f"(columns: {', '.join(ds.column_names)})"
        )
    return ds.select_columns([column]).with_format("arrow")[:].column(column).to_pylist()


def _input_column(ds: Any, cfg: HFDatasetsOptions, image_feature: type) -> tuple[str, str]:
    if cfg.image_column:
        return cfg.image_column, "image"
    if cfg.text_column:
        return cfg.text_column, "text"
    found = [c for c, f in ds.features.items() if isinstance(f, image_feature)]
    if found:
        return found[0], "image"
    raise DataError(
        "hf_datasets: set data.image_column or data.text_column "
        f"(columns: {', '.join(ds.column_names)})"
    )


def _labels(
    ds: Any, column: str, class_names: list[str] | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The labelled rows, their labels and the class names (a ClassLabel's, unless given)."""
    raw = _column(ds, column, "label_column")
    names_of = getattr(ds.features[column], "names", None)  # a ClassLabel's names
    rows = np.flatnonzero([v is not None and v != -1 and str(v).strip() != "" for v in raw])
    if len(rows) < len(raw):
        log(f"hf_datasets: skipped {len(raw) - len(rows)} rows without a label")
    if not len(rows):
        raise DataError(f"hf_datasets: column '{column}' (data.label_column) holds no label")
    if names_of is not None and class_names is None:
        return rows, np.array([raw[i] for i in rows], dtype=np.int64), list(names_of)
    strings = [names_of[raw[i]] if names_of else str(raw[i]) for i in rows]
    labels, names = encode_labels(strings, class_names, column)
    return rows, labels, names


def _inputs(ds: Any, cfg: HFDatasetsOptions, column: str, modality: str, rows: np.ndarray) -> Any:
    """Texts, or images: read lazily from an Image feature, or files named by a string column."""
    datasets = require("datasets", "datasets")
    feature = ds.features.get(column)
    if modality == "image" and isinstance(feature, datasets.Image):
        if not feature.decode:
            ds = ds.cast_column(column, datasets.Image(decode=True))
        return ImageFiles([f"hf:{i}" for i in rows], reader=HFImageReader(ds, column))
    values = _column(ds, column, f"{modality}_column")
    if modality == "image":  # file paths, relative to the data's folder
        root = os.path.expanduser(cfg.path)
        return ImageFiles([os.path.join(root, str(values[i])) for i in rows])
    return [str(values[i]) for i in rows]


@DATASETS.register("hf_datasets", options=HFDatasetsOptions, fast=sample_hf_dataset)
def hf_datasets(cfg: HFDatasetsOptions, class_names: list[str] | None) -> LoadedData:
    """A Hugging Face dataset from disk (save_to_disk folder, or parquet/csv/json/imagefolder)."""
    datasets = require("datasets", "datasets")
    ds = _split(_open(cfg), cfg.dataset_split)
    column, modality = _input_column(ds, cfg, datasets.Image)
    rows, labels, names = _labels(ds, cfg.label_column, class_names)
    inputs = _inputs(ds, cfg, column, modality, rows)
    domain_of = (
        np.array([str(v) for v in _column(ds, cfg.domain_column, "domain_column")])[rows]
        if cfg.domain_column
        else np.full(len(rows), ALL)
    )
    domains: dict[str, Domain] = {}
    for name in dict.fromkeys(domain_of.tolist()):  # first-appearance order
        index = np.flatnonzero(domain_of == name)
        part = inputs.subset(index) if modality == "image" else [inputs[i] for i in index]
        domains[name] = Domain(part, labels[index])
    log(f"hf_datasets {cfg.path}: " + ", ".join(f"{d} {len(v)}" for d, v in domains.items()))
    return LoadedData(domains, names, "image" if modality == "image" else "text")
