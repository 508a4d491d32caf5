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

from shiftlab import distributed
from shiftlab.adapt.stream import adapted_records
from shiftlab.config import AdaptSpec, ConjugateSpec, RecipeSpec, RunConfig
from shiftlab.curation.actions import Variant
from shiftlab.curation.stage import CurationStage
from shiftlab.data import Benchmark, load_benchmark
from shiftlab.errors import AdaptError, ConfigError
from shiftlab.evaluate import evaluate_predictor
from shiftlab.evaluate.calibration import temperature_scaled
from shiftlab.evaluate.evaluator import model_logits
from shiftlab.features import FeatureCache
from shiftlab.finetune.context import RecipeContext
from shiftlab.models import Backbone, Classifier, Predictor, load_backbone
from shiftlab.precision import resolve_precision, set_precision
from shiftlab.predictions import Scored
from shiftlab.registry import ADAPT, FINETUNE, UNLEARN, unknown_name_message
from shiftlab.runtime import log, resolve_device, seed_everything
from shiftlab.store import RunStore, recipe_digest
from shiftlab.unlearn.run import run_unlearning, unlearn_entries, unlearn_specs
from shiftlab.unlearn.stage import forget_index


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


def capabilities(backbone: Backbone) -> set[str]:
    """What a backbone offers recipes (``Entry.requires`` names these)."""
    found = {backbone.modality, backbone.kind}
    if backbone.has_text_side:
        found.add("text_side")
    return found


def check_recipes(cfg: RunConfig, backbone: Backbone) -> None:
    """Every recipe must be able to work on the backbone (checked before any training).

    Raises:
        ConfigError: a recipe needs what the backbone lacks (e.g. a text side for prompts).
    """
    have = capabilities(backbone)
    why = {
        "text_side": "a text side to encode class prompts (e.g. open_clip or a text model)",
        "causal_lm": "a causal language model (e.g. smollm2-135m-instruct)",
        "encoder": "an encoder backbone (features for a linear head), not a language model",
    }
    for spec in cfg.recipes:
        needs = FINETUNE[spec.recipe].requires
        if needs and not needs & have:  # any one of the listed capabilities will do
            wanted = " or ".join(why.get(n, n) for n in sorted(needs))
            raise ConfigError(
                f"recipe '{spec.name}' needs {wanted}, which backbone '{backbone.name}' lacks; "
                "remove it or choose another backbone"
            )


def check_language_model(cfg: RunConfig, backbone: Backbone) -> None:
    """A language model needs a task; tasks, capabilities and conjugate prompts need one.

    Raises:
        ConfigError: a mismatch between the backbone and the config's LM sections.
    """
    if backbone.kind == "causal_lm":
        if cfg.task is None:
            raise ConfigError(
                f"backbone '{backbone.name}' is a language model: add a task: section (template "
                "and label_words, or an answer_column in the data)"
            )
        if cfg.adapt:
            raise ConfigError(
                "test-time adapters (adapt:) apply to classifiers, not language models"
            )
        return
    for section in ("task", "capabilities", "conjugate"):
        if getattr(cfg, section):
            raise ConfigError(
                f"{section}: applies to language models, but backbone '{backbone.name}' is a "
                "classifier's encoder; use e.g. backbone: smollm2-135m-instruct"
            )


def check_unlearning(cfg: RunConfig, backbone: Backbone, trains: list[str]) -> str | None:
    """The recipe entry whose predictor is unlearned (``unlearn.on``, default the first that
    trains); every method must suit the backbone.

    Raises:
        ConfigError: ``on`` names no training entry, or a method is for the other kind of model.
    """
    if cfg.unlearn is None:
        return None
    on = cfg.unlearn.on or (trains[0] if trains else None)
    if on not in trains:
        raise ConfigError(
            unknown_name_message("predictor to unlearn", str(on), trains).replace(
                "(known:", "(entries that train:"
            )
        )
    have = capabilities(backbone)
    for spec in cfg.unlearn.methods:
        needs = UNLEARN[spec.method].requires if spec.method != "retrain" else frozenset()
        if needs and not needs & have:
            kind = "language models" if "causal_lm" in needs else "classifiers"
            model = "a language model" if backbone.kind == "causal_lm" else "an encoder"
            raise ConfigError(
                f"unlearning method '{spec.method}' is for {kind}; backbone '{backbone.name}' "
                f"is {model}"
            )
    return on


