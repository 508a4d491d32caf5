"""The adapt stage: test-time adaptation of saved predictors on every OOD split (an adapter's
``on:``, default every saved predictor, every seed's), online along each split's stream and
reset between splits (:mod:`shiftlab.adapt`)."""

from __future__ import annotations

from shiftlab.adapt.stream import adapted_records
from shiftlab.checks import check_adapters
from shiftlab.config.sections import EntrySpec
from shiftlab.entries import adapt_key
from shiftlab.jobs import Job
from shiftlab.predictions import Scored
from shiftlab.registry import ADAPT
from shiftlab.session import Session
from shiftlab.stages.base import TargetStage


class AdaptStage(TargetStage):
    """Test-time adapters."""

    name = "adapt"
    kind = "adapt"

    def specs(self, session: Session) -> list[EntrySpec]:
        return session.cfg.adapt

    def key(self, name: str) -> str:
        return adapt_key(name)

    def check(self, session: Session) -> None:
        check_adapters(session.cfg, session.backbone)

    def targets(self, session: Session, spec: EntrySpec) -> list[str]:
        if spec.on is None:
            return session.store.saved_predictors(list(session.specs))
        return session.named_targets(spec.on)

    def compute(self, session: Session, job: Job) -> list[Scored]:
        records = []
        for name in job.targets:
            predictor = session.lookup(name)
            options = job.spec.options.for_model(predictor.params)
            adapter = ADAPT[job.spec.kind].obj(predictor.model, options)
            records += adapted_records(
                adapter,
                job.spec.name,
                predictor,
                session.benchmark.ood,
                seed=session.cfg.seed,
                device=session.device,
                group_names=session.benchmark.group_names,
            )
        return records
