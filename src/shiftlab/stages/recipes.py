"""The recipes stage: every recipe entry (each seed's repeat) trains, is scored on every split,
and keeps or saves the predictors later entries consume.

Under an executor that runs jobs side by side, a first job on the driver encodes every split
with the pretrained backbone (so that parallel jobs do not each encode them), and a recipe's
parts (model-soup ingredients) are jobs of their own whose results the recipe loads.
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from shiftlab.checks import check_recipes
from shiftlab.config.sections import EntrySpec
from shiftlab.entries import FEATURES, part_key
from shiftlab.jobs import Job
from shiftlab.predictions import Scored
from shiftlab.registry import FINETUNE
from shiftlab.runtime import log, seed_everything
from shiftlab.session import Session
from shiftlab.stages.base import Stage
from shiftlab.store import recipe_digest
from shiftlab.training import checkpoints


def part_names(session: Session, spec: EntrySpec) -> list[str]:
    """Names of the parts of a recipe entry that may be trained apart (none for most)."""
    parts = FINETUNE[spec.kind].parts
    return [] if parts is None else list(parts(session.context(spec), spec.options))


def recipe_entry_digest(session: Session, spec: EntrySpec) -> str:
    """A recipe entry's digest: its options, its dependencies' digests, and the run options
    that change its records (a repeat's seed among them)."""
    extra = session.extra if spec.seed in (None, session.cfg.seed) else {"seed": spec.seed}
    deps = [session.digests[d] for d in session.depends[spec.name]]
    return recipe_digest(spec, deps, {**session.extra, **extra})


class RecipeStage(Stage):
    """Recipe entries: train, score, keep."""

    name = "recipes"

    def check(self, session: Session) -> None:
        check_recipes(session.cfg, session.backbone)

    def entries(self, session: Session) -> list[str]:
        return list(session.specs)

    def jobs(self, session: Session, parallel: bool) -> list[Job]:
        jobs: list[Job] = []
        first: list[str] = []
        if parallel and session.backbone.kind != "causal_lm":
            jobs.append(Job(FEATURES, self.name, "features", on_driver=True, records=False))
            first = [FEATURES]
        for spec in session.recipes:
            deps = [*first, *session.depends[spec.name]]
            names = part_names(session, spec)
            keys = [part_key(spec.name, name) for name in names]
            if parallel:  # the parts train as jobs of their own, before the recipe
                for key, part in zip(keys, names, strict=True):
                    jobs.append(Job(key, self.name, "part", spec, deps, part=part, records=False))
                deps = [*deps, *keys]
            jobs.append(Job(spec.name, self.name, "recipe", spec, deps, scratch=keys))
        return jobs

    def prepare(self, session: Session, job: Job) -> bool:
        if job.kind == "features":
            return True
        digest = recipe_entry_digest(session, job.spec)
        if job.kind == "part":  # to do unless its recipe finished or it is stashed already
            job.digest = digest
            stash = session.scratch(job.spec.name, digest) / "parts"
            finished = session.store.finished(job.spec.name, digest)
            return not finished and not session.context(job.spec, stash=stash).has_part(job.part)
        return session.settle(job, digest)

    def compute(self, session: Session, job: Job) -> list[Scored]:
        if job.kind == "features":
            benchmark, backbone = session.benchmark, session.backbone
            for split in [benchmark.train, *benchmark.eval_splits()]:
                session.cache.get(backbone.featurizer, split, backbone.fingerprint)
            return []
        if job.kind == "part":
            self.compute_part(session, job)
            return []
        scratch = session.scratch(job.spec.name, job.digest)
        with checkpoints(scratch / "checkpoints", job.digest):
            return train_recipe(session, job.spec, scratch / "parts")

    def compute_part(self, session: Session, job: Job) -> None:
        """Train one part of a recipe entry into its stash."""
        spec = job.spec
        stash = session.scratch(spec.name, job.digest) / "parts"
        with checkpoints(session.scratch(job.key, job.digest) / "checkpoints", job.digest):
            ctx = session.context(spec, stash=stash)
            make, untrained, *_ = FINETUNE[spec.kind].parts(ctx, spec.options)[job.part]
            log(f"[bold]{escape(job.part)}[/bold] (a part of {escape(spec.name)})")
            seed_everything(ctx.seed)
            ctx.part(job.part, make, untrained)


def train_recipe(session: Session, spec: EntrySpec, stash: Path | None = None) -> list[Scored]:
    """Run one recipe entry: its predictors' records; saved and kept as later jobs need."""
    log(f"[bold]{escape(spec.name)}[/bold] ({spec.kind})")
    scored: list[Scored] = []
    for predictor in session.produce(spec, stash=stash):
        scored += session.score(predictor)
        if predictor.examples:
            session.write_examples(predictor.name, predictor.examples)
        if predictor.save:
            session.store.save_predictor(predictor, session.backbone.fingerprint)
        if predictor.save or predictor.name in session.referenced:
            session.kept[predictor.name] = predictor
    return scored