def check_curation(cfg: RunConfig) -> list[str]:
    """The recipe entries retrained on curated sets (default: every entry that trains on the
    ID split itself, i.e. not zero_shot and not one that consumes other models).

    Raises:
        ConfigError: ``retrain`` or ``scorer`` names no suitable entry.
    """
    specs = {spec.name: spec for spec in cfg.recipes}
    trains = [
        name
        for name, spec in specs.items()
        if spec.recipe != "zero_shot" and not references(spec.config)
    ]
    curation = cfg.curation
    if curation.scorer != "linear_probe" and curation.scorer not in trains:
        raise ConfigError(
            unknown_name_message("curation scorer", curation.scorer, ["linear_probe", *trains])
        )
    chosen = trains if curation.retrain is None else curation.retrain
    for name in chosen:
        if name not in trains:
            raise ConfigError(
                unknown_name_message("recipe to retrain", name, trains).replace(
                    "(known:", "(entries that train:"
                )
            )
    return list(chosen) if cfg.curate else []


def curated_entry(variant: Variant, spec: RecipeSpec) -> str:
    """The run entry of recipe ``spec`` retrained on a curated set."""
    return f"curate.{variant.label}.{spec.name}"


def check_adapters(cfg: RunConfig, backbone: Backbone) -> None:
    """Every adapter must name predictors some recipe makes, and be able to work on the
    backbone (checked before any training).

    Raises:
        ConfigError: ``on`` names a predictor no recipe makes.
        AdaptError: an adapter cannot adapt this backbone (e.g. no normalisation layers).
    """
    entries = [spec.name for spec in cfg.recipes]
    for spec in cfg.adapt:
        for name in spec.on or []:
            if entry_of(name) not in entries:
                raise ConfigError(
                    unknown_name_message("predictor", name, entries).replace("(known:", "(recipes:")
                    + f" in adapt.{spec.name}.on"
                )
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


