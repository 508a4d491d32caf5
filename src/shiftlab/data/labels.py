"""Map raw labels (strings or integers) to class indices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shiftlab.errors import DataError


def _as_int(value: str) -> int | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number == int(number) else None


def encode_labels(
    raw: Sequence[str], class_names: Sequence[str] | None, column: str
) -> tuple[np.ndarray, list[str]]:
    """Turn raw label strings into int64 indices and the class names they index.

    With ``class_names`` given, a label matches a class by name, or, when every label is an
    integer, by position. Without, the classes are the sorted distinct labels (numerically
    when all are integers).

    Raises:
        DataError: a label matches no class, or the column holds a single class.
    """
    raw = [str(v).strip() for v in raw]
    distinct = sorted(set(raw))
    as_ints = [_as_int(v) for v in distinct]
    all_int = all(v is not None for v in as_ints)
    if class_names is None:
        if all_int:
            names = [str(v) for v in sorted({v for v in as_ints if v is not None})]
            keys = [str(_as_int(v)) for v in raw]
        else:
            names, keys = distinct, raw
        lookup = {v: i for i, v in enumerate(names)}
        labels = np.array([lookup[k] for k in keys], dtype=np.int64)
    else:
        names = [str(c) for c in class_names]
        if len(set(names)) != len(names):
            raise DataError(f"class_names has duplicates: {names}")
        by_name = {v: i for i, v in enumerate(names)}
        if all(v in by_name for v in distinct):
            labels = np.array([by_name[v] for v in raw], dtype=np.int64)
        elif all_int and all(0 <= v < len(names) for v in as_ints):
            labels = np.array([_as_int(v) for v in raw], dtype=np.int64)
        else:
            bad = next(v for v in distinct if v not in by_name)
            raise DataError(
                f"label '{bad}' in column '{column}' is not among class_names {names}; "
                "fix class_names or the data"
            )
    if len(np.unique(labels)) < 2:
        only = names[int(labels[0])] if len(labels) else "no rows"
        raise DataError(
            f"label column '{column}' has only one class ('{only}'); "
            "a classifier needs at least two"
        )
    return labels, names
