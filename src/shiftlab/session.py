"""The shared state of one run, and the one place its results are written.

A :class:`Session` holds what every stage's jobs need: the resolved config, device, benchmark,
backbone, feature cache, run directory, the recipe entries (each seed's repeat), their digests,
the predictors kept for later jobs, and the curation plan. It makes predictors
(:meth:`produce`), finds earlier ones (:meth:`lookup`) and scores them (:meth:`score`). Each kind
of entry is a stage (:mod:`shiftlab.stages`) that checks and plans its part before the run
directory exists and prepares and computes its jobs; the session dispatches each job to its
stage by name and alone finishes jobs (:meth:`finish`: state, predictions, ``records.jsonl``),
on the driver's main process.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rich.markup import escape

from shiftlab import distributed, seeds
from shiftlab.checks import (
    check_data_needs,
    check_language_model,
    check_modality,
    check_references,
)
from shiftlab.config.sections import EntrySpec, RunConfig
from shiftlab.curation.plan import CurationPlan, write_csv
from shiftlab.data import Benchmark, Split
from shiftlab.data.build import load_benchmark
from shiftlab.entries import entry_of, references
from shiftlab.errors import ConfigError
from shiftlab.evaluate import evaluate_predictor
from shiftlab.evaluate.calibration import temperature_scaled
from shiftlab.evaluate.metrics import score_of
from shiftlab.evaluate.records import model_logits
from shiftlab.features import FeatureCache
from shiftlab.finetune.context import RecipeContext
from shiftlab.jobs import Job
from shiftlab.lm.tasks import (
    chat_template,
    check_label_words,
    check_tasks,
    lm_benchmark,
    task_labels,
)
from shiftlab.models import Predictor, load_backbone
from shiftlab.precision import resolve_precision, set_precision
from shiftlab.predictions import Scored
from shiftlab.registry import FINETUNE
from shiftlab.runtime import log, resolve_device, seed_everything
from shiftlab.store import RunStore, safe_name


class Observer(Protocol):
    """Told of every entry with records once it is finished: by this run (:meth:`Session.finish`)
    or by an earlier one (skipped on resume). The driver's MLflow tracker is one
    (:mod:`shiftlab.tracking`); observers run on the main process only."""

    def entry(self, session: Session, job: Job, records: list[dict[str, Any]]) -> None: ...


class Stage(Protocol):
    """One kind of run entry (recipes, curated retrains, unlearning, conjugate prompts,
    adapters): see :mod:`shiftlab.stages` for the protocol in full."""

    name: str

    def check(self, session: Session) -> None: ...
    def plan(self, session: Session) -> None: ...
    def start(self, session: Session) -> None: ...
    def entries(self, session: Session) -> list[str]: ...
    def jobs(self, session: Session, parallel: bool) -> list[Job]: ...
    def prepare(self, session: Session, job: Job) -> bool: ...
    def compute(self, session: Session, job: Job) -> list[Scored]: ...


def subset_index(split: Split, parent: Split) -> np.ndarray:
    """Positions in ``parent`` of the examples of ``split``, a subset of it."""
    if split is parent:
        return np.arange(len(parent))
    source = split.parent[0] if split.parent is not None else None
    if source is None or (source is not parent and source.fingerprint != parent.fingerprint):
        raise ValueError(f"split {split.name} is not a subset of {parent.name}")
    return split.parent[1]


def summary_line(records: list[dict[str, Any]]) -> str:
    """One log line: ID test and OOD mean accuracy (ROUGE-L for generation tasks)."""
    test = [score_of(r) for r in records if r["role"] == "id_test" and score_of(r) is not None]
    ood = [
        score_of(r)
        for r in records
        if r["role"] == "ood"
        and not r.get("capability")
        and "attack" not in r
        and score_of(r) is not None
    ]  # as the report's OOD mean: the task's own OOD splits, not other tasks or a backdoor's
    name = "" if any("accuracy" in r for r in records) else " ROUGE-L"
    parts = [f"ID test{name} {test[0]:.3f}"] if test else []
    if ood:
        parts.append(f"OOD mean{name} {np.mean(ood):.3f}")
    parts += [f"ASR {r['asr']:.3f}" for r in records if "asr" in r]
    return ", ".join(parts)


class Session:
    """The state of one run: benchmark, backbone, cache, store, and the predictors kept for
    later jobs; ``stages`` do the work of each kind of entry.

    Everything a stage checks or plans happens here, before the run directory exists: a bad
    input leaves nothing behind. ``worker=True`` opens a run the driver made (a Ray worker):
    nothing is checked, planned or written but models, features and stashed parts.
    """

    def __init__(
        self, cfg: RunConfig, out: Path, stages: Sequence[Stage], *, worker: bool = False
    ) -> None:
        device = resolve_device(cfg.device)
        distributed.setup(device)  # joins a launched multi-process run
        # The resolved precision goes into the run's config.yaml and is what trains and encodes.
        precision = resolve_precision(cfg.precision, device)
        cfg = dataclasses.replace(cfg, precision=precision)
        set_precision(precision)
        self.cfg, self.device = cfg, device
        if not worker:
            RunStore.check(out, cfg)  # before any work: a folder that cannot take this run
        self.stages = {stage.name: stage for stage in stages}
        self.recipes = seeds.expand(cfg.recipes, cfg.seeds, cfg.seed)
        self.repeats = seeds.repeats(self.recipes)
        self.specs = {spec.name: spec for spec in self.recipes}
        self.depends = check_references(self.recipes)
        self.referenced = {name for spec in self.recipes for name in references(spec.options)}
        self.benchmark = load_benchmark(cfg.data)
        self.source = self.benchmark  # a language model's: before its task's prompts
        self.capability_data = [(c, load_benchmark(c.data)) for c in cfg.capabilities]
        check_modality(cfg, self.benchmark)
        check_data_needs(cfg, self.benchmark)
        check_language_model(cfg)
        if cfg.task is not None:  # every pure config error of the task before the model loads
            check_tasks(cfg.task, self.source, self.capability_data)
        self.backbone = load_backbone(
            cfg.backbone,
            device,
            seed=cfg.seed,
            input_shape=self.benchmark.input_shape,
            train=self.benchmark.train,  # what a LiT with pairs: train is tuned on
            class_names=self.benchmark.class_names,
        )
        if self.backbone.kind == "causal_lm":
            self.benchmark = self.language_model_benchmark(self.source)
        # Length-sorted batches of 32 encode fastest on a CPU (docs/benchmarks.md).
        batch = cfg.backbone.batch_size or (256 if device.type == "cuda" else 32)
        self.cache = FeatureCache(None, batch, device)
        self.kept: dict[str, Predictor] = {}
        self.digests: dict[str, str] = {}
        self.extra: dict[str, Any] = {"calibrate": cfg.calibrate}
        if precision != "fp32":  # fp32 digests stay those of earlier versions
            self.extra["precision"] = precision
        self.curation: CurationPlan | None = None
        self._scores: CurationPlan | None = None  # out-of-sample probabilities for recipes
        self.entries: list[str] = []
        self.observers: list[Observer] = []
        if worker:
            self.store = RunStore(out)
            self.cache.attach(self.store.cache_dir)
            return
        for stage in stages:
            stage.check(self)
        if RunStore.holds_run_of(out, cfg):  # resuming: reuse the features already encoded
            self.cache.attach(RunStore(out).cache_dir)
        self.curation = self.plan_curation()
        for stage in stages:
            stage.plan(self)
        self.store = RunStore.create(out, cfg)
        self.cache.attach(self.store.cache_dir)
        if self.curation is not None:
            with distributed.main_writes() as main:
                if main:
                    self.curation.write(self.store.path, self.benchmark.class_names)
        for stage in stages:
            stage.start(self)
        self.entries = [key for stage in stages for key in stage.entries(self)]

    # The graph, and each job's life: prepared, computed, finished -------------------------

    def jobs(self, parallel: bool = False) -> list[Job]:
        """Every job of the run, in an order that runs each after those it depends on.

        ``parallel`` (for an executor that runs jobs side by side): pieces a stage can train
        apart become jobs of their own (see :mod:`shiftlab.stages.recipes`)."""
        return [job for stage in self.stages.values() for job in stage.jobs(self, parallel)]

    def prepare(self, job: Job) -> bool:
        """Set the job's digest (its dependencies have finished); False when it has nothing
        to do (finished in an earlier run with the same options)."""
        return self.stages[job.stage].prepare(self, job)

    def compute(self, job: Job) -> list[Scored]:
        """Do the work of a prepared job (train, save models, evaluate): its records."""
        return self.stages[job.stage].compute(self, job)

    def settle(self, job: Job, digest: str) -> bool:
        """Record a job's digest; False (and a log line) when its entry already finished with
        it."""
        job.digest = digest
        self.digests[job.key] = digest
        if self.store.finished(job.key, digest):
            log(f"{job.key}: finished in an earlier run of {self.store.path}; skipped")
            self.notify(job)
            return False
        return True

    def finish(self, job: Job, scored: list[Scored]) -> None:
        """Record a computed job (the driver, main process, alone writes)."""
        if not job.records:
            return
        if self.cfg.seeds and job.tag_seeds:
            for item in scored:
                item.record.update(seeds.seed_tags(item.record["model"], self.cfg.seed))
        self.store.finish(job.key, job.digest, scored)
        self.store.write_records(self.entries)
        with distributed.main_writes() as main:
            if main:
                self.clear_scratch([job.key, *job.scratch])
        self.notify(job)

    def notify(self, job: Job) -> None:
        """Tell the observers of a finished entry, with its records as stored."""
        if self.observers and job.records and distributed.is_main_process():
            records = self.store.records_of(job.key)
            for observer in self.observers:
                observer.entry(self, job, records)

    def scratch(self, key: str, digest: str) -> Path:
        """Where an unfinished entry keeps training checkpoints and parts (removed once done)."""
        return self.store.path / "scratch" / f"{safe_name(key)}-{digest}"

    def clear_scratch(self, keys: list[str]) -> None:
        """Remove the scratch folders of these keys, of any digest (options changed since)."""
        folder = self.store.path / "scratch"
        if not folder.is_dir():
            return
        names = {safe_name(key) for key in keys}
        for path in folder.iterdir():
            if path.name.rsplit("-", 1)[0] in names:
                shutil.rmtree(path, ignore_errors=True)

    # Predictors: made, looked up, scored -------------------------------------------------

    def context(
        self, spec: EntrySpec, benchmark: Benchmark | None = None, stash: Path | None = None
    ) -> RecipeContext:
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
            functools.partial(self.out_of_sample, benchmark or self.benchmark),
        )

    def produce(
        self, spec: EntrySpec, benchmark: Benchmark | None = None, stash: Path | None = None
    ) -> Iterator[Predictor]:
        """The predictors of one recipe entry, seeded by its seed."""
        ctx = self.context(spec, benchmark, stash)
        seed_everything(ctx.seed)
        yield from FINETUNE[spec.kind].obj(ctx, spec.options)

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

    def score(self, predictor: Predictor, benchmark: Benchmark | None = None) -> list[Scored]:
        """Records, with their logits, of a predictor on every evaluation split of ``benchmark``
        (default the run's), and of its temperature-scaled twin when calibrating."""
        benchmark = benchmark or self.benchmark
        predictors = [predictor]
        if self.cfg.calibrate and not predictor.info.get("trend_point"):
            predictors.append(temperature_scaled(predictor, benchmark.val, self.cache))
        scored = []
        for p in predictors:
            found = evaluate_predictor(
                p,
                benchmark.eval_splits(),
                self.cache,
                seed=self.cfg.seed,
                group_names=benchmark.group_names,
            )
            log(f"  {escape(p.name)}: {summary_line([s.record for s in found])}")
            scored += found
        return scored

    def named_targets(self, on: list[str] | None) -> list[str]:
        """Predictors an entry names with ``on:`` (with every seed's repeats); default every
        recipe entry."""
        return list(self.specs) if on is None else seeds.with_repeats(on, self.repeats)

    def trains(self) -> list[str]:
        """Entries of the run seed that train on the ID split (curation and unlearning retrain
        these)."""
        return [
            name
            for name, spec in self.specs.items()
            if spec.kind != "zero_shot" and not references(spec.options) and seeds.MARK not in name
        ]

    # Data shared by several stages -------------------------------------------------------

    def language_model_benchmark(self, source: Benchmark, pool: Split | None = None) -> Benchmark:
        """``source`` as prompts of the run's task (demonstrations from ``pool``, default its
        training split), plus one split per capability."""
        tokenizer = self.backbone.featurizer.tokenizer
        benchmark = lm_benchmark(
            source,
            self.cfg.task,
            self.capability_data,
            seed=self.cfg.seed,
            chat=chat_template(tokenizer),
            pool=pool,
        )
        check_label_words(benchmark, tokenizer)
        return benchmark

    def benchmark_for(self, train: Split, pool: Split | None = None) -> Benchmark:
        """The run's benchmark for a model trained on ``train`` (a subset of the training split,
        possibly relabelled: a curated set, the retain set). A language model's prompts are
        built again so that their demonstrations come from ``pool`` (a subset of the training
        split too; default ``train``) and no other training text reaches them."""
        if self.backbone.kind != "causal_lm":
            return dataclasses.replace(self.benchmark, train=train)
        source = self.source.train
        pool = train if pool is None else pool
        own = source.subset(subset_index(train, self.benchmark.train))
        labels = task_labels(self.cfg.task, self.benchmark.class_names, train.labels, inverse=True)
        own = own.relabeled(labels) if not np.array_equal(labels, own.labels) else own
        demos = source.subset(subset_index(pool, self.benchmark.train))
        return self.language_model_benchmark(dataclasses.replace(self.source, train=own), demos)

    def plan_curation(self) -> CurationPlan | None:
        """Scores of the training split and the curated sets (see :mod:`shiftlab.curation`),
        when ``curate:``, ``curation.scores`` or an unlearning forget set chosen by a score asks
        for them; planned before the run directory exists."""
        cfg = self.cfg
        forget_score = cfg.unlearn.forget.get("curation") if cfg.unlearn else None
        if forget_score is not None and forget_score not in cfg.curation.scores:
            cfg.curation.scores = {**cfg.curation.scores, forget_score: {}}
        if not (cfg.curate or cfg.curation.scores):
            return None
        curation = cfg.curation
        scorer = None if curation.scorer == "linear_probe" else self.specs[curation.scorer]
        plan = CurationPlan(
            curation,
            cfg.curate,
            self.benchmark,
            self.cache,
            self.backbone.featurizer,
            self.backbone.fingerprint,
            seed=cfg.seed,
            device=self.device,
            recipe_probabilities=self.fold_probabilities,
            scorer_spec=scorer,
        )
        plan.plan()
        return plan

    def write_examples(self, name: str, columns: dict[str, Any]) -> None:
        """Per training example values of a predictor, with the example ids, into
        ``curation/<name>.csv`` beside curation's per-example files."""
        train = self.benchmark.train
        rows = [
            {"example_id": str(train.ids[i]), **{k: v[i] for k, v in columns.items()}}
            for i in range(len(train))
        ]
        with distributed.main_writes() as main:
            if main:
                folder = self.store.path / "curation"
                folder.mkdir(parents=True, exist_ok=True)
                write_csv(folder / f"{safe_name(name)}.csv", rows)

    def out_of_sample(self, benchmark: Benchmark) -> np.ndarray:
        """(N, K) out-of-sample probabilities of ``benchmark``'s training examples (a subset of
        the run's: a curated set): the curation plan's K-fold ones, computed once per run."""
        if self._scores is None:
            self._scores = self.curation or CurationPlan(
                self.cfg.curation,
                [],
                self.benchmark,
                self.cache,
                self.backbone.featurizer,
                self.backbone.fingerprint,
                seed=self.cfg.seed,
                device=self.device,
                recipe_probabilities=self.fold_probabilities,
                scorer_spec=None
                if self.cfg.curation.scorer == "linear_probe"
                else self.specs[self.cfg.curation.scorer],
            )
        probabilities = self._scores.out_of_sample()
        return probabilities[subset_index(benchmark.train, self.benchmark.train)]

    def fold_probabilities(
        self, spec: EntrySpec, fit: np.ndarray, held_out: np.ndarray
    ) -> np.ndarray:
        """Probabilities (M, K) on the held-out training examples of recipe ``spec`` trained on
        the others (one fold of the curation scorer)."""
        train = self.benchmark.train
        fold = dataclasses.replace(self.benchmark, train=train.subset(fit))
        predictor = next(iter(self.produce(spec, fold)))
        held = train.subset(held_out)
        return model_logits(predictor.model, held, self.cache).softmax(dim=1).numpy()
