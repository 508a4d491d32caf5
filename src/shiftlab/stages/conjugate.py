"""The conjugate stage: conjugate prompting (Kotha, Springer, Raghunathan, ICLR 2024, arXiv
2309.10105) of the named language models: every evaluation split with its prompts (and label
words) mapped by a transform; generated answers are mapped back before scoring. Records carry
``conjugate: <entry name>``."""

from __future__ import annotations

from rich.markup import escape

from shiftlab.config.sections import EntrySpec
from shiftlab.entries import conjugate_key
from shiftlab.evaluate import evaluate_predictor
from shiftlab.jobs import Job
from shiftlab.lm.conjugate import conjugated_outputs, conjugated_split, rescore_generation
from shiftlab.lm.tasks import chat_template
from shiftlab.lm.transforms import make_transform
from shiftlab.predictions import Scored
from shiftlab.runtime import log
from shiftlab.session import Session
from shiftlab.stages.base import TargetStage


class ConjugateStage(TargetStage):
    """Prompt transforms scored on language models."""

    name = "conjugate"
    kind = "conjugate"

    def specs(self, session: Session) -> list[EntrySpec]:
        return session.cfg.conjugate

    def key(self, name: str) -> str:
        return conjugate_key(name)

    def compute(self, session: Session, job: Job) -> list[Scored]:
        spec = job.spec
        transform = make_transform(spec.kind, spec.options)
        tokenizer = session.backbone.featurizer.tokenizer
        chat = chat_template(tokenizer) if session.cfg.task.chat else None
        splits = [conjugated_split(s, transform, chat) for s in session.benchmark.eval_splits()]
        scored = []
        for name in job.targets:
            predictor = session.lookup(name)
            log(f"conjugate.{spec.name} on {escape(name)}")
            for item in evaluate_predictor(
                predictor,
                splits,
                session.cache,
                seed=session.cfg.seed,
                group_names=session.benchmark.group_names,
            ):
                if item.outputs is not None:  # generation: answers mapped back, then scored
                    rescore_generation(item, conjugated_outputs(item.outputs, transform))
                item.record["conjugate"] = spec.name
                scored.append(item)
        return scored
