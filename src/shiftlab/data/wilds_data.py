"""WILDS benchmarks (Koh et al., "WILDS: A Benchmark of in-the-Wild Distribution Shifts",
ICML 2021, arXiv 2012.07421) through the ``wilds`` package: ``wilds``.

Follows WILDS's official splits and its own evaluation. Each split of the dataset is one domain
named after it (``train``, ``id_val``, ``id_test``, ``val``, ``test``, where the dataset has
them). WILDS's ID splits are shiftlab's ID splits, used as they are
(:attr:`~shiftlab.data.benchmark.LoadedData.fixed_splits`); an ID split the dataset lacks
(Waterbirds, CelebA, CivilComments have none; Camelyon17 no ``id_test``) is carved from ``train``
in ``data.split``'s proportions; WILDS's ``val`` and ``test`` are the OOD splits. Naming
``id_domains`` in the config re-splits as for any other loader.

Every metadata field but ``y`` is a per-example attribute (iWildCam ``location``, FMoW
``region``, Camelyon17 ``hospital``, Waterbirds ``background``, ...), so ``data.groups:
label_x_<field>`` works. Groups come from WILDS's own ``CombinatorialGrouper`` over ``groupby``
(default: Waterbirds y x background, CelebA y x male, CivilComments y x black, the grouping of
WILDS's training configs), named as WILDS's evaluation names them (``y:landbird_background:land``).
Images are file paths (:class:`~shiftlab.data.images.ImageFiles`), read the way each WILDS class's
``get_input`` reads them; texts are strings. :func:`wilds_eval` scores predictions with the
dataset's own ``eval``. Nothing is downloaded unless ``download: true``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shiftlab._optional import require
from shiftlab.data.benchmark import ID_ROLES, Domain, LoadedData
from shiftlab.data.images import ImageFiles
from shiftlab.data.samples import sample_waterbirds
from shiftlab.errors import DataError
from shiftlab.registry import DATASETS, unknown_name_message
from shiftlab.runtime import data_dir, log
from shiftlab.typed import param

# Where each dataset's get_input reads example i (image datasets), relative to its data_dir.
IMAGE_PATHS: dict[str, Callable[[Any], list[str]]] = {
    "waterbirds": lambda d: list(d._input_array),
    "celebA": lambda d: [os.path.join("img_align_celeba", f) for f in d._input_array],
    "iwildcam": lambda d: [os.path.join("train", f) for f in d._input_array],
    "fmow": lambda d: [os.path.join("images", f"rgb_img_{i}.png") for i in d.full_idxs],
    "camelyon17": lambda d: list(d._input_array),
    "rxrx1": lambda d: list(d._input_array),
}
TEXTS = {"civilcomments": "_text_array", "amazon": "_input_array", "yelp": "_input_array"}
DEFAULT_GROUPBY = {
    "waterbirds": ["background", "y"],
    "celebA": ["male", "y"],
    "civilcomments": ["black", "y"],
}
SPLIT_ORDER = ("train", "id_val", "id_test", "val", "test")
NOT_ATTRIBUTES = ("y", "from_source_domain")


@dataclass
class WildsOptions:
    """Which WILDS dataset, where it is, and how to group it."""

    dataset: str = param("", "WILDS dataset: waterbirds, celebA, civilcomments, iwildcam, ...")
    root_dir: str = param(
        "",
        "folder holding <dataset>_v<version>/; a relative path missing here is looked up in "
        "$SHIFTLAB_DATA_DIR; default $SHIFTLAB_DATA_DIR/wilds",
    )
    download: bool = param(False, "let WILDS download the dataset when it is missing (large)")
    version: str | None = param(None, "dataset version; default the latest")
    groupby: list[str] | None = param(
        None,
        "metadata fields whose combinations are the groups ([] for none); default: waterbirds "
        "background+y, celebA male+y, civilcomments black+y, others none",
    )


def resolve_root(root_dir: str, download: bool = False) -> Path:
    """``root_dir`` itself, else the same name under ``$SHIFTLAB_DATA_DIR``.

    Raises:
        DataError: neither exists and downloading is off (both named).
    """
    if not root_dir:
        if not data_dir():
            raise DataError("data.root_dir is required for kind 'wilds' (or set SHIFTLAB_DATA_DIR)")
        root_dir = str(Path(data_dir()) / "wilds")
    given = Path(root_dir).expanduser()
    tried = [given]
    if not given.is_dir() and data_dir() and not given.is_absolute():
        for candidate in (Path(data_dir()) / root_dir, Path(data_dir()) / given.name):
            tried.append(candidate)
            if candidate.is_dir():
                return candidate
    if not given.is_dir() and not download:
        raise DataError(
            f"WILDS folder not found: {' or '.join(str(t) for t in tried)}; set data.root_dir "
            "to the folder holding <dataset>_v<version>/, or data.download: true"
        )
    return given


def import_wilds() -> Any:
    """``wilds``, made to run offline on today's stack without changing its numbers.

    Importing ``wilds`` starts a thread asking PyPI for its latest version (through ``outdated``):
    the import is done with ``outdated`` hidden, so nothing leaves the machine. Its group-wise
    metrics average with ``torch_scatter``, a compiled extension with no wheel on PyPI: where it
    is absent, the same per-group mean (0 for an empty group) is computed with plain torch.
    """
    hide = "outdated" not in sys.modules
    if hide:
        sys.modules["outdated"] = None  # type: ignore[assignment]  # ImportError: no check
    try:
        wilds = require("wilds", "wilds")
    finally:
        if hide:
            del sys.modules["outdated"]
    if importlib.util.find_spec("torch_scatter") is None:
        for module in ("utils", "metrics.metric", "metrics.all_metrics", "metrics.loss"):
            importlib.import_module(f"wilds.common.{module}").avg_over_groups = _avg
    return wilds


def _avg(v: Any, g: Any, n_groups: int) -> tuple[Any, Any]:
    """``wilds.common.utils.avg_over_groups`` without torch_scatter: per-group means, counts."""
    import torch

    counts = torch.zeros(n_groups, device=g.device).index_add_(0, g, torch.ones_like(g).float())
    sums = torch.zeros(n_groups, dtype=v.dtype, device=v.device).index_add_(0, g, v)
    return sums / counts.clamp(min=1).to(v.dtype), counts


@functools.lru_cache(maxsize=4)
def open_dataset(name: str, root: str, download: bool = False, version: str | None = None) -> Any:
    """The WILDS dataset object (cached: reading a dataset's metadata takes a while).

    WILDS 2.0 was written for pandas < 3 (it stores split numbers in a column of strings), so the
    dataset is read with pandas' former string inference.

    Raises:
        DataError: an unknown dataset, or one that is not in ``root`` (and not downloaded).
    """
    import pandas as pd

    wilds = import_wilds()
    if name not in wilds.supported_datasets:
        raise DataError(unknown_name_message("WILDS dataset", name, wilds.supported_datasets))
    try:
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            warnings.simplefilter("ignore")  # pandas 3 deprecates the option; WILDS's own noise
            with contextlib.suppress(pd.errors.OptionError):  # gone in pandas 4
                stack.enter_context(pd.option_context("future.infer_string", False))
            return wilds.get_dataset(
                dataset=name, root_dir=root, download=download, version=version
            )
    except FileNotFoundError as exc:
        if download:
            raise DataError(f"WILDS {name}: {exc}") from None
        raise DataError(
            f"WILDS {name} not found in {root} (it needs {name}_v<version>/ with its "
            "RELEASE_v<version>.txt); set data.root_dir, or data.download: true"
        ) from None
    except (ValueError, OSError, KeyError) as exc:
        raise DataError(f"WILDS {name} in {root} cannot be read: {exc}") from None


def _class_names(ds: Any, name: str, given: list[str] | None) -> list[str]:
    n = int(ds.n_classes)
    if given is not None:
        if len(given) != n:
            raise DataError(f"WILDS {name} has {n} classes: data.class_names must name {n}")
        return list(given)
    mapped = (ds.metadata_map or {}).get("y")
    if name == "fmow":
        mapped = importlib.import_module("wilds.datasets.fmow_dataset").categories
    elif name == "civilcomments":
        mapped = ["non_toxic", "toxic"]  # the words of WILDS's evaluation
    return [str(c).strip() for c in mapped] if mapped is not None else [str(i) for i in range(n)]


def _attributes(ds: Any) -> dict[str, np.ndarray]:
    metadata = ds.metadata_array.numpy()
    maps = ds.metadata_map or {}
    out = {}
    for j, field in enumerate(ds.metadata_fields):
        if field in NOT_ATTRIBUTES:
            continue
        values = metadata[:, j]
        if field in maps and values.min() >= 0 and values.max() < len(maps[field]):
            values = np.array([str(v).strip() for v in maps[field]])[values]
        out[field] = values
    return out


def _groups(ds: Any, name: str, fields: list[str]) -> tuple[np.ndarray, list[str]] | None:
    if not fields:
        return None
    for field in fields:
        if field not in ds.metadata_fields:
            message = unknown_name_message(f"{name} metadata field", field, ds.metadata_fields)
            raise DataError(f"data.groupby: {message}")
    ordered = [f for f in ds.metadata_fields if f in fields]  # the grouper's own order
    grouper_cls = importlib.import_module("wilds.common.grouper").CombinatorialGrouper
    grouper = grouper_cls(dataset=ds, groupby_fields=ordered)
    groups = grouper.metadata_to_group(ds.metadata_array).numpy().astype(np.int64)
    return groups, [grouper.group_field_str(g) for g in range(grouper.n_groups)]


def _inputs(ds: Any, name: str) -> tuple[Any, str]:
    if name in IMAGE_PATHS:
        return np.array([os.path.join(ds.data_dir, p) for p in IMAGE_PATHS[name](ds)]), "image"
    return list(getattr(ds, TEXTS[name])), "text"


@DATASETS.register("wilds", options=WildsOptions, fast=sample_waterbirds)
def wilds_benchmark(cfg: WildsOptions, class_names: list[str] | None) -> LoadedData:
    """A WILDS dataset with its official splits: ID train / val / test, OOD val and test."""
    supported = sorted([*IMAGE_PATHS, *TEXTS])
    if cfg.dataset not in supported:
        raise DataError(
            unknown_name_message("WILDS dataset (data.dataset)", cfg.dataset, supported)
        )
    root = resolve_root(cfg.root_dir, cfg.download)
    ds = open_dataset(cfg.dataset, str(root), cfg.download, cfg.version)
    names = _class_names(ds, cfg.dataset, class_names)
    inputs, modality = _inputs(ds, cfg.dataset)
    labels = np.asarray(ds.y_array, dtype=np.int64)
    attributes = _attributes(ds)
    fields = cfg.groupby if cfg.groupby is not None else DEFAULT_GROUPBY.get(cfg.dataset, [])
    grouped = _groups(ds, cfg.dataset, fields)
    split_array = np.asarray(ds.split_array)
    order = [s for s in SPLIT_ORDER if s in ds.split_dict]
    domains: dict[str, Domain] = {}
    for split in [*order, *(s for s in ds.split_dict if s not in order)]:
        index = np.flatnonzero(split_array == ds.split_dict[split])
        if len(index) == 0:
            continue
        domains[split] = Domain(
            inputs=ImageFiles(inputs[index]) if modality == "image" else [inputs[i] for i in index],
            labels=labels[index],
            groups=None if grouped is None else grouped[0][index],
            attributes={k: v[index] for k, v in attributes.items()},
        )
    log(f"wilds {cfg.dataset}: " + ", ".join(f"{d} {len(v)}" for d, v in domains.items()))
    return LoadedData(
        domains,
        names,
        modality,
        group_names=None if grouped is None else grouped[1],
        attributes=list(attributes),
        fixed_splits={role: role for role in ID_ROLES if role in domains},
    )


def _flatten(results: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in results.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}/"))
        elif hasattr(value, "item") or isinstance(value, (int, float)):
            out[f"{prefix}{key}"] = float(value)
    return out


def wilds_eval(
    dataset_name: str,
    root_dir: str,
    split_name: str,
    predictions: np.ndarray,
    version: str | None = None,
) -> dict[str, float]:
    """WILDS's own evaluation of predictions on one split (e.g. ``acc_wg``, ``F1-macro_all``).

    Args:
        dataset_name: the WILDS dataset (``waterbirds``, ...).
        root_dir: as ``data.root_dir`` of the ``wilds`` loader.
        split_name: a WILDS split (``test``, ``id_val``, ...).
        predictions: predicted class indices (N,), or scores (N, C), for every example of the
            split, in the order the loader gives them (WILDS's order).

    Raises:
        DataError: an unknown split, or predictions that do not cover the split.
    """
    import torch

    ds = open_dataset(dataset_name, str(resolve_root(root_dir)), False, version)
    if split_name not in ds.split_dict:
        raise DataError(
            unknown_name_message(f"{dataset_name} split", split_name, list(ds.split_dict))
        )
    subset = ds.get_subset(split_name)
    predicted = np.asarray(predictions)
    if predicted.ndim == 2:
        predicted = predicted.argmax(axis=1)
    if predicted.shape != (len(subset),):
        raise DataError(
            f"wilds_eval: {len(predicted)} predictions for the {len(subset)} examples of "
            f"{dataset_name} {split_name}; predict every example, in the split's order"
        )
    y_pred = torch.as_tensor(predicted.astype(np.int64))
    results, _ = ds.eval(y_pred, subset.y_array, subset.metadata_array)
    return _flatten(results)
