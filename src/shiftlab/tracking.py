"""MLflow tracking of a run (``tracking: {mlflow: {uri: ..., experiment: ...}}``).

One MLflow run per run directory (the parent) and one nested run per entry with records
(recipe entries and their seed repeats, curated retrains, unlearning, conjugate prompts,
adapters): the entry's resolved options as params, one metric per number of every record
(``SPLIT.METRIC``; ``SPLIT.METRIC_low`` / ``_high`` for its interval; a ``MODEL/`` or
``ADAPTER/`` prefix where an entry's records have several), and tags (seed, backbone, curation,
unlearning). At the end the parent gets ``config.yaml``, ``records.jsonl``, the report and the
predictions files as artifacts.

The parent's id is kept in ``RUN_DIR/tracking/mlflow.json`` (not under ``state/``, whose files
are entries), so a resumed or repeated run continues the same parent. An entry's nested run is
tagged with its key and digest (``shiftlab.entry``, ``shiftlab.digest``): an entry already
logged with its digest is never logged again, one finished in an earlier run and not logged yet
(tracking added later, or a run killed between the two) is logged when the resumed run skips
it, and one run again with changed options gets a new nested run (the old one is tagged
``shiftlab.superseded``).

What can be checked before any work is (``open_tracker``: MLflow installed, the URI's scheme,
the store answering): a :class:`ConfigError`. A failure once the run is under way is a one-line
warning, tracking stops for the rest of the run, and the run goes on; running it again logs
what is missing. Only the main process of a multi-process run logs.

The default URI is an SQLite database, ``sqlite:///mlruns/mlflow.db`` in the working directory,
with artifacts beside it (``mlruns/artifacts/``): it works offline, and MLflow 3 refuses the
file store (``./mlruns`` as a folder of files) unless ``MLFLOW_ALLOW_FILE_STORE=true``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rich.markup import escape

from shiftlab import distributed
from shiftlab._optional import require
from shiftlab.atomic import write_atomic
from shiftlab.config.sections import EntrySpec, MLflowConfig, RunConfig
from shiftlab.errors import ConfigError
from shiftlab.jobs import Job
from shiftlab.runtime import log
from shiftlab.session import Session
from shiftlab.typed import to_plain

STATE = Path("tracking") / "mlflow.json"
PARENT_ARTIFACTS = ("config.yaml", "records.jsonl", "report.html", "report.md")
PARENT_FOLDERS = ("report_files", "predictions")

#: Numbers of a record that describe it rather than score it (tags, or nothing).
NOT_METRICS = frozenset({"n", "seed", "seed_of", "severity", "max_new_tokens"})
#: Record keys whose value (common to an entry's records) becomes a tag of its nested run.
RECORD_TAGS = ("seed", "seed_of", "recipe", "adapter", "conjugate", "task", "calibrated")
#: Record keys holding a mapping that becomes ``KEY.FIELD`` tags.
RECORD_TAG_GROUPS = ("curation", "unlearn")
#: What tells an entry's records apart, in the order a metric's prefix names them.
DIMENSIONS = ("model", "adapter", "conjugate")

# MLflow's limits (mlflow.utils.validation), where the installed version does not say.
MAX_KEY = 250
MAX_PARAM = 500
MAX_TAG = 5000
MAX_BATCH = 100  # params or tags per log_batch call (metrics: 1000)
PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def one_line(exc: BaseException) -> str:
    """An exception's message on one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 1000 else text[:997] + "..."


