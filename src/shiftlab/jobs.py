"""The work of a run as a graph of jobs: each recipe entry (each seed's repeat), each model-soup
ingredient (under an executor that runs them in parallel), each curated retrain, unlearning
method, conjugate prompt and adapter is one job; a job waits for the jobs whose predictors it
consumes. Executors (:mod:`shiftlab.executors`) run the graph; the driver alone writes state and
records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    """One unit of a run.

    Attributes:
        key: the run entry it finishes (``state/<key>.json``); a part's is ``<entry>#<part>``.
        kind: features (the pretrained features of every split, encoded once), recipe, part
            (of a recipe: a model-soup ingredient), curated, unlearn, conjugate or adapt.
        spec: the config entry (a RecipeSpec, AdaptSpec, ...).
        deps: keys of the jobs that must finish first.
        variant: the curated training set (curated jobs).
        part: the part's name (part jobs).
        on_driver: runs in the driver process under every executor (it reads and writes the
            run's state as it goes: unlearning).
        digest: set when the job is prepared, once its dependencies have finished.
    """

    key: str
    kind: str
    spec: Any
    deps: list[str] = field(default_factory=list)
    variant: Any = None
    part: str | None = None
    on_driver: bool = False
    digest: str = ""
    targets: list[str] = field(default_factory=list)  # conjugate, adapt: set when prepared
