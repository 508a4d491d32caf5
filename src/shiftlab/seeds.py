"""Seeds as an axis of a run: ``seeds: [0, 1, 2]`` repeats every training recipe once per seed.

A repeat of entry ``full_ft`` with seed 1 is the entry ``full_ft@seed1`` (its predictors
``full_ft@seed1``, ``wise_ft@seed1[alpha=0.5]``...); the repeat with the run's own ``seed``
keeps the plain name, so a single-seed run directory grows into a multi-seed one on resume. A
recipe that consumes another (wise_ft of full_ft) consumes the repeat of the same seed. Every
record of a repeated entry carries ``seed`` and ``seed_of`` (the plain name), which the report
groups into a mean and standard deviation over seeds.

zero_shot trains nothing and is not repeated. Adapters and conjugate prompting run on every
seed's repeats of the predictors they name (and adapters without ``on:`` on every saved
predictor); curation retrains and unlearning use the run seed's entries.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

MARK = "@seed"
NOT_REPEATED = frozenset({"zero_shot"})  # recipes whose predictors do not depend on a seed
_SUFFIX = re.compile(r"@seed-?\d+")


def seeded(name: str, seed: int) -> str:
    """``wise_ft[alpha=0.5]`` of seed 1 -> ``wise_ft@seed1[alpha=0.5]``."""
    base, bracket, rest = name.partition("[")
    return f"{base}{MARK}{seed}{bracket}{rest}"


def base_name(name: str) -> str:
    """The name without its seed: ``wise_ft@seed1[alpha=0.5]`` -> ``wise_ft[alpha=0.5]``."""
    return _SUFFIX.sub("", name)


def repeated(spec: Any) -> bool:
    """Whether recipe entry ``spec`` is repeated per seed."""
    return spec.kind not in NOT_REPEATED


def _renamed_refs(config: Any, rename: dict[str, str]) -> Any:
    """``config`` with each reference field's entry names mapped through ``rename``."""
    if config is None or not dataclasses.is_dataclass(config):
        return config
    changes = {}
    for f in dataclasses.fields(config):
        if not f.metadata.get("ref"):
            continue
        value = getattr(config, f.name)

        def one(name: str) -> str:
            entry = name.split("[", 1)[0]
            return seeded(name, rename[entry]) if entry in rename else name

        if isinstance(value, str):
            changes[f.name] = one(value)
        elif value is not None:
            changes[f.name] = [one(v) for v in value]
    return dataclasses.replace(config, **changes) if changes else config


def expand(recipes: list[Any], seeds: list[int] | None, run_seed: int) -> list[Any]:
    """The recipe entries of a run, each with its ``seed``: per seed (the run seed first, under
    the plain names), every repeated entry; an entry that is not repeated appears once, with the
    first seed."""
    if not seeds:
        return list(recipes)
    ordered = sorted(set(seeds), key=[run_seed, *seeds].index)
    expanded = []
    for i, seed in enumerate(ordered):
        rename = {} if seed == run_seed else {s.name: seed for s in recipes if repeated(s)}
        for spec in recipes:
            if not repeated(spec):
                if i == 0:
                    expanded.append(dataclasses.replace(spec, seed=seed))
            elif seed == run_seed:
                expanded.append(dataclasses.replace(spec, seed=seed))
            else:
                config = _renamed_refs(spec.options, rename)
                name = seeded(spec.name, seed)
                expanded.append(dataclasses.replace(spec, name=name, options=config, seed=seed))
    return expanded


def repeats(recipes: list[Any]) -> dict[str, list[int]]:
    """Plain entry name -> the seeds of its suffixed repeats."""
    found: dict[str, list[int]] = {}
    for spec in recipes:
        if MARK in spec.name:
            found.setdefault(base_name(spec.name), []).append(spec.seed)
    return found


def with_repeats(names: list[str], repeats: dict[str, list[int]]) -> list[str]:
    """Predictor names of explicit targets (an adapter's ``on:``) with every seed's repeats."""
    out = []
    for name in names:
        out.append(name)
        out += [seeded(name, s) for s in repeats.get(name.split("[", 1)[0], [])]
    return out


def seed_tags(model: str, run_seed: int) -> dict[str, Any]:
    """``seed`` and ``seed_of`` of a record of predictor ``model`` in a run with seeds."""
    found = _SUFFIX.search(model)
    seed = int(found.group(0)[len(MARK) :]) if found else run_seed
    return {"seed": seed, "seed_of": base_name(model)}