def resolve_uri(uri: str) -> str:
    """``uri`` with a relative SQLite or file-store path made absolute (the working directory's),
    so a run resumed from another folder still names the same store."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri[len("sqlite:///") :]
        if path and not path.startswith(":memory:"):
            return "sqlite:///" + str(Path(path).resolve())
    scheme = urlparse(uri).scheme
    if scheme == "":
        return Path(uri).resolve().as_uri()
    if scheme == "file" and not uri.startswith("file://"):
        return Path(uri[len("file:") :]).resolve().as_uri()
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of an ``sqlite:///`` URI (None for other URIs)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if path.startswith(":memory:") else Path(path)


def known_schemes() -> list[str] | None:
    """The URI schemes the installed MLflow stores runs at (plugins included); None when this
    MLflow does not say (its registry moved)."""
    try:
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry

        return sorted(str(s) for s in _tracking_store_registry._registry)
    except (ImportError, AttributeError):
        return None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """MLflow's and Alembic's INFO lines (database migrations) and warnings kept off the run's
    output."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Environment variables set for the block, restored after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def open_tracker(cfg: RunConfig, out: Path) -> MLflowTracker | None:
    """The run's tracker, checked before any work: None without ``tracking.mlflow`` and on the
    processes of a multi-process run that are not the main one.

    Raises:
        MissingExtraError: MLflow is not installed.
        ConfigError: the URI's scheme is not one MLflow stores runs at, the store cannot be
            opened or does not answer (one try, 10 s for a server), or the experiment is deleted.
    """
    settings = cfg.tracking.mlflow
    if settings is None:
        return None
    require("mlflow", "mlflow")
    uri = resolve_uri(settings.uri)
    scheme = urlparse(uri).scheme
    schemes = known_schemes()
    if schemes is not None and scheme not in schemes:
        raise ConfigError(
            f"tracking.mlflow.uri {settings.uri!r}: MLflow stores runs at "
            f"{', '.join(s + ':' for s in schemes if s)} URIs, not {scheme}:"
        )
    if not distributed.is_main_process():
        return None
    experiment = settings.experiment or Path(out).resolve().name
    return MLflowTracker(connect(uri, settings, experiment), uri, experiment, Path(out), cfg)


def connect(uri: str, settings: MLflowConfig, name: str) -> Any:
    """An ``MlflowClient`` of ``uri`` whose store answered a read (experiment ``name``'s
    lookup; one try, 10 s, for a server).

    Raises:
        ConfigError: it cannot be opened, does not answer, or the experiment is deleted.
    """
    from mlflow.tracking import MlflowClient

    database = sqlite_path(uri)
    try:
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        with quiet(), environment(PROBE_ENV):
            client = MlflowClient(tracking_uri=uri)
            found = client.get_experiment_by_name(name)
    except Exception as exc:
        raise ConfigError(f"tracking.mlflow.uri {settings.uri!r}: {one_line(exc)}") from None
    if found is not None and found.lifecycle_stage == "deleted":
        raise ConfigError(
            f"tracking.mlflow.experiment {name!r} is deleted in {uri}; restore it "
            "(mlflow experiments restore) or name another"
        )
    return client


def limit(name: str, default: int) -> int:
    """One of MLflow's size limits, as the installed version has it."""
    try:
        from mlflow.utils import validation

        return int(getattr(validation, name, default))
    except ImportError:
        return default


def truncate(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 3] + "..."


def safe_key(key: str) -> str:
    """A metric, param or tag key MLflow takes: slashes, ASCII letters, digits, ``_ . - ``
    and spaces, no empty, ``.`` or ``..`` path segment, at most 250 characters."""
    key = re.sub(r"/+", "/", re.sub(r"[^A-Za-z0-9_./\- ]", "_", key)).strip("/") or "_"
    key = "/".join("_" + p if p.startswith(".") else p for p in key.split("/"))
    key = key[: limit("MAX_ENTITY_KEY_LENGTH", MAX_KEY)].rstrip("/")
    return key if posixpath.normpath(key) == key else re.sub(r"[./]", "_", key)


