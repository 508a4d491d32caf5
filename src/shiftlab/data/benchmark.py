"""The data types of a run: a loader's Domains and LoadedData, and the Benchmark of Splits built
from them (ID train / val / test, one test split per OOD domain; see :mod:`.build`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from shiftlab.data.images import ImageFiles, concat_files
from shiftlab.data.splits import stratified_subsample

Role = Literal["train", "id_val", "id_test", "ood", "unlabeled"]
ID_ROLES: tuple[Role, ...] = ("train", "id_val", "id_test")
Modality = Literal["text", "image"]


def take(inputs: Any, index: np.ndarray) -> Any:
    """Select rows of ``inputs`` (texts, an array of images, or image files) by integer index."""
    if isinstance(inputs, np.ndarray):
        return inputs[index]
    if isinstance(inputs, ImageFiles):
        return inputs.subset(index)
    return [inputs[i] for i in index]


def concat(parts: Sequence[Any]) -> Any:
    """Concatenate inputs of one modality."""
    if parts and isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    if parts and isinstance(parts[0], ImageFiles):
        return concat_files(parts)
    return [x for part in parts for x in part]


@dataclass
class Domain:
    """All examples of one domain, as a loader returns them. ``labels`` index ``class_names``."""

    inputs: Any
    labels: np.ndarray
    groups: np.ndarray | None = None
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    ids: np.ndarray | None = None  # stable example ids (str); default "<domain>:<index>"
    true_labels: np.ndarray | None = None  # the clean labels, where ``labels`` may be noisy
    answers: np.ndarray | None = None  # reference answers (str) of a generation task

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def strata(self) -> np.ndarray:
        """What splits and caps stratify on: the groups when there are any, else the (true)
        labels, so that label noise leaves the split as it is without noise."""
        if self.groups is not None:
            return self.groups
        return self.labels if self.true_labels is None else self.true_labels

    def capped(self, cap: int | None, rng: np.random.Generator) -> Domain:
        """At most ``cap`` examples, drawn stratified (itself when already small enough)."""
        if cap is None or len(self) <= cap:
            return self
        return self.subset(stratified_subsample(self.strata, cap, rng))

    def subset(self, index: np.ndarray) -> Domain:
        """The examples at ``index``."""
        return Domain(
            inputs=take(self.inputs, index),
            labels=self.labels[index],
            groups=None if self.groups is None else self.groups[index],
            attributes={k: v[index] for k, v in self.attributes.items()},
            ids=None if self.ids is None else self.ids[index],
            true_labels=None if self.true_labels is None else self.true_labels[index],
            answers=None if self.answers is None else self.answers[index],
        )


@dataclass
class LoadedData:
    """What a dataset loader returns: domains by name, the class names, and the modality.

    A domain may be given as a zero-argument function returning it, read only if used.
    ``fixed_splits`` (role ``train`` / ``id_val`` / ``id_test`` -> domain name) says that some
    domains already are the ID splits (a benchmark's official splits): when the config names no
    ``id_domains``, they are used as they are (caps still apply), a role left out is carved from
    the ``train`` domain in ``data.split``'s proportions, and the OOD domains default to the rest.
    """

    domains: dict[str, Domain | Callable[[], Domain]]
    class_names: list[str]
    modality: Modality = "text"
    group_names: list[str] | None = None
    attributes: list[str] = field(default_factory=list)  # per-example attributes domains carry
    fixed_splits: dict[str, str] | None = None
    # Named parts of an image input, (C, H, W) boolean masks, that annotations name.
    regions: dict[str, np.ndarray] | None = None


@dataclass
class Split:
    """A named set of examples with a role in the protocol.

    Attributes:
        name: "train", "id_val", "id_test", the OOD domain's name, or "unlabeled".
        role: "train", "id_val", "id_test", "ood", or "unlabeled" (the unlabeled pool: its
            labels are all -1, the data's were never kept).
        inputs: list of N texts, or an array of N images.
        labels: int64 array of shape (N,), indices into the benchmark's class names: the
            labels as given (what training and model selection see).
        groups: optional int64 array of shape (N,).
        info: extra record keys for this split (e.g. corruption, severity).
        ids: stable example ids (N,), str.
        true_labels: the clean labels (N,) where ``labels`` may be noisy (a label-noise
            benchmark); metrics are computed against them.
    """

    name: str
    role: Role
    inputs: Any
    labels: np.ndarray
    groups: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    ids: np.ndarray | None = None
    true_labels: np.ndarray | None = None
    domains: np.ndarray | None = None  # (N,) the domain each example came from
    answers: np.ndarray | None = None  # (N,) reference answers (str) of a generation task
    # (N,) per-example annotations naming the input regions that are reliable for it
    # ("core;patch"), "" where an example has none (the ``reliable`` attribute of a loader)
    annotations: np.ndarray | None = None
    # (N,) the caption of each image (image-text data: the ``caption`` attribute of a loader)
    captions: np.ndarray | None = None
    # (N,) bool: which examples data.poison poisoned (training split only)
    poisoned: np.ndarray | None = None
    # The split this one selects examples of, and which (features are derived, not re-encoded).
    parent: tuple[Split, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def eval_labels(self) -> np.ndarray:
        """What metrics are computed against: the clean labels where known, else the given."""
        return self.labels if self.true_labels is None else self.true_labels

    def subset(self, index: np.ndarray, name: str | None = None) -> Split:
        """The examples at ``index`` as a split of the same role (features derived from this
        split's, see ``parent``)."""
        index = np.asarray(index, dtype=np.int64)
        return Split(
            name or self.name,
            self.role,
            take(self.inputs, index),
            self.labels[index],
            None if self.groups is None else self.groups[index],
            dict(self.info),
            None if self.ids is None else self.ids[index],
            None if self.true_labels is None else self.true_labels[index],
            None if self.domains is None else self.domains[index],
            None if self.answers is None else self.answers[index],
            None if self.annotations is None else self.annotations[index],
            None if self.captions is None else self.captions[index],
            None if self.poisoned is None else self.poisoned[index],
            parent=(self, index),
        )

    def relabeled(self, labels: np.ndarray) -> Split:
        """The same examples with other given labels (same features)."""
        copy = self.subset(np.arange(len(self)))
        copy.labels = np.asarray(labels, dtype=np.int64)
        return copy

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the split's contents: the feature cache's key for this split."""
        digest = hashlib.blake2b(digest_size=12)
        digest.update(self.name.encode())
        if isinstance(self.inputs, np.ndarray):
            digest.update(str(self.inputs.shape).encode())
            digest.update(np.ascontiguousarray(self.inputs).tobytes())
        elif isinstance(self.inputs, ImageFiles):
            digest.update(self.inputs.digest())
        else:
            for item in self.inputs:
                text = item if isinstance(item, str) else repr(item)
                digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(self.labels.astype(np.int64).tobytes())
        for answer in self.answers if self.answers is not None else ():
            digest.update(str(answer).encode("utf-8", "surrogatepass") + b"\1")
        for caption in self.captions if self.captions is not None else ():
            digest.update(str(caption).encode("utf-8", "surrogatepass") + b"\2")
        return digest.hexdigest()


@dataclass
class Benchmark:
    """ID train / val / test splits and one test split per OOD domain."""

    name: str
    class_names: list[str]
    modality: Modality
    train: Split
    val: Split
    test: Split
    ood: list[Split]
    id_domains: list[str]
    group_names: list[str] | None = None
    unlabeled: Split | None = None  # the unlabeled pool (labels -1), when data.unlabeled asks
    regions: dict[str, np.ndarray] | None = None  # named input regions (LoadedData.regions)
    # Reads the data's labels of pool examples by index, counting them (an active query):
    # kept apart from the pool itself, so no recipe reads a pool label without asking.
    pool_oracle: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Shape of one image (C, H, W) of an array benchmark; None for text and image files
        (whose size the backbone's transform decides)."""
        inputs = self.train.inputs
        return tuple(inputs.shape[1:]) if isinstance(inputs, np.ndarray) else None

    def eval_splits(self) -> list[Split]:
        """Every split a predictor is scored on: ID val, ID test, then each OOD split."""
        return [self.val, self.test, *self.ood]

    def summary(self) -> str:
        """One line: sizes of every split (corrupted splits counted, not listed)."""
        natural = [s for s in self.ood if "corruption" not in s.info]
        corrupted = [s for s in self.ood if "corruption" in s.info]
        ood = ", ".join(f"{s.name} {len(s)}" for s in natural) or "none"
        if corrupted:
            kinds = len({s.info["corruption"] for s in corrupted})
            ood += f"; {len(corrupted)} corrupted splits ({kinds} corruptions) of ID test"
        line = (
            f"{self.name}: ID {'+'.join(self.id_domains)} train {len(self.train)} / "
            f"val {len(self.val)} / test {len(self.test)}; OOD {ood}"
        )
        if self.unlabeled is not None:
            counts = dict(zip(*np.unique(self.unlabeled.domains, return_counts=True), strict=True))
            line += "; unlabeled pool " + ", ".join(f"{d} {n}" for d, n in counts.items())
        return line
