"""One run: benchmark -> backbone -> jobs (recipes, curated retrains, unlearning, conjugate
prompts, adapters) -> records -> report, resumable per entry.

A :class:`Session` holds what every job needs and knows how to prepare (digest, skip when
finished), compute and finish each job; an executor (:mod:`shiftlab.executors`) decides where
jobs compute: in this process, or as Ray tasks. Only the driver (the main process) finishes jobs,
so only it writes state and ``records.jsonl``."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape

from shiftlab import distributed, seeds
from shiftlab.adapt.stream import adapted_records
from shiftlab.checks import (
    check_adapters,
    check_curation,
    check_language_model,
    check_recipes,
    check_references,
    check_unlearning,
    curated_entry,
    entry_of,
    references,
)
from shiftlab.config import RecipeSpec, RunConfig
from shiftlab.curation.actions import Variant
from shiftlab.curation.stage import CurationStage
from shiftlab.data import Benchmark, load_benchmark
from shiftlab.errors import ConfigError
from shiftlab.evaluate import evaluate_predictor
from shiftlab.evaluate.calibration import temperature_scaled
from shiftlab.evaluate.evaluator import model_logits
from shiftlab.features import FeatureCache
from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.trainer import checkpoints
from shiftlab.jobs import Job
from shiftlab.models import Predictor, load_backbone
from shiftlab.precision import resolve_precision, set_precision
from shiftlab.predictions import Scored
from shiftlab.registry import ADAPT, FINETUNE
from shiftlab.runtime import log, resolve_device, seed_everything
from shiftlab.store import RunStore, recipe_digest, safe_name
from shiftlab.unlearn.run import run_unlearning, unlearn_entries, unlearn_specs
from shiftlab.unlearn.stage import forget_index


def _summary(records: list[dict[str, Any]]) -> str:
    """One log line: ID test and OOD mean accuracy (ROUGE-L for generation tasks)."""
    from shiftlab.report.language import score_of as score

    test = [score(r) for r in records if r["role"] == "id_test" and score(r) is not None]
    ood = [
        score(r)
        for r in records
        if r["role"] == "ood" and not r.get("capability") and score(r) is not None
    ]  # as the report's OOD mean: the task's own OOD splits, not other tasks
    name = "" if any("accuracy" in r for r in records) else " ROUGE-L"
    parts = [f"ID test{name} {test[0]:.3f}"] if test else []
    if ood:
        parts.append(f"OOD mean{name} {np.mean(ood):.3f}")
    return ", ".join(parts)


class Session:
    """The state of one run: benchmark, backbone, cache, store, and the predictors kept for
    later jobs.

    ``worker=True`` opens a run the driver made (a Ray worker): nothing is planned or written
    but models, features and stashed parts."""

    def __init__(self, cfg: RunConfig, out: Path, *, worker: bool = False) -> None:
        device = resolve_device(cfg.device)
        distributed.setup(device)  # joins a launched multi-process run
        # The resolved precision goes into the run's config.yaml and is what trains and encodes.
        precision = resolve_precision(cfg.precision, device)
        cfg = dataclasses.replace(cfg, precision=precision)
        set_precision(precision)
        self.cfg, self.device = cfg, device
        self.recipes = seeds.expand(cfg.recipes, cfg.seeds, cfg.seed)
        self.repeats = seeds.repeats(self.recipes)
        self.depends = check_references(self.recipes)
        self.referenced = {name for spec in self.recipes for name in references(spec.config)}
        self.benchmark = load_benchmark(cfg.data)
        self.backbone = load_backbone(
            cfg.backbone, device, seed=cfg.seed, input_shape=self.benchmark.input_shape
        )
        check_language_model(cfg, self.backbone)
        if self.backbone.kind == "causal_lm":
            self.benchmark = self.language_model_benchmark()
        check_recipes(cfg, self.backbone)
        check_adapters(cfg, self.backbone)
        self.specs = {spec.name: spec for spec in self.recipes}
        self.retrain = check_curation(cfg)
        self.unlearn_on = check_unlearning(cfg, self.backbone, self.retrain_candidates())
        # Length-sorted batches of 32 encode fastest on a CPU (docs/benchmarks.md).
        batch = cfg.backbone.batch_size or (256 if device.type == "cuda" else 32)
        self.cache = FeatureCache(None, batch, device)
        self.kept: dict[str, Predictor] = {}
        self.digests: dict[str, str] = {}
        self.extra = {"calibrate": cfg.calibrate}
        if precision != "fp32":  # fp32 digests stay those of earlier versions
            self.extra["precision"] = precision
        self.retrain_auc: dict[str, float] | None = None
        self.curation: CurationStage | None = None
        self.forget: np.ndarray | None = None
        self.curated: list[tuple[Variant, RecipeSpec]] = []
        self.entries: list[str] = []
        if worker:
            self.store = RunStore(out)
            self.cache.attach(self.store.cache_dir)
            return
        if RunStore.holds_run_of(out, cfg):  # resuming: reuse the features already encoded
            self.cache.attach(RunStore(out).cache_dir)
        # Curation (and the forget set) is planned before the run directory exists: bad
        # input leaves nothing behind.
        forget_score = cfg.unlearn.forget.get("curation") if cfg.unlearn else None
        if forget_score is not None and forget_score not in cfg.curation.scores:
            cfg.curation.scores = {**cfg.curation.scores, forget_score: {}}
        if cfg.curate or cfg.curation.scores:
            self.curation = self.plan_curation()
        if cfg.unlearn is not None:
            self.forget = forget_index(cfg.unlearn.forget, self.benchmark, self.curation)
        self.store = RunStore.create(out, cfg)
        self.cache.attach(self.store.cache_dir)
        if self.curation is not None:
            with distributed.main_writes() as main:
                if main:
                    self.curation.write(self.store.path, self.benchmark.class_names)
        variants = self.curation.variants if self.curation is not None else []
        self.curated = [(v, self.specs[name]) for v in variants for name in self.retrain]
        self.entries = [
            *self.specs,
            *(curated_entry(v, spec) for v, spec in self.curated),
            *unlearn_entries(cfg),
            *(f"conjugate.{spec.name}" for spec in cfg.conjugate),
            *(f"adapt.{spec.name}" for spec in cfg.adapt),
        ]

    # The graph ---------------------------------------------------------------------------

    def jobs(self, parallel: bool = False) -> list[Job]:
        """Every job of the run, in an order that runs each after those it depends on.

        ``parallel`` (for an executor that runs jobs side by side): a recipe's parts
        (model-soup ingredients) become jobs of their own, and a first job on the driver
        encodes every split with the pretrained backbone, so that jobs running at once do not
        each encode the same splits."""
        jobs: list[Job] = []
        first: list[str] = []
        if parallel and self.backbone.kind != "causal_lm":
            jobs.append(Job("#features", "features", None, on_driver=True))
            first = ["#features"]
        for spec in self.recipes:
            deps = [*first, *self.depends[spec.name]]
            for name in self.part_names(spec) if parallel else []:
                key = f"{spec.name}#{name}"
                jobs.append(Job(key, "part", spec, [*first, *self.depends[spec.name]], part=name))
                deps.append(key)
            jobs.append(Job(spec.name, "recipe", spec, deps))
        for variant, spec in self.curated:
            jobs.append(Job(curated_entry(variant, spec), "curated", spec, variant=variant))
        earlier = [self.unlearn_on] if self.unlearn_on else []
        for spec in unlearn_specs(self.cfg):
            key = f"unlearn.{spec.name}"
            jobs.append(Job(key, "unlearn", spec, list(earlier), on_driver=True))
            earlier.append(key)
        for spec in self.cfg.conjugate:
            targets = self.named_targets(spec.on)
            deps = sorted({entry_of(t) for t in targets})
            jobs.append(Job(f"conjugate.{spec.name}", "conjugate", spec, deps))
        for spec in self.cfg.adapt:
            deps = sorted({entry_of(t) for t in self.named_targets(spec.on)})
            jobs.append(Job(f"adapt.{spec.name}", "adapt", spec, deps))
        return jobs

    def named_targets(self, on: list[str] | None) -> list[str]:
        """Predictors an entry names with ``on:`` (with every seed's repeats); default every
        recipe entry."""
        return list(self.specs) if on is None else seeds.with_repeats(on, self.repeats)

    def part_names(self, spec: RecipeSpec) -> list[str]:
        """Names of the parts of a recipe entry that may be trained apart (none for most)."""
        parts = FINETUNE[spec.recipe].parts
        return [] if parts is None else list(parts(self.context(spec), spec.config))

    def scratch(self, key: str, digest: str) -> Path:
        """Where an unfinished entry keeps training checkpoints and parts (removed once done)."""
        return self.store.path / "scratch" / f"{safe_name(key)}-{digest}"

    # Preparing, computing and finishing jobs -----------------------------------------------

    def prepare(self, job: Job) -> bool:
        """Set the job's digest (its dependencies have finished); False when it has nothing
        to do (finished in an earlier run with the same options)."""
        spec = job.spec
        if job.kind == "features":
            return True
        if job.kind in ("recipe", "part"):
            extra = self.extra if spec.seed in (None, self.cfg.seed) else {"seed": spec.seed}
            extra = {**self.extra, **extra}
            deps = [self.digests[d] for d in self.depends[spec.name]]
            job.digest = recipe_digest(spec, deps, extra)
            if job.kind == "part":
                stash = self.scratch(spec.name, job.digest) / "parts"
                finished = self.store.finished(spec.name, job.digest)
                return not finished and not self.context(spec, stash=stash).has_part(job.part)
        elif job.kind == "curated":
            curated = {"curated": job.variant.train.fingerprint, "curation": job.variant.info()}
            deps = [self.digests[d] for d in self.depends[spec.name]]
            job.digest = recipe_digest(spec, deps, {**self.extra, **curated})
        elif job.kind == "unlearn":
            return True  # run_unlearning checks and finishes its entry itself
        else:
            job.targets = self.targets(job)
            job.digest = recipe_digest(
                spec, [self.digests[entry_of(t)] for t in job.targets], self.extra
            )
        self.digests[job.key] = job.digest
        if self.store.finished(job.key, job.digest):
            log(f"{job.key}: finished in an earlier run of {self.store.path}; skipped")
            return False
        return True

    def targets(self, job: Job) -> list[str]:
        """The predictors a conjugate or adapter entry runs on (adapters: default every saved
        one, every seed's)."""
        if job.kind == "adapt" and job.spec.on is None:
            return self.store.saved_predictors(list(self.specs))
        return self.named_targets(job.spec.on)

    def compute(self, job: Job) -> list[Scored]:
        """Do the work of a prepared job: train, save models, evaluate; the records."""
        if job.kind == "unlearn":
            run_unlearning(self, job.spec)
            return []
        if job.kind == "features":
            for split in [self.benchmark.train, *self.benchmark.eval_splits()]:
                self.cache.get(self.backbone.featurizer, split, self.backbone.fingerprint)
            return []
        if job.kind == "part":
            self.compute_part(job)
            return []
        if job.kind == "conjugate":
            from shiftlab.lm.conjugate import conjugate_records

            return conjugate_records(self, job.spec, job.targets)
        if job.kind == "adapt":
            return self.adapt(job.spec, job.targets)
        scratch = self.scratch(job.key if job.kind == "curated" else job.spec.name, job.digest)
        with checkpoints(scratch / "checkpoints", job.digest):
            if job.kind == "curated":
                return self.retrain_curated(job.variant, job.spec)
            return self.train_recipe(job.spec, scratch / "parts")

    def finish(self, job: Job, scored: list[Scored]) -> None:
        """Record a computed job (the driver, main process, alone writes)."""
        if job.kind in ("part", "unlearn", "features"):
            return
        if self.cfg.seeds:
            for item in scored:
                item.record.update(seeds.seed_tags(item.record["model"], self.cfg.seed))
        self.store.finish(job.key, job.digest, scored)
        self.store.write_records(self.entries)
        with distributed.main_writes() as main:
            if main:
                self.clear_scratch(job)

    def clear_scratch(self, job: Job) -> None:
        """Remove a finished entry's scratch folders: its own and its parts', of this digest
        and of any earlier one (options changed since)."""
        folder = self.store.path / "scratch"
        if not folder.is_dir():
            return
        names = {safe_name(job.key)}
        if job.kind == "recipe":
            names |= {safe_name(f"{job.key}#{part}") for part in self.part_names(job.spec)}
        for path in folder.iterdir():
            if path.name.rsplit("-", 1)[0] in names:
                shutil.rmtree(path, ignore_errors=True)

    # The work -----------------------------------------------------------------------------

    def context(self, spec: RecipeSpec, benchmark: Benchmark | None = None, stash=None):
        """What recipe ``spec`` sees (on ``benchmark``: a curated training set; default the
        run's)."""
        return RecipeContext(
            spec.name,
            benchmark or self.benchmark,
            self.backbone,
            self.cache,
            self.cfg.prompts,
            self.cfg.seed if spec.seed is None else spec.seed,
            self.device,
            self.lookup,
            stash,
        )

    def produce(
        self, spec: RecipeSpec, benchmark: Benchmark | None = None, stash: Path | None = None
    ) -> Iterator[Predictor]:
        """The predictors of one recipe entry, seeded by its seed."""
        ctx = self.context(spec, benchmark, stash)
        seed_everything(ctx.seed)
        yield from FINETUNE[spec.recipe].obj(ctx, spec.config)

    def train_recipe(self, spec: RecipeSpec, stash: Path | None = None) -> list[Scored]:
        """Run one recipe entry: its predictors' records; saved and kept as later jobs need."""
        log(f"[bold]{escape(spec.name)}[/bold] ({spec.recipe})")
        scored: list[Scored] = []
        for predictor in self.produce(spec, stash=stash):
            scored += self.score(predictor)
            if predictor.save:
                self.store.save_predictor(predictor, self.backbone.fingerprint)
            if predictor.save or predictor.name in self.referenced:
                self.kept[predictor.name] = predictor
        return scored

    def compute_part(self, job: Job) -> None:
        """Train one part of a recipe entry into its stash."""
        stash = self.scratch(job.spec.name, job.digest) / "parts"
        with checkpoints(self.scratch(job.key, job.digest) / "checkpoints", job.digest):
            ctx = self.context(job.spec, stash=stash)
            make, untrained, *_ = FINETUNE[job.spec.recipe].parts(ctx, job.spec.config)[job.part]
            log(f"[bold]{escape(job.part)}[/bold] (a part of {escape(job.spec.name)})")
            seed_everything(ctx.seed)
            ctx.part(job.part, make, untrained)

    def retrain_curated(self, variant: Variant, spec: RecipeSpec) -> list[Scored]:
        """Retrain recipe ``spec`` on a curated training set; its predictors are named
        ``<curated set>/<name>`` and their records carry ``curation``."""
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
        return scored

    def adapt(self, spec: Any, targets: list[str]) -> list[Scored]:
        """Adapt every target predictor on every OOD split."""
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
        return records

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
        """Entries of the run seed that train on the ID split (curation and unlearning retrain
        these)."""
        return [
            name
            for name, spec in self.specs.items()
            if spec.recipe != "zero_shot" and not references(spec.config) and seeds.MARK not in name
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


def run(cfg: RunConfig, out: Path, *, report: bool = True) -> Path:
    """Run every job of ``cfg`` into run directory ``out`` with the config's executor; write
    the report.

    Entries already finished in ``out`` with the same options are skipped (resume), whichever
    executor ran them. All input is checked (config references, data, backbone, adapters, the
    executor) before ``out`` is created.
    """
    from shiftlab.executors import make_executor

    started = time.perf_counter()
    executor = make_executor(cfg)
    try:
        session = Session(cfg, out)
    except BaseException:
        getattr(executor, "close", lambda: None)()  # a Ray instance it started stops too
        raise
    executor.run(session)
    session.store.write_records(session.entries)
    if report:
        from shiftlab.report import write_report

        with distributed.main_writes() as main:
            if main:
                write_report(session.store.path)
    log(f"run finished in {time.perf_counter() - started:.0f} s: {session.store.path}")
    return session.store.path
