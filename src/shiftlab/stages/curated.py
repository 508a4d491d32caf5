"""The curated stage: the recipe entries of ``curation.retrain`` retrained on each curated
training set the curation plan made (:mod:`shiftlab.curation.plan`), as ``<set>/<name>``
predictors whose records carry ``curation``."""

from __future__ import annotations

import dataclasses

from rich.markup import escape

from shiftlab.checks import check_curation
from shiftlab.config.sections import EntrySpec
from shiftlab.curation.actions import Variant
from shiftlab.entries import curated_key
from shiftlab.jobs import Job
from shiftlab.predictions import Scored
from shiftlab.runtime import log
from shiftlab.session import Session
from shiftlab.stages.base import Stage
from shiftlab.store import recipe_digest
from shiftlab.training import checkpoints


class CuratedStage(Stage):
    """Recipes retrained on curated training sets."""

    name = "curated"

    def __init__(self) -> None:
        self.retrain: list[str] = []
        self.curated: list[tuple[Variant, EntrySpec]] = []

    def check(self, session: Session) -> None:
        self.retrain = check_curation(session.cfg)

    def plan(self, session: Session) -> None:
        variants = session.curation.variants if session.curation is not None else []
        self.curated = [(v, session.specs[name]) for v in variants for name in self.retrain]

    def entries(self, session: Session) -> list[str]:
        return [curated_key(variant.label, spec.name) for variant, spec in self.curated]

    def jobs(self, session: Session, parallel: bool) -> list[Job]:
        return [
            Job(curated_key(variant.label, spec.name), self.name, "curated", spec, variant=variant)
            for variant, spec in self.curated
        ]

    def digest(self, session: Session, job: Job) -> str:
        curated = {"curated": job.variant.train.fingerprint, "curation": job.variant.info()}
        deps = [session.digests[d] for d in session.depends[job.spec.name]]
        return recipe_digest(job.spec, deps, {**session.extra, **curated})

    def compute(self, session: Session, job: Job) -> list[Scored]:
        scratch = session.scratch(job.key, job.digest)
        with checkpoints(scratch / "checkpoints", job.digest):
            return retrain_curated(session, job.variant, job.spec)


def retrain_curated(session: Session, variant: Variant, spec: EntrySpec) -> list[Scored]:
    """Retrain recipe ``spec`` on a curated training set; its predictors are named
    ``<curated set>/<name>`` and their records carry ``curation``."""
    log(f"[bold]{escape(variant.label)}/{spec.name}[/bold] ({spec.kind} on a curated set)")
    curated = session.benchmark_for(variant.train)
    scored: list[Scored] = []
    for predictor in session.produce(spec, curated):
        if predictor.info.get("trend_point"):
            continue  # the baseline trend comes from the uncurated run
        info = {k: v for k, v in predictor.info.items() if k != "standard"}
        renamed = dataclasses.replace(
            predictor,
            name=f"{variant.label}/{predictor.name}",
            save=False,
            info={**info, "curation": variant.info()},
        )
        scored += session.score(renamed, curated)
    return scored
