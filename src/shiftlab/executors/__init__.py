"""Where a run's jobs compute (see :mod:`shiftlab.jobs`).

- ``local`` (the default): one job after another in this process (or, under ``--launcher
  accelerate``, in every process of a data-parallel group).
- ``ray``: every job whose dependencies have finished is a Ray task with the config's
  resources, running beside the others; workers share the run directory (models, features,
  model-soup ingredients) and return records to the driver, which alone writes state and
  ``records.jsonl``. See :mod:`shiftlab.executors.ray_tasks`.

Both skip entries finished in an earlier run, so a run started under one executor can be
finished under the other.
"""

from __future__ import annotations

from typing import Protocol

from shiftlab import distributed
from shiftlab.config.sections import RunConfig
from shiftlab.errors import ConfigError
from shiftlab.session import Session


class Executor(Protocol):
    def run(self, session: Session) -> None:
        """Run every job of ``session`` that has not finished before."""


class LocalExecutor:
    """Every job in this process, in order."""

    def run(self, session: Session) -> None:
        for job in session.jobs():
            if session.prepare(job):
                session.finish(job, session.compute(job))


def make_executor(cfg: RunConfig) -> Executor:
    """The executor ``cfg.executor`` names, started and checked (a Ray cluster reachable, with a
    node that has the resources asked for) before the run directory exists.

    Raises:
        ConfigError: Ray is not installed, unreachable, or short of the resources.
    """
    if cfg.executor.kind == "local":
        return LocalExecutor()
    if distributed.is_distributed():
        raise ConfigError(
            "executor: ray cannot run under --launcher accelerate; use one or the other "
            "(a Ray task may use several GPUs through resources: {num_gpus: N})"
        )
    from shiftlab.executors.ray_tasks import RayExecutor

    return RayExecutor(cfg.executor)