def text_value(value: Any) -> str:
    """A param or tag value as text: strings as they are, other values as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(to_plain(value), sort_keys=True, default=str)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``a.b.c`` keys; other values (lists included) are leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value} if prefix else {}


def entry_params(job: Job) -> dict[str, str]:
    """An entry's resolved options, flattened (``probe.num_c``), as MLflow params."""
    spec = job.spec
    if not isinstance(spec, EntrySpec) or spec.options is None:
        return {}
    size = limit("MAX_PARAM_VAL_LENGTH", MAX_PARAM)
    options = to_plain(spec.options)
    return {
        safe_key(k): truncate(text_value(v), size)
        for k, v in flatten(options if isinstance(options, dict) else {"options": options}).items()
    }


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def entry_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """One metric per number of every record: ``[PREFIX/]SPLIT.METRIC``, its interval as
    ``SPLIT.METRIC_low`` / ``_high``, per-group accuracies as ``SPLIT.group_accuracy/GROUP``.
    PREFIX names the model, adapter and conjugate transform where the entry's records have
    several."""
    varying = [d for d in DIMENSIONS if len({text_value(r.get(d)) for r in records}) > 1]
    metrics: dict[str, float] = {}

    def add(key: str, value: Any) -> None:
        if not is_number(value):
            return
        key = safe_key(key)
        name, n = key, 2
        while name in metrics:  # two names made the same by sanitising
            name, n = f"{key}_{n}", n + 1
        metrics[name] = float(value)

    for record in records:
        dims = [str(record.get(d)) if record.get(d) is not None else "none" for d in varying]
        base = "/".join([*dims, str(record.get("split", "all"))])
        for key, value in record.items():
            if key not in NOT_METRICS:
                add(f"{base}.{key}", value)
        for key, bounds in (record.get("ci") or {}).items():
            if isinstance(bounds, (list, tuple)) and len(bounds) == 2:
                add(f"{base}.{key}_low", bounds[0])
                add(f"{base}.{key}_high", bounds[1])
        for group, value in (record.get("group_accuracy") or {}).items():
            add(f"{base}.group_accuracy/{group}", value)
    return metrics


