"""The user's own text data: CSV or JSONL with text, label and (optional) domain columns."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.data.labels import encode_labels
from shiftlab.data.samples import sample_table
from shiftlab.errors import DataError
from shiftlab.registry import DATASETS, closest
from shiftlab.runtime import log
from shiftlab.typed import param

ALL = "all"  # the domain name when the data has no domain column


@dataclass
class TableOptions:
    """Columns of a CSV or JSONL file of labelled texts."""

    path: str = param("", "the CSV or JSONL file")
    text_column: str = param("text", "column holding the input text")
    label_column: str = param("label", "column holding the label (strings or integers)")
    domain_column: str | None = param(None, "column naming each row's domain (ID or OOD)")
    group_column: str | None = param(None, "optional column naming each row's group")
    id_column: str | None = param(
        None, "optional column of stable example ids; default the row's line number in the file"
    )
    answer_column: str | None = param(
        None, "column of reference answers: a generation task for language models (no labels)"
    )


#: leading bytes of files often given in place of a text table, and what they are
MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook?)",
    b"\xd0\xcf\x11\xe0": "an old Office file (an Excel .xls workbook?)",
    b"\x1f\x8b": "gzip-compressed data",
}
SNIFF_BYTES = 8192
RESAVE = {"csv": "re-save it as UTF-8 (Excel: Save As 'CSV UTF-8')", "jsonl": "re-save it as UTF-8"}


def _not_text(path: Path, what: str, fix: str) -> DataError:
    return DataError(f"{path} is not UTF-8 text: {what}; {fix}")


def _binary(path: Path, what: str, fmt: str) -> DataError:
    return _not_text(path, what, f"data.path must name a {fmt.upper()} file of UTF-8 text")


def _check_text(path: Path, fmt: str) -> None:
    """Refuse a binary file (an image, a workbook) before parsing it as text.

    Raises:
        DataError: the file is UTF-16, starts like a known binary format, or holds NUL bytes.
    """
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _not_text(path, "it is UTF-16 text", RESAVE[fmt])
    for magic, what in MAGIC.items():
        if head.startswith(magic):
            raise _binary(path, f"it looks like {what}", fmt)
    if b"\x00" in head:
        raise _binary(path, "it holds binary data (NUL bytes)", fmt)


def _decode_error(path: Path, fmt: str) -> DataError:
    """The one-line error for a file that is not valid UTF-8: where, and which byte."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        what = (
            f"byte 0x{data[exc.start]:02x} on line {line} is not valid UTF-8 "
            "(Latin-1 or Windows-1252 text?)"
        )
        return _not_text(path, what, RESAVE[fmt])
    return _not_text(path, "it cannot be decoded as UTF-8", RESAVE[fmt])


def rows_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        try:
            if reader.fieldnames is None:
                raise DataError(f"{path} is empty; it needs a header row naming the columns")
            yield from enumerate(reader, start=2)
        except UnicodeDecodeError:
            raise _decode_error(path, "csv") from None
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num} is not valid CSV: {exc}") from None


def rows_jsonl(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(encoding="utf-8-sig") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number} is not valid JSON: {exc.msg}") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{number} must hold a JSON object")
                yield number, row
        except UnicodeDecodeError:
            raise _decode_error(path, "jsonl") from None


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file, or of a JSONL one (``.jsonl`` / ``.json``), after
    checking that it is UTF-8 text."""
    fmt = "jsonl" if path.suffix.lower() in (".jsonl", ".json") else "csv"
    _check_text(path, fmt)
    return rows_csv(path) if fmt == "csv" else rows_jsonl(path)


def _column_error(path: Path, column: str, option: str, have: list[str]) -> DataError:
    hint = closest(column, have)
    more = f"; did you mean '{hint}'?" if hint else ""
    return DataError(
        f"column '{column}' (data.{option}) not found in {path}{more} (columns: {', '.join(have)})"
    )


def load_table(cfg: TableOptions, class_names: list[str] | None, fmt: str) -> LoadedData:
    """Read a CSV or JSONL file into domains of texts and labels.

    Rows with an empty text or label are skipped (and counted in the log).
    """
    if not cfg.path:
        raise DataError(f"data.path is required for kind '{fmt}'")
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    _check_text(path, fmt)
    rows = rows_csv(path) if fmt == "csv" else rows_jsonl(path)
    wanted = {
        "text_column": cfg.text_column,
        "label_column": cfg.label_column,
        "domain_column": cfg.domain_column,
        "group_column": cfg.group_column,
        "id_column": cfg.id_column,
        "answer_column": cfg.answer_column,
    }
    if cfg.answer_column is not None:  # answers instead of labels
        wanted["label_column"] = None
    texts: list[str] = []
    labels: list[str] = []
    domains: list[str] = []
    groups: list[str] = []
    ids: list[str] = []
    skipped = 0
    for number, row in rows:
        for option, column in wanted.items():
            if column is not None and column not in row:
                if number <= 2:
                    raise _column_error(path, column, option, [str(k) for k in row])
                raise DataError(f"{path}:{number} has no '{column}' field (data.{option})")
        text = row[cfg.text_column]
        label = row[cfg.answer_column] if cfg.answer_column else row[cfg.label_column]
        if text is None or label is None or not str(text).strip() or not str(label).strip():
            skipped += 1
            continue
        texts.append(str(text))
        labels.append(str(label))
        domains.append(str(row[cfg.domain_column]) if cfg.domain_column else ALL)
        if cfg.group_column:
            groups.append(str(row[cfg.group_column]))
        ids.append(str(row[cfg.id_column]) if cfg.id_column else f"{path.name}:{number}")
    if skipped:
        log(f"{path.name}: skipped {skipped} rows with an empty text or label")
    if not texts:
        raise DataError(f"{path} has no rows with both a text and a label")
    if cfg.id_column and len(set(ids)) != len(ids):
        repeated = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"id '{repeated}' appears twice in column '{cfg.id_column}' of {path}")
    answers = np.array(labels, dtype=object) if cfg.answer_column else None
    if answers is not None:
        encoded, names = np.zeros(len(labels), dtype=np.int64), ["answer"]
    else:
        encoded, names = encode_labels(labels, class_names, cfg.label_column)
    id_array = np.array(ids, dtype=object)
    group_ids, group_names = None, None
    if cfg.group_column:
        group_names = sorted(set(groups))
        lookup = {g: i for i, g in enumerate(group_names)}
        group_ids = np.array([lookup[g] for g in groups], dtype=np.int64)
    domain_array = np.array(domains)
    result: dict[str, Domain] = {}
    for name in dict.fromkeys(domains):  # first-appearance order
        index = np.flatnonzero(domain_array == name)
        result[name] = Domain(
            inputs=[texts[i] for i in index],
            labels=encoded[index],
            groups=None if group_ids is None else group_ids[index],
            ids=id_array[index],
            answers=None if answers is None else answers[index],
        )
    return LoadedData(result, names, "text", group_names)


@DATASETS.register(
    "csv", options=TableOptions, fast=lambda workdir, **_: sample_table(workdir, "csv")
)
def csv_table(cfg: TableOptions, class_names: list[str] | None) -> LoadedData:
    """Your own CSV file: text, label and optional domain / group columns."""
    return load_table(cfg, class_names, "csv")


@DATASETS.register(
    "jsonl", options=TableOptions, fast=lambda workdir, **_: sample_table(workdir, "jsonl")
)
def jsonl_table(cfg: TableOptions, class_names: list[str] | None) -> LoadedData:
    """Your own JSON-lines file: one object per line with text, label and optional domain keys."""
    return load_table(cfg, class_names, "jsonl")
