"""The unlearning stage: take a run's forget set (:mod:`shiftlab.unlearn.forget_set`) back out of
a trained entry with every method, and judge each result against retraining without it
(:mod:`shiftlab.unlearn.judge`).

One entry per method, resumable like recipes, on the driver: ``retrain`` first (the same recipe
on the training split without the forget set, through curation's drop-and-retrain path; its
membership AUROC is PrivLeak's reference), then ``original`` (the trained model's summary), then
each method on a copy (a head-only classifier unlearns its head on cached features). Unlearned
predictors ``unlearn.NAME/ON`` are scored on every split; one summary record per model (split
``unlearning``) judges it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any

import numpy as np
import torch
from rich.markup import escape
from torch import nn

from shiftlab.checks import check_unlearning
from shiftlab.config.sections import EntrySpec
from shiftlab.data.benchmark import Benchmark, Split
from shiftlab.entries import entry_of, unlearn_key
from shiftlab.evaluate.records import model_logits
from shiftlab.jobs import Job
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.predictions import Scored
from shiftlab.runtime import log
from shiftlab.session import Session
from shiftlab.stages.base import Stage
from shiftlab.store import recipe_digest
from shiftlab.training import checkpoints
from shiftlab.typed import non_default, to_plain
from shiftlab.unlearn.base import Data, Original, overridden, unlearn
from shiftlab.unlearn.forget_set import forget_index
from shiftlab.unlearn.judge import (
    classifier_summary,
    full_texts,
    language_model_summary,
    membership_aurocs,
    split_named,
)

RETRAIN = "retrain"
ORIGINAL = EntrySpec("original", "original")
TAGS = ("standard", "trend_point", "selected_by", "selected_epoch")


class UnlearnStage(Stage):
    """Unlearning methods, judged against retraining."""

    name = "unlearn"

    def __init__(self) -> None:
        self.on: str | None = None
        self.forget: np.ndarray | None = None

    def specs(self, session: Session) -> list[EntrySpec]:
        """The stage's entries in order: retraining first (PrivLeak's reference), the original
        model (a summary only), then every other method."""
        if session.cfg.unlearn is None:
            return []
        methods = session.cfg.unlearn.methods
        retrain = [m for m in methods if m.kind == RETRAIN]
        return [*retrain, ORIGINAL, *[m for m in methods if m.kind != RETRAIN]]

    def check(self, session: Session) -> None:
        self.on = check_unlearning(session.cfg, session.backbone, session.trains())
        for spec in self.specs(session):
            replaced = overridden(spec.options) if spec.options is not None else []
            if replaced:
                log(
                    f"warning: unlearn.methods.{spec.name}: {', '.join(replaced)} replaced by "
                    "the setting in brackets, relative to the original training; set it to "
                    "null to use yours"
                )

    def plan(self, session: Session) -> None:
        if session.cfg.unlearn is not None:
            forget = session.cfg.unlearn.forget
            self.forget = forget_index(forget, session.benchmark, session.curation)

    def entries(self, session: Session) -> list[str]:
        return [unlearn_key(spec.name) for spec in self.specs(session)]

    def jobs(self, session: Session, parallel: bool) -> list[Job]:
        jobs, earlier = [], [self.on] if self.on else []
        for spec in self.specs(session):
            key = unlearn_key(spec.name)
            jobs.append(
                Job(key, self.name, "unlearn", spec, list(earlier), on_driver=True, tag_seeds=False)
            )
            earlier.append(key)
        return jobs

    def digest(self, session: Session, job: Job) -> str:
        cfg = session.cfg.unlearn
        forget = hashlib.sha256(",".join(map(str, self.forget)).encode()).hexdigest()[:16]
        deps = [session.digests[self.on], session.digests.get(unlearn_key(RETRAIN), "")]
        setting = {k: to_plain(v) for k, v in dataclasses.asdict(cfg).items() if k != "methods"}
        extra = {**session.extra, "forget": forget, "unlearn": job.spec.to_dict(), "cfg": setting}
        return recipe_digest(session.specs[self.on], deps, extra)

    def compute(self, session: Session, job: Job) -> list[Scored]:
        with checkpoints(session.scratch(job.key, job.digest) / "checkpoints", job.digest):
            return self.run(session, job.spec)

    def sets(self, session: Session) -> tuple[Benchmark, Split, Split, Split]:
        """What the stage works on: the benchmark unlearned models are judged on (a language
        model's prompts take their demonstrations from the retain set only; a classifier's is the
        run's), its forget and retain sets, and the retain set as retraining trains on it."""
        train = session.benchmark.train
        keep = np.setdiff1d(np.arange(len(train)), self.forget)
        retain = train.subset(keep, name="retain")
        judged = session.benchmark_for(train, pool=retain)
        own = judged.train
        return judged, own.subset(self.forget, name="forget"), own.subset(keep, "retain"), retain

    def model_of(self, session: Session, spec: EntrySpec) -> nn.Module:
        """The model an entry makes: the original, the retrained one, or the original after a
        method (deterministic: export makes it again the same)."""
        _, forget, retain, retrain_set = self.sets(session)
        original = session.lookup(self.on)
        if spec is ORIGINAL:
            return original.model
        if spec.kind == RETRAIN:
            made = session.produce(session.specs[self.on], session.benchmark_for(retrain_set))
            return next(p for p in made if not p.info.get("trend_point")).model
        return unlearned(session, spec, original, forget, retain)

    def run(self, session: Session, spec: EntrySpec) -> list[Scored]:
        """One entry: the original (a summary only), retraining, or a method."""
        on, cfg = self.on, session.cfg.unlearn
        judged, forget, retain, _ = self.sets(session)
        original = session.lookup(on)
        key = unlearn_key(spec.name)
        log(f"[bold]{key}[/bold] on {escape(on)} ({len(forget)} examples to forget)")
        started = time.perf_counter()
        model = self.model_of(session, spec)
        seconds = time.perf_counter() - started
        tag = {
            "method": spec.kind,
            "params": non_default(spec.options),
            "n_forget": len(forget),
            **({"name": spec.name} if spec.name != spec.kind else {}),
        }
        info = {k: v for k, v in original.info.items() if k not in TAGS}
        predictor = Predictor(
            original.name if spec is ORIGINAL else f"{unlearn_key(spec.name)}/{on}",
            original.recipe,
            model,
            params=dict(original.params),
            save=False,
            info={**info, "unlearn": tag},
        )
        scored = [] if spec is ORIGINAL else session.score(predictor, judged)
        summary, logits = self.summarize(session, judged, model, forget, retain)
        if spec is ORIGINAL and session.backbone.kind == "causal_lm":
            summary.update(original_membership(session, model, cfg))
        if spec.kind == RETRAIN and "auroc_min_k" in summary:  # the reference of PrivLeak
            summary.update(privleak=0.0, privleak_min_k_pp=0.0)
            summary["ci"].update(privleak=[0.0, 0.0], privleak_min_k_pp=[0.0, 0.0])
        record = {
            "model": predictor.name,
            "recipe": predictor.recipe,
            "params": predictor.params,
            "adapter": None,
            "split": "unlearning",
            "role": "unlearn",
            "n": len(forget),
            **summary,
            "seconds": round(seconds, 3),
            "seed": session.cfg.seed,
            **predictor.info,
        }
        scored.append(Scored(record, logits, forget, None))
        return scored

    def summarize(
        self,
        session: Session,
        judged: Benchmark,
        model: nn.Module,
        forget: Split,
        retain: Split,
    ) -> tuple[dict[str, Any], torch.Tensor]:
        """The unlearning summary of ``model``, with the forget set's logits."""
        if session.backbone.kind == "causal_lm":
            cfg = session.cfg.unlearn
            retrain = retrain_summary(session)
            summary = language_model_summary(model, forget, judged, cfg, retrain, session.cfg.seed)
            return summary, torch.zeros(len(forget), 0)
        unseen = judged.test
        logits = [model_logits(model, s, session.cache) for s in (forget, retain, unseen)]
        summary = classifier_summary(*logits, forget, retain, unseen, session.cfg.seed)
        return summary, logits[0]


def method_data(session: Session, split: Split, features: bool) -> Data:
    """What an unlearning method trains on: a language model's prompts and answers, or a
    classifier's inputs (cached pretrained features for a head-only model) and labels."""
    if session.backbone.kind == "causal_lm":
        return Data(
            prompts=[i.prompt for i in split.inputs], answers=[i.answer for i in split.inputs]
        )
    if features:
        inputs = session.cache.get(session.backbone.featurizer, split, session.backbone.fingerprint)
        return Data(inputs=inputs.numpy(), labels=split.labels)
    return Data(inputs=split.inputs, labels=split.labels)


def unlearned(
    session: Session, spec: EntrySpec, original: Predictor, forget: Split, retain: Split
) -> nn.Module:
    """The original model after ``spec``'s method (a copy; the original is untouched)."""
    model = original.model
    head_only = isinstance(model, Classifier) and model.featurizer is session.backbone.featurizer
    target: nn.Module = Classifier(nn.Identity(), model.head) if head_only else model
    train = session.benchmark.train
    result = unlearn(
        spec.kind,
        target,
        method_data(session, forget, head_only),
        method_data(session, retain, head_only),
        spec.options,
        seed=session.cfg.seed,
        device=session.device,
        original=Original.of(session.specs[entry_of(original.name)].options, len(train)),
    )
    return Classifier(session.backbone.featurizer, result.head) if head_only else result


def retrain_summary(session: Session) -> dict[str, Any] | None:
    """Retraining's summary record (PrivLeak of every method is relative to its membership
    scores), once its entry has finished; None before, or without a holdout split."""
    records = session.store.records_of(unlearn_key(RETRAIN))
    summary = next((r for r in records if r["split"] == "unlearning"), {})
    return summary if "text_scores" in summary else None


def original_membership(session: Session, model: nn.Module, cfg: Any) -> dict[str, Any]:
    """The trained model's membership AUROC by every score: its training texts (forget and
    retain; those of ``forget_texts`` and ``retain_texts`` where named, the holdout texts'
    kind) against the holdout split, the pretrained model as the reference score's
    reference."""
    bench = session.benchmark
    holdout = split_named(bench, cfg.holdout, "holdout")
    if holdout is None:
        return {}
    named = [split_named(bench, cfg.forget_texts, "forget_texts"),
             split_named(bench, cfg.retain_texts, "retain_texts")]  # fmt: skip
    members = [t for s in named if s is not None for t in full_texts(s)]
    aurocs, intervals = membership_aurocs(
        model.model,
        model.tokenizer,
        members if all(s is not None for s in named) else full_texts(bench.train),
        full_texts(holdout),
        cfg.membership_k,
        reference=session.backbone.featurizer.model,
        seed=session.cfg.seed,
    )
    return {"membership_auroc": aurocs, "membership_auroc_ci": intervals}
