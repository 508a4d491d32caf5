"""The forget set of a run's unlearning stage: which training examples ``unlearn.forget``
names (ids, a domain, a class, or what a curation score flagged), fixed before the run
directory exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shiftlab.data.benchmark import Benchmark
from shiftlab.errors import ConfigError, DataError
from shiftlab.registry import closest


def forget_index(selector: dict[str, Any], benchmark: Benchmark, curation: Any) -> np.ndarray:
    """Indices (into the training split) of the examples to forget.

    Raises:
        DataError: ids that do not exist (the first few named), or a set that is empty or
            covers every training example.
        ConfigError: a class, domain or curation score that does not exist.
    """
    ((kind, value),) = selector.items()
    train = benchmark.train
    ids = np.asarray(train.ids).astype(str)
    if kind == "ids":
        wanted = value
        if isinstance(value, str):
            path = Path(value).expanduser()
            if not path.is_file():
                raise DataError(f"unlearn.forget.ids: file not found: {path}")
            wanted = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        wanted = [str(w) for w in wanted if str(w).strip()]
        unknown = sorted(set(wanted) - set(ids))
        if unknown:
            raise DataError(
                f"unlearn.forget.ids: {len(unknown)} ids are not training examples, e.g. "
                + ", ".join(unknown[:3])
            )
        mask = np.isin(ids, wanted)
    elif kind == "class":
        if value not in benchmark.class_names:
            hint = closest(str(value), benchmark.class_names)
            more = f"; did you mean '{hint}'?" if hint else ""
            raise ConfigError(f"unlearn.forget.class: no class '{value}'{more}")
        mask = train.labels == benchmark.class_names.index(value)
    elif kind == "domain":  # one domain, or a list of them
        names = [train, *benchmark.eval_splits()]
        members: set[str] = set()
        for domain in [value] if isinstance(value, str) else list(value):
            found = set()
            for split in names:
                if split.domains is not None and split.ids is not None:
                    found |= set(np.asarray(split.ids)[split.domains == domain].astype(str))
            if not found:
                known = sorted(
                    {str(d) for s in names if s.domains is not None for d in set(s.domains)}
                )
                raise ConfigError(
                    f"unlearn.forget.domain: no domain '{domain}' (known: {', '.join(known)})"
                )
            members |= found
        mask = np.isin(ids, sorted(members))
    else:  # curation
        if curation is None or value not in curation.scores:
            raise ConfigError(
                f"unlearn.forget.curation: {value} is not a computed curation score; add it to "
                "curation.scores (or to curate:)"
            )
        flagged = curation.scores[value].flagged
        if flagged is None:
            raise ConfigError(f"unlearn.forget.curation: score '{value}' flags nothing")
        mask = flagged
    index = np.flatnonzero(mask)
    if len(index) == 0:
        raise DataError(f"unlearn.forget ({kind}: {value}) selects no training example")
    if len(index) == len(train):
        raise DataError(f"unlearn.forget ({kind}: {value}) covers every training example")
    return index
