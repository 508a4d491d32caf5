"""One run: benchmark -> backbone -> recipes -> records -> report, resumable per recipe."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from torch import nn

from shiftlab.adapt.stream import adapted_records
from shiftlab.config import RecipeSpec, RunConfig
from shiftlab.data import load_benchmark
from shiftlab.errors import AdaptError, ConfigError
from shiftlab.evaluate import evaluate_predictor
from shiftlab.evaluate.calibration import temperature_scaled
from shiftlab.features import FeatureCache
from shiftlab.finetune.context import RecipeContext
from shiftlab.models import Backbone, Classifier, Predictor, load_backbone
from shiftlab.registry import ADAPT, FINETUNE
from shiftlab.runtime import log, resolve_device, seed_everything
from shiftlab.store import RunStore, recipe_digest


def references(spec_config: Any) -> list[str]:
    """Predictor names a recipe's options refer to (fields declared with ``ref``)."""
    if spec_config is None or not dataclasses.is_dataclass(spec_config):
        return []
    names: list[str] = []
    for f in dataclasses.fields(spec_config):
        if f.metadata.get("ref"):
            value = getattr(spec_config, f.name)
            names += [value] if isinstance(value, str) else list(value or [])
    return names


def entry_of(name: str) -> str:
    """The recipe entry that makes predictor ``name``: ``wise_ft[alpha=0.5]`` -> ``wise_ft``."""
    return name.split("[", 1)[0]


def check_references(cfg: RunConfig) -> dict[str, list[str]]:
    """Every referenced predictor must come from an earlier recipe entry; return the entries
    each recipe depends on.

    Raises:
        ConfigError: a reference names no earlier entry.
    """
    earlier: list[str] = []
    depends: dict[str, list[str]] = {}
    for spec in cfg.recipes:
        depends[spec.name] = []
        for name in references(spec.config):
            if entry_of(name) not in earlier:
                have = ", ".join(earlier) or "none"
                raise ConfigError(
                    f"recipe '{spec.name}' uses predictor '{name}', which no recipe before it "
                    f"makes (earlier recipes: {have}); add it to recipes before '{spec.name}'"
                )
            depends[spec.name].append(entry_of(name))
        earlier.append(spec.name)
    return depends


def check_adapters(cfg: RunConfig, backbone: Backbone) -> None:
    """Every adapter must be able to work on the backbone (checked before any training).

    Raises:
        AdaptError: an adapter cannot adapt this backbone (e.g. no normalisation layers).
    """
    for spec in cfg.adapt:
        probe = Classifier(backbone.featurizer, nn.Linear(1, 1))
        try:
            ADAPT[spec.adapter].obj(probe, spec.config)
        except AdaptError as exc:
            raise AdaptError(
                f"adapter '{spec.name}' cannot adapt backbone '{backbone.name}': {exc}"
            ) from None


def _summary(records: list[dict[str, Any]]) -> str:
    test = [r["accuracy"] for r in records if r["role"] == "id_test"]
    ood = [r["accuracy"] for r in records if r["role"] == "ood"]
    parts = [f"ID test {test[0]:.3f}"] if test else []
    if ood:
        parts.append(f"OOD mean {np.mean(ood):.3f}")
    return ", ".join(parts)


def run(cfg: RunConfig, out: Path, *, report: bool = True) -> Path:
    """Run every recipe of ``cfg`` into run directory ``out`` and write the report.

    Recipes already finished in ``out`` with the same options are skipped (resume). All input
    is checked (config references, data, backbone) before ``out`` is created.
    """
    started = time.perf_counter()
    depends = check_references(cfg)
    referenced = {name for spec in cfg.recipes for name in references(spec.config)}
    benchmark = load_benchmark(cfg.data)
    device = resolve_device(cfg.device)
    backbone = load_backbone(cfg.backbone, device, seed=cfg.seed, input_shape=benchmark.input_shape)
    check_adapters(cfg, backbone)
    store = RunStore.create(out, cfg)
    # Length-sorted batches of 32 encode fastest on a CPU (docs/benchmarks.md).
    encode_batch = cfg.backbone.batch_size or (256 if device.type == "cuda" else 32)
    cache = FeatureCache(store.cache_dir, encode_batch, device)
    specs = {spec.name: spec for spec in cfg.recipes}
    names = [*specs, *(f"adapt.{spec.name}" for spec in cfg.adapt)]
    kept: dict[str, Predictor] = {}

    def produce(spec: RecipeSpec) -> Iterator[Predictor]:
        seed_everything(cfg.seed)
        ctx = RecipeContext(
            spec.name, benchmark, backbone, cache, cfg.prompts, cfg.seed, device, lookup
        )
        yield from FINETUNE[spec.recipe].obj(ctx, spec.config)

    def lookup(name: str) -> Predictor:
        if name not in kept and store.has_model(name):
            kept[name] = store.load_predictor(name, backbone, device)
        if name not in kept and entry_of(name) in specs:
            # Made by a recipe skipped on resume and not saved: make it again (deterministic).
            log(f"{escape(entry_of(name))}: rebuilding '{escape(name)}' for a later recipe")
            for predictor in produce(specs[entry_of(name)]):
                if predictor.name in referenced:
                    kept[predictor.name] = predictor
        if name not in kept:
            raise ConfigError(f"no predictor named '{name}' was made by an earlier recipe")
        return kept[name]

    digests: dict[str, str] = {}
    extra = {"calibrate": cfg.calibrate}
    for spec in cfg.recipes:
        digest = recipe_digest(spec, [digests[d] for d in depends[spec.name]], extra)
        digests[spec.name] = digest
        if store.finished(spec.name, digest):
            log(f"{spec.name}: finished in an earlier run of {out}; skipped")
            continue
        log(f"[bold]{spec.name}[/bold] ({spec.recipe})")
        records: list[dict[str, Any]] = []
        for predictor in produce(spec):
            scored = [predictor]
            if cfg.calibrate:
                scored.append(temperature_scaled(predictor, benchmark.val, cache))
            for p in scored:
                found = evaluate_predictor(
                    p,
                    benchmark.eval_splits(),
                    cache,
                    seed=cfg.seed,
                    group_names=benchmark.group_names,
                )
                log(f"  {escape(p.name)}: {_summary(found)}")
                records += found
            if predictor.save:
                store.save_predictor(predictor, backbone.fingerprint)
            if predictor.save or predictor.name in referenced:
                kept[predictor.name] = predictor
        store.finish(spec.name, digest, records)
        store.write_records(names)
    for spec in cfg.adapt:
        key = f"adapt.{spec.name}"
        targets = spec.on if spec.on is not None else store.saved_predictors(list(specs))
        digest = recipe_digest(spec, [digests[entry_of(t)] for t in targets], extra)
        if store.finished(key, digest):
            log(f"{key}: finished in an earlier run of {out}; skipped")
            continue
        records = []
        for name in targets:
            predictor = lookup(name)
            adapter = ADAPT[spec.adapter].obj(
                predictor.model, spec.config.for_model(predictor.params)
            )
            records += adapted_records(
                adapter,
                spec.name,
                predictor,
                benchmark.ood,
                seed=cfg.seed,
                device=device,
                group_names=benchmark.group_names,
            )
        store.finish(key, digest, records)
        store.write_records(names)
    store.write_records(names)
    if report:
        from shiftlab.report import write_report

        write_report(store.path)
    log(f"run finished in {time.perf_counter() - started:.0f} s: {store.path}")
    return store.path
