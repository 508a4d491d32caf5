"""Running a whole config: the executor, the session and its stages, the report, and the
run's tracking (:mod:`shiftlab.tracking`).

Imports go one way: ``cli`` -> ``driver`` -> ``executors`` -> ``stages`` -> ``session``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from shiftlab import distributed
from shiftlab.config.sections import RunConfig
from shiftlab.errors import ShiftlabError
from shiftlab.executors import make_executor
from shiftlab.report import write_report
from shiftlab.runtime import log
from shiftlab.session import Session
from shiftlab.stages import default_stages
from shiftlab.store import RunStore
from shiftlab.tracking import open_tracker


def discard_unfinished(store: RunStore) -> None:
    """Remove a run directory this invocation created when no entry of it has finished."""
    if distributed.is_main_process() and not any(store.state_dir.glob("*.json")):
        shutil.rmtree(store.path, ignore_errors=True)


def run(cfg: RunConfig, out: Path, *, report: bool = True) -> Path:
    """Run every job of ``cfg`` into run directory ``out`` with the config's executor; write
    the report.

    Entries already finished in ``out`` with the same options are skipped (resume), whichever
    executor ran them. All input is checked (config references, data, backbone, every stage's
    entries, the executor) before ``out`` is created.
    """
    started = time.perf_counter()
    out = Path(out)
    fresh = not out.exists() or (out.is_dir() and not any(out.iterdir()))
    tracker = open_tracker(cfg, out)  # MLflow installed and answering, before any work
    executor = make_executor(cfg)
    try:
        session = Session(cfg, out, default_stages())
    except BaseException:
        getattr(executor, "close", lambda: None)()  # a Ray instance it started stops too
        raise
    if tracker is not None:
        session.observers.append(tracker)
    try:
        executor.run(session)
    except BaseException as exc:
        if tracker is not None:  # the parent run, if an entry made one, says how it ended
            tracker.close("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        if fresh and isinstance(exc, ShiftlabError):
            discard_unfinished(session.store)  # a fixable error before any entry finished
        raise
    session.store.write_records(session.entries)
    if report:
        with distributed.main_writes() as main:
            if main:
                write_report(session.store.path)
    if tracker is not None:
        tracker.close()  # the report, records and predictions as the parent's artifacts
    log(f"run finished in {time.perf_counter() - started:.0f} s: {session.store.path}")
    return session.store.path
