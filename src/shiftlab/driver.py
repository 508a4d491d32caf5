"""Running a whole config: the executor, the session and its stages, the report.

Imports go one way: ``cli`` -> ``driver`` -> ``executors`` -> ``stages`` -> ``session``.
"""

from __future__ import annotations

import time
from pathlib import Path

from shiftlab import distributed
from shiftlab.config.sections import RunConfig
from shiftlab.executors import make_executor
from shiftlab.report import write_report
from shiftlab.runtime import log
from shiftlab.session import Session
from shiftlab.stages import default_stages


def run(cfg: RunConfig, out: Path, *, report: bool = True) -> Path:
    """Run every job of ``cfg`` into run directory ``out`` with the config's executor; write
    the report.

    Entries already finished in ``out`` with the same options are skipped (resume), whichever
    executor ran them. All input is checked (config references, data, backbone, every stage's
    entries, the executor) before ``out`` is created.
    """
    started = time.perf_counter()
    executor = make_executor(cfg)
    try:
        session = Session(cfg, Path(out), default_stages())
    except BaseException:
        getattr(executor, "close", lambda: None)()  # a Ray instance it started stops too
        raise
    executor.run(session)
    session.store.write_records(session.entries)
    if report:
        with distributed.main_writes() as main:
            if main:
                write_report(session.store.path)
    log(f"run finished in {time.perf_counter() - started:.0f} s: {session.store.path}")
    return session.store.path
