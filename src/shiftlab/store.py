"""The run directory: resolved config, records, resume markers, models and the feature cache.

Layout::

    RUN_DIR/config.yaml       the resolved config (every default filled in)
    RUN_DIR/records.jsonl     one record per (predictor, adapter, split), in config order
    RUN_DIR/state/NAME.json   a finished recipe: its config digest and records (resume marker)
    RUN_DIR/models/NAME.safetensors   weights of kept predictors (heads alone when the
                                      featurizer is the pretrained one)
    RUN_DIR/predictions/NAME.parquet  per-example logits of every record of entry NAME
    RUN_DIR/cache/            cached features
    RUN_DIR/report.html, report.md, report_files/
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from shiftlab import predictions
from shiftlab.atomic import atomic_path, write_atomic
from shiftlab.config.load import read_mapping_file
from shiftlab.config.sections import DataConfig, RunConfig
from shiftlab.distributed import main_writes
from shiftlab.errors import RunDirError
from shiftlab.files import check_out_dir, read_text
from shiftlab.models.backbone import Backbone
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.models.fingerprint import weights_fingerprint
from shiftlab.predictions import Scored
from shiftlab.runtime import log
from shiftlab.typed import to_plain

IDENTITY_KEYS = ("data", "backbone", "prompts", "seed")


def safe_name(name: str) -> str:
    """A file-name-safe form of a predictor or recipe name."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)