def entry_tags(session: Session, job: Job, records: list[dict[str, Any]]) -> dict[str, str]:
    """Tags of an entry's nested run: its key, digest, stage and kind, the backbone and data,
    and the values its records share (seed, recipe, adapter, curation, unlearning)."""
    tags: dict[str, Any] = {
        "shiftlab.entry": job.key,
        "shiftlab.digest": job.digest,
        "shiftlab.stage": job.stage,
        "shiftlab.kind": job.kind,
        "backbone": session.cfg.backbone.name,
        "data": session.cfg.data.kind,
    }
    if isinstance(job.spec, EntrySpec):
        tags["method"] = job.spec.kind
        if job.spec.on is not None:
            tags["on"] = job.spec.on
    found: dict[str, list[str]] = {}
    for record in records:
        values = {k: record.get(k) for k in RECORD_TAGS}
        for group in RECORD_TAG_GROUPS:
            if isinstance(record.get(group), dict):
                values.update(flatten(record[group], f"{group}."))
        for key, value in values.items():
            if value is not None and text_value(value) not in found.setdefault(key, []):
                found[key].append(text_value(value))
    tags.update({k: ", ".join(v) for k, v in found.items() if v})
    size = limit("MAX_TAG_VAL_LENGTH", MAX_TAG)
    return {safe_key(k): truncate(text_value(v), size) for k, v in tags.items()}


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MLflowTracker:
    """Logs a run to MLflow (see the module's docstring). An observer of the session
    (:class:`shiftlab.session.Observer`); the driver closes it once the report is written."""

    def __init__(self, client: Any, uri: str, experiment: str, out: Path, cfg: RunConfig):
        self.client, self.uri, self.experiment = client, uri, experiment
        self.out, self.cfg = out, cfg
        self.experiment_id: str | None = None
        self.parent: str | None = None
        self.logged: dict[str, dict[str, str]] = {}  # entry -> digest -> nested run id
        self.failed = False

    # What the session and the driver call: never raises but on a bug of its own -----------

    def entry(self, session: Session, job: Job, records: list[dict[str, Any]]) -> None:
        """Log a finished entry as a nested run, unless it is logged with this digest."""
        self.guard(self.log_entry, session, job, records)

    def close(self, status: str = "FINISHED") -> None:
        """End the parent run: with the report, records and predictions as artifacts when it
        finished, marked FAILED or KILLED otherwise."""
        self.guard(self.end, status)

    def guard(self, work: Any, *args: Any) -> None:
        if self.failed:
            return
        try:
            with quiet():
                work(*args)
        except Exception as exc:
            self.failed = True
            log(
                escape(
                    f"warning: tracking: MLflow at {self.uri} failed ({one_line(exc)}); the run "
                    "goes on without tracking, and running it again logs what is missing"
                )
            )

    # The work ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the parent run (once): the one this run directory names, else a new one."""
        if self.parent is not None:
            return
        self.experiment_id = self.experiment_of()
        state_path = self.out / STATE
        parents = self.read_state(state_path)
        for item in parents:
            if item.get("uri") == self.uri and item.get("experiment_id") == self.experiment_id:
                self.parent = self.active(str(item.get("run_id")))
        if self.parent is None:
            run = self.client.create_run(
                self.experiment_id,
                run_name=self.out.resolve().name,
                tags={
                    "shiftlab.run_dir": str(self.out.resolve()),
                    "backbone": self.cfg.backbone.name,
                    "data": self.cfg.data.kind,
                    "seed": str(self.cfg.seed),
                },
            )
            self.parent = run.info.run_id
            parents = [
                p
                for p in parents
                if (p.get("uri"), p.get("experiment_id")) != (self.uri, self.experiment_id)
            ]
            item = {"uri": self.uri, "experiment_id": self.experiment_id, "run_id": self.parent}
            write_atomic(state_path, json.dumps({"parents": [*parents, item]}, indent=1) + "\n")
        else:
            self.client.update_run(self.parent, status="RUNNING")
        self.logged = self.children()

    def experiment_of(self) -> str:
        """The experiment's id, made when missing (beside an SQLite store, its artifacts go to
        ``artifacts/`` next to the database file, not under the working directory)."""
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise RuntimeError(f"experiment {self.experiment!r} is deleted")
            return found.experiment_id
        database = sqlite_path(self.uri)
        location = (database.parent / "artifacts").as_uri() if database is not None else None
        return self.client.create_experiment(self.experiment, artifact_location=location)

    @staticmethod
    def read_state(path: Path) -> list[dict[str, Any]]:
        if not path.is_file():
            return []
        try:
            parents = json.loads(path.read_text(encoding="utf-8")).get("parents", [])
        except (ValueError, AttributeError, OSError):
            log(escape(f"warning: {path} cannot be read; a new MLflow parent run is made"))
            return []
        return [p for p in parents if isinstance(p, dict)]

    def active(self, run_id: str) -> str | None:
        """``run_id`` when that run exists and is not deleted."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return None
        return run_id if run.info.lifecycle_stage == "active" else None

    def children(self) -> dict[str, dict[str, str]]:
        """The parent's nested runs that finished logging, by entry and digest; one cut short
        (a run killed while logging it) is deleted, to be logged again."""
        logged: dict[str, dict[str, str]] = {}
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`mlflow.parentRunId` = '{self.parent}'",
                max_results=1000,
                page_token=token,
            )
            for run in page:
                tags = run.data.tags
                if "shiftlab.entry" not in tags:
                    continue
                if run.info.status != "FINISHED":
                    self.client.delete_run(run.info.run_id)
                    continue
                entry = logged.setdefault(tags["shiftlab.entry"], {})
                entry[tags.get("shiftlab.digest", "")] = run.info.run_id
            token = page.token
            if not token:
                return logged

    def log_entry(self, session: Session, job: Job, records: list[dict[str, Any]]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        self.start()
        earlier = self.logged.setdefault(job.key, {})
        if job.digest in earlier:
            return
        run = self.client.create_run(
            self.experiment_id, run_name=job.key, tags={"mlflow.parentRunId": self.parent}
        )
        run_id = run.info.run_id
        stamp = int(time.time() * 1000)
        metrics = [Metric(k, v, stamp, 0) for k, v in entry_metrics(records).items()]
        params = [Param(k, v) for k, v in entry_params(job).items()]
        tags = [RunTag(k, v) for k, v in entry_tags(session, job, records).items()]
        for part in chunks(metrics, 1000):
            self.client.log_batch(run_id, metrics=part)
        for part in chunks(params, MAX_BATCH):
            self.client.log_batch(run_id, params=part)
        for part in chunks(tags, MAX_BATCH):
            self.client.log_batch(run_id, tags=part)
        self.client.set_terminated(run_id, "FINISHED")
        for old in earlier.values():  # the entry ran again with other options
            self.client.set_tag(old, "shiftlab.superseded", "true")
        earlier[job.digest] = run_id

    def end(self, status: str) -> None:
        if status == "FINISHED":
            self.start()
            for name in PARENT_ARTIFACTS:
                if (self.out / name).is_file():
                    self.client.log_artifact(self.parent, str(self.out / name))
            for name in PARENT_FOLDERS:
                if (self.out / name).is_dir():
                    self.client.log_artifacts(self.parent, str(self.out / name), name)
        if self.parent is not None:
            self.client.set_terminated(self.parent, status)