class Session:
    """The state of one run: benchmark, backbone, cache, store, and the predictors kept for
    later recipes and adapters."""

    def __init__(self, cfg: RunConfig, out: Path) -> None:
        distributed.setup(resolve_device(cfg.device))  # joins a launched multi-process run
        # The resolved precision goes into the run's config.yaml and is what trains and encodes.
        precision = resolve_precision(cfg.precision, resolve_device(cfg.device))
        cfg = dataclasses.replace(cfg, precision=precision)
        set_precision(precision)
        self.cfg = cfg
        self.depends = check_references(cfg)
        self.referenced = {name for spec in cfg.recipes for name in references(spec.config)}
        self.benchmark = load_benchmark(cfg.data)
        self.device = resolve_device(cfg.device)
        self.backbone = load_backbone(
            cfg.backbone, self.device, seed=cfg.seed, input_shape=self.benchmark.input_shape
        )
        check_language_model(cfg, self.backbone)
        if self.backbone.kind == "causal_lm":
            self.benchmark = self.language_model_benchmark()
        check_recipes(cfg, self.backbone)
        check_adapters(cfg, self.backbone)
        self.specs = {spec.name: spec for spec in cfg.recipes}
        self.retrain = check_curation(cfg)
        self.unlearn_on = check_unlearning(cfg, self.backbone, self.retrain_candidates())
        # Length-sorted batches of 32 encode fastest on a CPU (docs/benchmarks.md).
        batch = cfg.backbone.batch_size or (256 if self.device.type == "cuda" else 32)
        self.cache = FeatureCache(None, batch, self.device)
        if RunStore.holds_run_of(out, cfg):  # resuming: reuse the features already encoded
            self.cache.attach(RunStore(out).cache_dir)
        self.kept: dict[str, Predictor] = {}
        self.digests: dict[str, str] = {}
        self.extra = {"calibrate": cfg.calibrate}
        if precision != "fp32":  # fp32 digests stay those of earlier versions
            self.extra["precision"] = precision
        # Curation (and the forget set) is planned before the run directory exists: bad
        # input leaves nothing behind.
        forget_score = cfg.unlearn.forget.get("curation") if cfg.unlearn else None
        if forget_score is not None and forget_score not in cfg.curation.scores:
            cfg.curation.scores = {**cfg.curation.scores, forget_score: {}}
        self.curation = self.plan_curation() if cfg.curate or cfg.curation.scores else None
        self.forget = (
            forget_index(cfg.unlearn.forget, self.benchmark, self.curation)
            if cfg.unlearn is not None
            else None
        )
        self.store = RunStore.create(out, cfg)
        self.cache.attach(self.store.cache_dir)
        if self.curation is not None:
            with distributed.main_writes() as main:
                if main:
                    self.curation.write(self.store.path, self.benchmark.class_names)
        self.retrain_auc: dict[str, float] | None = None
        variants = self.curation.variants if self.curation is not None else []
        self.curated = [(v, self.specs[name]) for v in variants for name in self.retrain]
        self.entries = [
            *self.specs,
            *(curated_entry(v, spec) for v, spec in self.curated),
            *unlearn_entries(cfg),
            *(f"conjugate.{spec.name}" for spec in cfg.conjugate),
            *(f"adapt.{spec.name}" for spec in cfg.adapt),
        ]

    def produce(self, spec: RecipeSpec, benchmark: Benchmark | None = None) -> Iterator[Predictor]:
        """The predictors of one recipe entry, seeded by the run (on ``benchmark``: a curated
        training set; default the run's)."""
        seed_everything(self.cfg.seed)
        ctx = RecipeContext(
            spec.name,
            benchmark or self.benchmark,
            self.backbone,
            self.cache,
            self.cfg.prompts,
            self.cfg.seed,
            self.device,
            self.lookup,
        )
        yield from FINETUNE[spec.recipe].obj(ctx, spec.config)

    def language_model_benchmark(self) -> Benchmark:
        """The benchmark as prompts of the run's task, plus one split per capability."""
        from shiftlab.lm.tasks import chat_template, check_label_words, lm_benchmark

        tokenizer = self.backbone.featurizer.tokenizer
        capabilities = [(c, load_benchmark(c.data)) for c in self.cfg.capabilities]
        benchmark = lm_benchmark(
            self.benchmark,
            self.cfg.task,
            capabilities,
            seed=self.cfg.seed,
            chat=chat_template(tokenizer),
        )
        check_label_words(benchmark, tokenizer)
        return benchmark

    def retrain_candidates(self) -> list[str]:
        """Recipe entries that train on the ID split (what curation and unlearning retrain)."""
        return [
            name
            for name, spec in self.specs.items()
            if spec.recipe != "zero_shot" and not references(spec.config)
        ]

    def plan_curation(self) -> CurationStage:
        """Score the training split and build the curated sets (see :mod:`shiftlab.curation`)."""
        curation = self.cfg.curation
        scorer = None if curation.scorer == "linear_probe" else self.specs[curation.scorer]
        stage = CurationStage(
            curation,
            self.cfg.curate,
            self.benchmark,
            self.cache,
            self.backbone.featurizer,
            self.backbone.fingerprint,
            seed=self.cfg.seed,
            device=self.device,
            recipe_probabilities=self.fold_probabilities,
            scorer_spec=scorer,
        )
        stage.plan()
        return stage

    def fold_probabilities(
        self, spec: RecipeSpec, fit: np.ndarray, held_out: np.ndarray
    ) -> np.ndarray:
        """Probabilities (M, K) on the held-out training examples of recipe ``spec`` trained on
        the others (one fold of the curation scorer)."""
        train = self.benchmark.train
        fold = dataclasses.replace(self.benchmark, train=train.subset(fit))
        predictor = next(iter(self.produce(spec, fold)))
        held = train.subset(held_out)
        return model_logits(predictor.model, held, self.cache).softmax(dim=1).numpy()

    def lookup(self, name: str) -> Predictor:
        """A predictor of an earlier entry: in memory, saved, or made again."""
        if name not in self.kept and self.store.has_model(name):
            self.kept[name] = self.store.load_predictor(name, self.backbone, self.device)
        if name not in self.kept and entry_of(name) in self.specs:
            # Made by a recipe skipped on resume and not saved: make it again (deterministic).
            log(f"{escape(entry_of(name))}: rebuilding '{escape(name)}' for a later step")
            for predictor in self.produce(self.specs[entry_of(name)]):
                if predictor.name in self.referenced or predictor.name == name:
                    self.kept[predictor.name] = predictor
        if name not in self.kept:
            raise ConfigError(f"no predictor named '{name}' was made by an earlier recipe")
        return self.kept[name]

    def score(self, predictor: Predictor) -> list[Scored]:
        """Records, with their logits, of a predictor (and of its temperature-scaled twin when
        calibrating)."""
        predictors = [predictor]
        if self.cfg.calibrate and not predictor.info.get("trend_point"):
            predictors.append(temperature_scaled(predictor, self.benchmark.val, self.cache))
        scored = []
        for p in predictors:
            found = evaluate_predictor(
                p,
                self.benchmark.eval_splits(),
                self.cache,
                seed=self.cfg.seed,
                group_names=self.benchmark.group_names,
            )
            log(f"  {escape(p.name)}: {_summary([s.record for s in found])}")
            scored += found
        return scored

    def run_recipe(self, spec: RecipeSpec) -> None:
        """Run one recipe entry unless it finished before with the same options."""
        digest = recipe_digest(spec, [self.digests[d] for d in self.depends[spec.name]], self.extra)
        self.digests[spec.name] = digest
        if self.store.finished(spec.name, digest):
            log(f"{spec.name}: finished in an earlier run of {self.store.path}; skipped")
            return
        log(f"[bold]{spec.name}[/bold] ({spec.recipe})")
        records: list[Scored] = []
        for predictor in self.produce(spec):
            records += self.score(predictor)
            if predictor.save:
                self.store.save_predictor(predictor, self.backbone.fingerprint)
            if predictor.save or predictor.name in self.referenced:
                self.kept[predictor.name] = predictor
        self.store.finish(spec.name, digest, records)
        self.store.write_records(self.entries)

    def run_curated(self, variant: Variant, spec: RecipeSpec) -> None:
        """Retrain recipe ``spec`` on a curated training set; its predictors are named
        ``<curated set>/<name>`` and their records carry ``curation``."""
        key = curated_entry(variant, spec)
        extra = {**self.extra, "curated": variant.train.fingerprint, "curation": variant.info()}
        digest = recipe_digest(spec, [self.digests[d] for d in self.depends[spec.name]], extra)
        if self.store.finished(key, digest):
            log(f"{key}: finished in an earlier run of {self.store.path}; skipped")
            return
        log(f"[bold]{escape(variant.label)}/{spec.name}[/bold] ({spec.recipe} on a curated set)")
        curated = dataclasses.replace(self.benchmark, train=variant.train)
        scored: list[Scored] = []
        for predictor in self.produce(spec, curated):
            if predictor.info.get("trend_point"):
                continue  # the baseline trend comes from the uncurated run
            info = {k: v for k, v in predictor.info.items() if k != "standard"}
            renamed = dataclasses.replace(
                predictor,
                name=f"{variant.label}/{predictor.name}",
                save=False,
                info={**info, "curation": variant.info()},
            )
            scored += self.score(renamed)
        self.store.finish(key, digest, scored)
        self.store.write_records(self.entries)

    def run_conjugate(self, spec: ConjugateSpec) -> None:
        """Score each predictor the entry names on every evaluation split with its prompts (and
        label words) mapped by a prompt transform; records carry ``conjugate``."""
        from shiftlab.lm.conjugate import conjugated_outputs, conjugated_split
        from shiftlab.lm.generate import exact_match, rouge_l
        from shiftlab.lm.transforms import make_transform

        key = f"conjugate.{spec.name}"
        targets = spec.on if spec.on is not None else list(self.specs)
        digest = recipe_digest(spec, [self.digests[entry_of(t)] for t in targets], self.extra)
        if self.store.finished(key, digest):
            log(f"{key}: finished in an earlier run of {self.store.path}; skipped")
            return
        transform = make_transform(spec.transform, **spec.options)
        splits = [conjugated_split(s, transform) for s in self.benchmark.eval_splits()]
        scored: list[Scored] = []
        for name in targets:
            predictor = self.lookup(name)
            log(f"{key} on {escape(name)}")
            for item in evaluate_predictor(
                predictor,
                splits,
                self.cache,
                seed=self.cfg.seed,
                group_names=self.benchmark.group_names,
            ):
                if item.outputs is not None:  # generation: answers mapped back, then scored
                    outputs = conjugated_outputs(item.outputs, transform)
                    answers = [i.answer for i in item.split.inputs]
                    pairs = list(zip(outputs, answers, strict=True))
                    item.record["exact_match"] = float(np.mean([exact_match(*p) for p in pairs]))
                    item.record["rouge_l"] = float(np.mean([rouge_l(*p) for p in pairs]))
                    item.outputs = outputs
                item.record["conjugate"] = spec.name
                scored.append(item)
        self.store.finish(key, digest, scored)
        self.store.write_records(self.entries)

    def run_adapter(self, spec: AdaptSpec) -> None:
        """Adapt every predictor the entry names on every OOD split, unless done before."""
        key = f"adapt.{spec.name}"
        targets = spec.on if spec.on is not None else self.store.saved_predictors(list(self.specs))
        digest = recipe_digest(spec, [self.digests[entry_of(t)] for t in targets], self.extra)
        if self.store.finished(key, digest):
            log(f"{key}: finished in an earlier run of {self.store.path}; skipped")
            return
        records = []
        for name in targets:
            predictor = self.lookup(name)
            options = spec.config.for_model(predictor.params)
            adapter = ADAPT[spec.adapter].obj(predictor.model, options)
            records += adapted_records(
                adapter,
                spec.name,
                predictor,
                self.benchmark.ood,
                seed=self.cfg.seed,
                device=self.device,
                group_names=self.benchmark.group_names,
            )
        self.store.finish(key, digest, records)
        self.store.write_records(self.entries)


def run(cfg: RunConfig, out: Path, *, report: bool = True) -> Path:
    """Run every recipe, then every adapter, of ``cfg`` into run directory ``out``; write the
    report.

    Entries already finished in ``out`` with the same options are skipped (resume). All input
    is checked (config references, data, backbone, adapters) before ``out`` is created.
    """
    started = time.perf_counter()
    session = Session(cfg, out)
    for spec in cfg.recipes:
        session.run_recipe(spec)
    for variant, spec in session.curated:
        session.run_curated(variant, spec)
    for spec in unlearn_specs(cfg):
        run_unlearning(session, spec)
    for spec in cfg.conjugate:
        session.run_conjugate(spec)
    for spec in cfg.adapt:
        session.run_adapter(spec)
    session.store.write_records(session.entries)
    if report:
        from shiftlab.report import write_report

        with distributed.main_writes() as main:
            if main:
                write_report(session.store.path)
    log(f"run finished in {time.perf_counter() - started:.0f} s: {session.store.path}")
    return session.store.path
