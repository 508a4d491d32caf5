"""Running the unlearning stage inside a run (see :mod:`shiftlab.unlearn.stage`): one entry per
method, resumable like recipes; retraining first (its membership AUROC is PrivLeak's reference),
then the original model's summary, then every method."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any

import numpy as np
import torch
from rich.markup import escape
from torch import nn

from shiftlab.config import UnlearnSpec
from shiftlab.evaluate.evaluator import model_logits
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.predictions import Scored
from shiftlab.registry import UNLEARN
from shiftlab.runtime import log
from shiftlab.store import recipe_digest
from shiftlab.typed import build
from shiftlab.unlearn.base import Data
from shiftlab.unlearn.stage import (
    classifier_summary,
    full_texts,
    language_model_summary,
    membership_aurocs,
    split_named,
)

ORIGINAL = UnlearnSpec("original", "original", {})
TAGS = ("standard", "trend_point", "selected_by", "selected_epoch")


def unlearn_specs(cfg: Any) -> list[UnlearnSpec]:
    """The stage's entries in order: retraining first (PrivLeak's reference), the original
    model (a summary only), then every other method."""
    if cfg.unlearn is None:
        return []
    methods = cfg.unlearn.methods
    retrain = [m for m in methods if m.method == "retrain"]
    return [*retrain, ORIGINAL, *[m for m in methods if m.method != "retrain"]]


def unlearn_entries(cfg: Any) -> list[str]:
    """Run entries of the unlearning stage, in order."""
    return [f"unlearn.{m.name}" for m in unlearn_specs(cfg)]


def sets(session: Any) -> tuple[Any, Any]:
    """The forget and retain sets as splits of the training split."""
    train = session.benchmark.train
    retain = np.setdiff1d(np.arange(len(train)), session.forget)
    return train.subset(session.forget, name="forget"), train.subset(retain, name="retain")


def method_data(session: Any, split: Any, features: bool) -> Data:
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


def unlearned(session: Any, spec: UnlearnSpec, original: Predictor, forget: Any, retain: Any):
    """The original model after ``spec``'s method (a copy; the original is untouched)."""
    method = UNLEARN[spec.method]
    options = build(method.config, spec.options, f"unlearn.methods.{spec.name}")
    model = original.model
    head_only = isinstance(model, Classifier) and model.featurizer is session.backbone.featurizer
    target: nn.Module = Classifier(nn.Identity(), model.head) if head_only else model
    result = method.obj(
        target,
        method_data(session, forget, head_only),
        method_data(session, retain, head_only),
        options,
        seed=session.cfg.seed,
        device=session.device,
    )
    return Classifier(session.backbone.featurizer, result.head) if head_only else result


def run_unlearning(session: Any, spec: UnlearnSpec) -> None:
    """One unlearning entry: the original (a summary only), retraining, or a method."""
    cfg = session.cfg.unlearn
    on = session.unlearn_on
    key = f"unlearn.{spec.name}"
    forget_digest = hashlib.sha256(",".join(map(str, session.forget)).encode()).hexdigest()[:16]
    deps = [session.digests[on], session.digests.get("unlearn.retrain", "")]
    extra = {**session.extra, "forget": forget_digest, "unlearn": spec.to_dict(), "cfg": str(cfg)}
    digest = recipe_digest(session.specs[on], deps, extra)
    session.digests[key] = digest
    if session.store.finished(key, digest):
        log(f"{key}: finished in an earlier run of {session.store.path}; skipped")
        remember_retrain(session, spec)
        return
    forget, retain = sets(session)
    original = session.lookup(on)
    log(f"[bold]{key}[/bold] on {escape(on)} ({len(forget)} examples to forget)")
    started = time.perf_counter()
    if spec is ORIGINAL:
        model = original.model
    elif spec.method == "retrain":
        curated = dataclasses.replace(session.benchmark, train=retain)
        made = session.produce(session.specs[on], curated)
        model = next(p for p in made if not p.info.get("trend_point")).model
    else:
        model = unlearned(session, spec, original, forget, retain)
    seconds = time.perf_counter() - started
    tag = {"method": spec.method, "params": dict(spec.options), "n_forget": len(forget)}
    info = {k: v for k, v in original.info.items() if k not in TAGS}
    predictor = Predictor(
        original.name if spec is ORIGINAL else f"unlearn.{spec.name}/{on}",
        original.recipe,
        model,
        params=dict(original.params),
        save=False,
        info={**info, "unlearn": tag},
    )
    scored = [] if spec is ORIGINAL else session.score(predictor)
    by_split = {s.record["split"]: s.record for s in scored}
    if spec is ORIGINAL:
        by_split = {
            r["split"]: r for r in session.store.records_of(on) if r["model"] == original.name
        }
    summary, logits, outputs = summarize(session, model, forget, retain, by_split, cfg)
    if spec is ORIGINAL and session.backbone.kind == "causal_lm":
        summary.update(original_membership(session, model, cfg))
    if spec.method == "retrain" and "auroc_min_k" in summary:  # the reference of PrivLeak
        summary.update(privleak=0.0, privleak_min_k_pp=0.0)
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
    scored.append(Scored(record, logits, forget, outputs))
    session.store.finish(key, digest, scored)
    session.store.write_records(session.entries)
    remember_retrain(session, spec)


def summarize(session: Any, model: nn.Module, forget: Any, retain: Any, records: dict, cfg: Any):
    """The unlearning summary of ``model``, with the forget set's logits (or generations)."""
    if session.backbone.kind == "causal_lm":
        summary = language_model_summary(
            model, forget, session.benchmark, cfg, records, session.retrain_auc
        )
        return summary, torch.zeros(len(forget), 0), None
    unseen = session.benchmark.test
    logits = [model_logits(model, s, session.cache) for s in (forget, retain, unseen)]
    return classifier_summary(*logits, forget, retain, unseen), logits[0], None


def original_membership(session: Any, model: nn.Module, cfg: Any) -> dict[str, Any]:
    """The trained model's membership AUROC by every score: its whole training set (forget and
    retain) against the holdout split, the pretrained model as the reference score's reference."""
    holdout = split_named(session.benchmark, cfg.holdout, "holdout")
    if holdout is None:
        return {}
    pretrained = session.backbone.featurizer
    aurocs = membership_aurocs(
        model.model,
        model.tokenizer,
        full_texts(session.benchmark.train),
        full_texts(holdout),
        cfg.membership_k,
        reference=pretrained.model,
    )
    return {"membership_auroc": aurocs}


def remember_retrain(session: Any, spec: UnlearnSpec) -> None:
    """Keep retraining's membership AUROC: PrivLeak of every method is relative to it."""
    if spec is ORIGINAL or spec.method != "retrain":
        return
    records = session.store.records_of(f"unlearn.{spec.name}")
    summary = next((r for r in records if r["split"] == "unlearning"), {})
    if "auroc_min_k" in summary:
        session.retrain_auc = {
            "min_k": summary["auroc_min_k"],
            "min_k_pp": summary["auroc_min_k_pp"],
        }