def read_records(path: Path) -> list[dict[str, Any]]:
    """All records of a ``records.jsonl`` file. A last line cut short (the file of a run killed
    while writing it) is skipped with a warning; ``shiftlab run`` on the folder rewrites it.

    Raises:
        RunDirError: the file is missing or not UTF-8, or a line is not a shiftlab record.
    """
    text = read_text(path, "records file", RunDirError)
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines) and not text.endswith("\n"):
                log(
                    f"warning: {path}: line {number} is cut short (a run killed while writing "
                    "it); skipped, and `shiftlab run` on the folder writes it again"
                )
                continue
            raise RunDirError(f"{path} line {number} is not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not {"model", "split"} <= set(record):
            raise RunDirError(
                f"{path} line {number} is not a shiftlab record (it has no model and split); "
                "remove it, or run again to rewrite the file"
            )
        records.append(record)
    return records


def read_run_config(path: Path) -> dict[str, Any]:
    """The resolved config a run directory holds (``config.yaml``; ``{}`` without one)."""
    config_path = Path(path) / "config.yaml"
    if not config_path.exists():
        return {}
    return read_mapping_file(config_path, "run config", RunDirError)


def same_setting(previous: Any, current: Any, default: Any) -> bool:
    """Whether a run directory's setting equals the current one. A key that an older shiftlab
    did not write matches when the current value is that key's default (it could not have been
    set otherwise), so upgrading never orphans a run directory."""
    if isinstance(previous, dict) and isinstance(current, dict):
        default = default if isinstance(default, dict) else {}
        return all(
            same_setting(previous[k], current.get(k), default.get(k))
            if k in previous
            else current.get(k) == default.get(k)
            for k in {*previous, *current}
        )
    return previous == current


# Options that do not change a recipe's records: left out of its digest, so turning them on
# (or upgrading to a shiftlab that has them) never reruns a finished entry.
HOW_NOT_WHAT = ("checkpoint_every", "gradient_checkpointing")


# Options added later, left out of digests at their defaults so earlier runs stay finished.
ADDED_LATER = {"accumulate_steps": 1, "group_by_length": False}


def added_later(options: Any) -> dict[str, Any]:
    """The options of a dataclass declared ``added_later`` (:func:`shiftlab.typed.param`), with
    their defaults."""
    if not dataclasses.is_dataclass(options):
        return {}
    return {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(options)
        if f.metadata.get("added_later")
    }


def _what(options: Any, later: dict[str, Any] | None = None) -> Any:
    """Options without those of :data:`HOW_NOT_WHAT` and those of :data:`ADDED_LATER` (and
    ``later``) at their defaults."""
    if not isinstance(options, dict):
        return options
    later = {**ADDED_LATER, **(later or {})}
    return {
        k: v
        for k, v in options.items()
        if k not in HOW_NOT_WHAT and not (k in later and v == later[k])
    }


def recipe_digest(spec: Any, dependencies: list[str], extra: dict[str, Any] | None = None) -> str:
    """Hash of an entry's options, of the digests of the entries it consumes, and of run
    options that change its records (``extra``). (The payload's layout is that of the first
    versions, so that their run directories resume.)"""
    later = added_later(spec.options)
    recipe = {k: _what(v, later) for k, v in spec.to_dict().items()}
    config = _what(to_plain(spec.options), later)
    payload = json.dumps(
        {
            "recipe": recipe,
            "config": config,
            "deps": dependencies,
            "extra": extra or {},
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.config_path = path / "config.yaml"
        self.records_path = path / "records.jsonl"
        self.state_dir = path / "state"
        self.models_dir = path / "models"
        self.cache_dir = path / "cache"

    @classmethod
    def holds_run_of(cls, path: Path, cfg: RunConfig) -> bool:
        """Whether ``path`` holds a run of the same data, backbone, prompts and seed."""
        store = cls(path)
        if not store.config_path.is_file():
            return False
        return not store.changed_identity(read_run_config(path), cfg)

    def changed_identity(self, previous: dict[str, Any], cfg: RunConfig) -> list[str]:
        """The identity keys on which a previous run's config differs from ``cfg``."""
        resolved = cfg.to_dict()
        defaults = RunConfig(data=DataConfig(kind=cfg.data.kind)).to_dict()
        return [
            k
            for k in IDENTITY_KEYS
            if not same_setting(previous.get(k), resolved.get(k), defaults.get(k))
        ]

    @classmethod
    def check(cls, path: Path, cfg: RunConfig) -> None:
        """Whether ``path`` can take a run of ``cfg`` (new, or a run of the same data,
        backbone, prompts and seed), without writing anything.

        Raises:
            ConfigError: the path is a file, goes through one, or cannot be written.
            RunDirError: the folder holds something else, or a run of a different config.
        """
        check_out_dir(path)
        store = cls(path)
        if store.config_path.is_file():
            changed = store.changed_identity(read_run_config(path), cfg)
            if changed:
                raise RunDirError(
                    f"{path} holds a run with a different {', '.join(changed)}; "
                    "choose another --out or delete that folder"
                )
        elif path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunDirError(
                f"{path} exists and is not a shiftlab run directory; choose another --out"
            )

    @classmethod
    def create(cls, path: Path, cfg: RunConfig) -> RunStore:
        """Open ``path`` for ``cfg`` (see :meth:`check`)."""
        cls.check(path, cfg)
        store = cls(path)
        resolved = cfg.to_dict()
        with main_writes() as main:  # in a run on several processes, the main one writes
            if main:
                for stray in path.rglob(".*.tmp") if path.is_dir() else []:
                    stray.unlink(missing_ok=True)  # half-written by a run that was killed
                for folder in (store.state_dir, store.models_dir, store.cache_dir):
                    folder.mkdir(parents=True, exist_ok=True)
                write_atomic(store.config_path, yaml.safe_dump(resolved, sort_keys=False))
        return store

    def _state_path(self, name: str) -> Path:
        return self.state_dir / f"{safe_name(name)}.json"

    def finished(self, name: str, digest: str) -> bool:
        """Whether recipe entry ``name`` already finished with these options."""
        path = self._state_path(name)
        if not path.is_file():
            return False
        return json.loads(path.read_text(encoding="utf-8")).get("digest") == digest

    def finish(self, name: str, digest: str, scored: list[Scored]) -> None:
        """Mark entry ``name`` finished: its per-example predictions, then its records (each
        naming the predictions file), each file written atomically."""
        relative = f"{predictions.FOLDER}/{safe_name(name)}.parquet"
        records = [{**item.record, "predictions": relative} for item in scored]
        state = {"digest": digest, "records": records}
        with main_writes() as main:
            if main:
                predictions.write(self.path / relative, scored)
                write_atomic(self._state_path(name), json.dumps(state))

    def records_of(self, name: str) -> list[dict[str, Any]]:
        """The records of finished entry ``name`` (none if it has not finished)."""
        path = self._state_path(name)
        if not path.is_file():
            return []
        return json.loads(path.read_text(encoding="utf-8"))["records"]

    def write_records(self, names: list[str]) -> None:
        """Rewrite ``records.jsonl`` from the finished entries among ``names``, in that order."""
        lines = []
        for name in names:
            path = self._state_path(name)
            if path.is_file():
                state = json.loads(path.read_text(encoding="utf-8"))
                lines += [json.dumps(r, allow_nan=True) for r in state["records"]]
        with main_writes() as main:
            if main:
                write_atomic(self.records_path, "".join(line + "\n" for line in lines))

    def saved_predictors(self, entries: list[str]) -> list[str]:
        """Names of the saved predictors of the finished ``entries``, in record order."""
        names: dict[str, None] = {}
        for entry in entries:
            path = self._state_path(entry)
            if path.is_file():
                records = json.loads(path.read_text(encoding="utf-8"))["records"]
                names.update(dict.fromkeys(r["model"] for r in records))
        return [n for n in names if self.has_model(n)]

    def _model_path(self, name: str) -> Path:
        return self.models_dir / f"{safe_name(name)}.safetensors"

    def has_model(self, name: str) -> bool:
        """Whether predictor ``name`` was saved."""
        return self._model_path(name).is_file()

    def save_predictor(self, predictor: Predictor, pretrained_fingerprint: str) -> Path:
        """Save the head, and the featurizer unless it is the pretrained one."""
        model = predictor.model
        own = weights_fingerprint(model.featurizer) != pretrained_fingerprint
        state = {
            k: v.detach().cpu().contiguous()
            for k, v in model.state_dict().items()
            if own or k.startswith("head.")
        }
        metadata = {
            "name": predictor.name,
            "recipe": predictor.recipe,
            "params": json.dumps(predictor.params),
            "featurizer": "own" if own else "pretrained",
        }
        path = self._model_path(predictor.name)
        with main_writes() as main:
            if main:
                with atomic_path(path) as tmp:
                    save_file(state, str(tmp), metadata=metadata)
        return path

    def load_predictor(self, name: str, backbone: Backbone, device: torch.device) -> Predictor:
        """Rebuild a saved predictor on top of ``backbone``."""
        path = self._model_path(name)
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
            state = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        weight = state["head.weight"]
        head = nn.Linear(weight.shape[1], weight.shape[0])
        if metadata["featurizer"] == "own":
            featurizer = copy.deepcopy(backbone.featurizer)
        else:
            featurizer = backbone.featurizer
        model = Classifier(featurizer, head)
        # A head-only file holds no featurizer keys: the shared pretrained one stays as it is.
        model.load_state_dict(state, strict=metadata["featurizer"] == "own")
        model.head.to(device)
        return Predictor(name, metadata["recipe"], model.eval(), json.loads(metadata["params"]))
