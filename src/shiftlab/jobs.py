"""The work of a run as a graph of jobs: each recipe entry (each seed's repeat), each model-soup
ingredient (under an executor that runs them in parallel), each curated retrain, unlearning
method, conjugate prompt and adapter is one job; a job waits for the jobs whose predictors it
consumes. A job belongs to a stage (:mod:`shiftlab.stages`), which prepares and computes it;
executors (:mod:`shiftlab.executors`) run the graph; the driver alone writes state and
records (:meth:`shiftlab.session.Session.finish`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["features", "recipe", "part", "curated", "unlearn", "conjugate", "adapt"]


@dataclass
class Job:
    """One unit of a run.

    Attributes:
        key: the run entry it finishes (``state/<key>.json``, see :mod:`shiftlab.entries`).
        stage: the name of the stage that prepares and computes it.
        kind: what it is: features (the pretrained features of every split, encoded once),
            recipe, part (of a recipe: a model-soup ingredient), curated, unlearn, conjugate or
            adapt.
        spec: the config entry (an :class:`shiftlab.config.EntrySpec`), if any.
        deps: keys of the jobs that must finish first.
        variant: the curated training set (curated jobs).
        part: the part's name (part jobs).
        on_driver: runs in the driver process under every executor (it reads earlier entries'
            records as it goes: unlearning).
        records: finishing it writes records and a state file (not features, not parts).
        tag_seeds: its records get ``seed`` / ``seed_of`` under ``seeds:``.
        scratch: keys whose scratch folders go once it finishes (its own, its parts').
        digest: set when the job is prepared, once its dependencies have finished.
        targets: the predictors it runs on (conjugate, adapt), set when prepared.
    """

    key: str
    stage: str
    kind: Kind
    spec: Any = None
    deps: list[str] = field(default_factory=list)
    variant: Any = None
    part: str | None = None
    on_driver: bool = False
    records: bool = True
    tag_seeds: bool = True
    scratch: list[str] = field(default_factory=list)
    digest: str = ""
    targets: list[str] = field(default_factory=list)
