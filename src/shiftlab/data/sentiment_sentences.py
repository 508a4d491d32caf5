"""Sentiment Labelled Sentences (Kotzias et al., KDD 2015; UCI, CC BY 4.0).

Three domains of 1,000 sentences each (phones, movies, restaurants), labelled 0/1. Point
``path:`` at the folder holding ``{amazon_cells,imdb,yelp}_labelled.txt``; the default is
``$SHIFTLAB_DATA_DIR/sentiment-sentences``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.data.samples import under_data_dir
from shiftlab.errors import DataError
from shiftlab.registry import DATASETS
from shiftlab.runtime import data_dir
from shiftlab.typed import param

DOMAINS = ("amazon_cells", "imdb", "yelp")
CLASS_NAMES = ["negative", "positive"]


@dataclass
class SentimentSentencesOptions:
    """Where the three ``*_labelled.txt`` files are."""

    path: str | None = param(
        None, "folder of the files; default $SHIFTLAB_DATA_DIR/sentiment-sentences"
    )


def _folder(path: str | None) -> Path:
    if path is not None:
        return Path(path).expanduser()
    root = data_dir()
    if root is None:
        raise DataError(
            "sentiment_sentences needs data.path (the folder of *_labelled.txt) "
            "or the SHIFTLAB_DATA_DIR environment variable"
        )
    return Path(root) / "sentiment-sentences"


def _read(file: Path) -> Domain:
    texts, labels = [], []
    # Split on "\n" only: some sentences hold U+0085, where str.splitlines() would break.
    for number, line in enumerate(file.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        text, sep, label = line.rstrip("\r").rpartition("\t")
        if not sep or label.strip() not in ("0", "1"):
            raise DataError(f"{file}:{number} is not 'sentence<TAB>0|1'")
        texts.append(text.strip())
        labels.append(int(label))
    return Domain(texts, np.array(labels, dtype=np.int64))


@DATASETS.register(
    "sentiment_sentences",
    options=SentimentSentencesOptions,
    fast=under_data_dir("sentiment-sentences"),
)
def sentiment_sentences(
    cfg: SentimentSentencesOptions, class_names: list[str] | None
) -> LoadedData:
    """Sentiment Labelled Sentences: amazon_cells, imdb, yelp (1,000 sentences each)."""
    folder = _folder(cfg.path)
    if not folder.is_dir():
        raise DataError(f"sentiment-sentences folder not found: {folder} (data.path)")
    if class_names is not None and len(class_names) != 2:
        raise DataError("sentiment_sentences is binary: class_names must name 2 classes")
    domains = {}
    for domain in DOMAINS:
        file = folder / f"{domain}_labelled.txt"
        if not file.is_file():
            raise DataError(f"missing file {file.name} in {folder}")
        domains[domain] = _read(file)
    return LoadedData(domains, list(class_names or CLASS_NAMES), "text")
