"""The names that tie a run's entries together: which entry makes a predictor, what an entry's
options refer to, and the key of each kind of entry (``state/<key>.json``, records order).

Keys, in one place::

    full_ft, full_ft@seed1          a recipe entry (a seed's repeat)
    model_soup#ingredient-0         a part of a recipe (trained apart under parallel executors)
    #features                       the pretrained features of every split (parallel executors)
    curate.<set label>.<recipe>     a recipe retrained on a curated training set
    unlearn.<method>                an unlearning method (retrain, original, ...)
    conjugate.<name>                a conjugate prompt transform on language models
    adapt.<name>                    a test-time adapter on every OOD split
"""

from __future__ import annotations

import dataclasses
from typing import Any

FEATURES = "#features"


def references(options: Any) -> list[str]:
    """Predictor names an entry's options refer to (fields declared with ``ref``)."""
    if options is None or not dataclasses.is_dataclass(options):
        return []
    names: list[str] = []
    for f in dataclasses.fields(options):
        if f.metadata.get("ref"):
            value = getattr(options, f.name)
            names += [value] if isinstance(value, str) else list(value or [])
    return names


def entry_of(name: str) -> str:
    """The recipe entry that makes predictor ``name``: ``wise_ft[alpha=0.5]`` -> ``wise_ft``."""
    return name.split("[", 1)[0]


def part_key(entry: str, part: str) -> str:
    """The job of one part of a recipe entry."""
    return f"{entry}#{part}"


def curated_key(label: str, entry: str) -> str:
    """The entry of recipe ``entry`` retrained on the curated set ``label``."""
    return f"curate.{label}.{entry}"


def unlearn_key(method: str) -> str:
    """The entry of one unlearning method (or ``retrain``, ``original``)."""
    return f"unlearn.{method}"


def conjugate_key(name: str) -> str:
    """The entry of one conjugate prompt transform."""
    return f"conjugate.{name}"


def adapt_key(name: str) -> str:
    """The entry of one test-time adapter."""
    return f"adapt.{name}"
