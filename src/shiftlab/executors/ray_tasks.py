"""The Ray executor: a run as a graph of Ray tasks (``executor: ray``).

The driver first encodes every split with the pretrained backbone (once, for every job), then
walks the job graph of :meth:`Session.jobs`, model-soup ingredients included as jobs of their
own: every job whose dependencies have finished is prepared on the driver (digest; skipped if
finished before) and submitted as a task with the config's resources (``resources: {num_cpus:
4, num_gpus: 1}``). A worker process opens the run directory the driver made (a
:class:`Session` with ``worker=True``, kept for its next task), computes the job and returns its
records with their logits; models, encoded features and ingredients go to the shared run
directory, each file written atomically. The driver finishes each job as it returns, so it alone
writes state and ``records.jsonl``. Unlearning entries run on the driver.

With no ``address``, a local Ray instance sized to the machine is started (and stopped after
the run); with one, the run joins that cluster, whose workers must see the run directory at the
same path (a shared filesystem).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from shiftlab._optional import require
from shiftlab.config.sections import ExecutorConfig
from shiftlab.errors import ConfigError, MissingExtraError, ShiftlabError
from shiftlab.runtime import log
from shiftlab.session import Session
from shiftlab.stages import default_stages

_RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
_sessions: dict[str, Any] = {}  # a worker process's open run (one at a time)


def run_job(cfg: Any, out: str, job: Any) -> list[Any]:
    """A task: the job's records (with logits), computed in a worker process."""
    import json
    from pathlib import Path

    key = json.dumps([out, cfg.to_dict()], sort_keys=True, default=str)
    if key not in _sessions:
        _sessions.clear()
        _sessions[key] = Session(cfg, Path(out), default_stages(), worker=True)
    return _sessions[key].compute(job)


def _check_reachable(address: str) -> None:
    """Fail at once when nothing answers at a ``host:port`` (or ``ray://host:port``) address."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"executor address '{address}' is not host:port (or ray://host:port)")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        raise ConfigError(
            f"no Ray cluster answers at {address} ({exc.strerror or type(exc).__name__}); start "
            "one with `ray start --head`, or drop the address for a local Ray instance"
        ) from None


def task_options(resources: dict[str, float]) -> dict[str, Any]:
    """Ray ``.options()`` of the config's resources: num_cpus, num_gpus and memory by name,
    any other key a custom resource."""
    options: dict[str, Any] = {k: v for k, v in resources.items() if k in _RAY_NAMES}
    custom = {k: float(v) for k, v in resources.items() if k not in _RAY_NAMES}
    if custom:
        options["resources"] = custom
    return options


def check_resources(resources: dict[str, float], nodes: list[dict[str, float]]) -> None:
    """A task's resources must fit on one node of the cluster.

    Raises:
        ConfigError: no node has them (names what the largest nodes offer).
    """
    wanted = {_RAY_NAMES.get(k, k): float(v) for k, v in resources.items()}
    if any(all(node.get(k, 0.0) >= v for k, v in wanted.items()) for node in nodes):
        return
    offer = (
        "; ".join(", ".join(f"{k}={node.get(k, 0):g}" for k in wanted) for node in nodes)
        or "no nodes"
    )
    asked = ", ".join(f"{k}={v:g}" for k, v in resources.items())
    raise ConfigError(
        f"no Ray node has the resources each task asks for ({asked}); the nodes offer: {offer}"
    )


class RayExecutor:
    """Jobs as Ray tasks (see the module docstring)."""

    def __init__(self, cfg: ExecutorConfig) -> None:
        try:
            self.ray = require("ray", "ray")
        except MissingExtraError:
            raise MissingExtraError(
                "executor: ray needs Ray, which is not installed; run: pip install 'shiftlab[ray]'"
            ) from None
        self.options = task_options(cfg.resources)
        if cfg.address is not None:
            _check_reachable(cfg.address)
        self.started = not self.ray.is_initialized()
        if self.started:
            init: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING"}
            if cfg.address is None:  # a local instance sized to the machine
                init["num_cpus"] = os.cpu_count() or 1
            else:
                init["address"] = cfg.address
            try:
                self.ray.init(**init)
            except ConnectionError as exc:
                raise ConfigError(f"cannot join the Ray cluster at {cfg.address}: {exc}") from None
        try:
            nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
            check_resources(cfg.resources, nodes)
        except ConfigError:
            self.close()
            raise
        self.address = cfg.address or "a local Ray instance"

    def close(self) -> None:
        """Stop the Ray instance this executor started (a joined cluster keeps running)."""
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()

    def run(self, session: Session) -> None:
        try:
            self._run(session)
        finally:
            self.close()

    def _run(self, session: Session) -> None:
        ray = self.ray
        remote = ray.remote(run_job).options(**self.options)
        cfg_ref = ray.put(session.cfg)
        out = str(session.store.path.resolve())
        pending = session.jobs(parallel=True)
        done: set[str] = set()
        running: dict[Any, Any] = {}
        log(f"executor: Ray ({self.address}), {len(pending)} jobs, each {self.options}")
        while pending or running:
            ready = [j for j in pending if all(d in done for d in j.deps)]
            for job in ready:
                pending.remove(job)
                if not session.prepare(job):
                    done.add(job.key)
                elif job.on_driver:
                    session.finish(job, session.compute(job))
                    done.add(job.key)
                else:
                    running[remote.remote(cfg_ref, out, job)] = job
            if ready and not running:
                continue  # jobs finished on the driver may have freed others
            if not running:
                missing = sorted({d for j in pending for d in j.deps} - done)
                raise RuntimeError(f"jobs wait for entries that never run: {missing}")
            finished, _ = ray.wait(list(running), num_returns=1)
            job = running.pop(finished[0])
            try:
                scored = ray.get(finished[0])
            except ray.exceptions.RayTaskError as exc:
                for ref in running:  # the run stops at its first failure, as a local one does
                    ray.cancel(ref, force=True)
                cause = getattr(exc, "cause", None)
                if isinstance(cause, ShiftlabError):
                    raise cause from None
                raise
            session.finish(job, scored)
            done.add(job.key)
