"""Benchmark and Split: ID train / val / test from the ID domains, one test split per OOD domain."""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from shiftlab.config import CorruptionsConfig, DataConfig
from shiftlab.data.corruptions import CORRUPTIONS, corrupt
from shiftlab.data.images import Corruption, ImageFiles, concat_files
from shiftlab.data.splits import stratified_partition, stratified_subsample
from shiftlab.errors import DataError
from shiftlab.registry import unknown_name_message
from shiftlab.runtime import log

Role = Literal["train", "id_val", "id_test", "ood"]
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


@dataclass
class Split:
    """A named set of examples with a role in the protocol.

    Attributes:
        name: "train", "id_val", "id_test", or the OOD domain's name.
        role: "train", "id_val", "id_test" or "ood".
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
        return (
            f"{self.name}: ID {'+'.join(self.id_domains)} train {len(self.train)} / "
            f"val {len(self.val)} / test {len(self.test)}; OOD {ood}"
        )


def _check_domains(names: list[str], available: list[str], what: str) -> None:
    for name in names:
        if name not in available:
            message = unknown_name_message(f"{what} domain", name, available)
            raise DataError(message.replace("(known:", "(the data has:"))


def _check_classes(domain: str, labels: np.ndarray, class_names: list[str]) -> None:
    present = np.unique(labels)
    if len(present) < 2:
        only = class_names[int(present[0])] if len(present) else "none"
        raise DataError(
            f"ID domain '{domain}' has only one class ('{only}'); training needs at least two"
        )


def photo_corruptions() -> tuple[list[str], list[str]]:
    """ImageNet-C's corruptions (``imagecorruptions``): the 15 of the benchmark, and all 19."""
    from shiftlab.data.images import imagecorruptions

    package = imagecorruptions()
    return list(package.get_corruption_names("common")), list(package.get_corruption_names("all"))


def corrupted_inputs(inputs: Any, kind: str, severity: int, seed: int) -> Any:
    """``inputs`` under a corruption: image files are corrupted lazily when decoded, with
    ImageNet-C's reference code; arrays of small images with the MNIST-C style set."""
    if isinstance(inputs, ImageFiles):
        if severity not in (1, 2, 3, 4, 5):
            raise DataError(f"corruption severity must be 1 to 5, got {severity}")
        return inputs.corrupted(Corruption(kind, severity, seed))
    return corrupt(inputs, kind, severity, seed)


def corrupted_splits(source: Split, cfg: CorruptionsConfig, seed: int) -> list[Split]:
    """One OOD split per (corruption, severity) of ``source``, named ``<corruption>_<severity>``;
    records of each carry ``corruption`` and ``severity``. Photos (image files) get ImageNet-C's
    15 corruptions by default; image arrays (digits) the MNIST-C style set."""
    if isinstance(source.inputs, ImageFiles):
        default, known = photo_corruptions()
    else:
        default = known = list(CORRUPTIONS)
    kinds = cfg.types if cfg.types is not None else default
    for kind in kinds:
        if kind not in known:
            raise DataError(unknown_name_message("corruption", kind, known))
    if cfg.per_split is not None and cfg.per_split < len(source):
        index = stratified_subsample(source.labels, cfg.per_split, np.random.default_rng(seed))
        source = source.subset(index)
    return [
        Split(
            f"{kind}_{severity}",
            "ood",
            corrupted_inputs(source.inputs, kind, severity, seed),
            source.labels,
            source.groups,
            info={"corruption": kind, "severity": severity},
            ids=source.ids,
            true_labels=source.true_labels,
            domains=source.domains,
        )
        for kind in kinds
        for severity in cfg.severities
    ]


def with_label_noise(data: Domain, cfg: Any, num_classes: int, name: str) -> Domain:
    """Domain ``name`` with synthetic label noise (``data.label_noise``, seeded per domain);
    its clean labels kept as its true labels."""
    from shiftlab.data.label_noise import inject_label_noise

    seed = (cfg.seed, zlib.crc32(name.encode()))
    noisy, _ = inject_label_noise(data.labels, num_classes, rate=cfg.rate, kind=cfg.kind, seed=seed)
    true = data.labels if data.true_labels is None else data.true_labels
    return dataclasses.replace(data, labels=noisy, true_labels=true)


def _materialise(loaded: LoadedData, name: str) -> Domain:
    domain = loaded.domains[name]
    if callable(domain):
        domain = loaded.domains[name] = domain()
    if domain.ids is None:  # the loader gave none: the example's position in its domain
        domain.ids = np.array([f"{name}:{i}" for i in range(len(domain))], dtype=object)
    return domain


def _cap(cfg: DataConfig, domain: str, ood: bool) -> int | None:
    if ood and cfg.max_per_ood_domain is not None:
        return cfg.max_per_ood_domain
    if isinstance(cfg.max_per_domain, dict):
        return cfg.max_per_domain.get(domain)
    return cfg.max_per_domain


def assign_groups(
    domains: dict[str, Domain], how: str, class_names: list[str], attributes: list[str]
) -> list[str]:
    """Set each domain's groups to (label, domain) or (label, attribute) pairs; return the
    group names (``"<class>/<value>"``, every class with every value seen, sorted).

    Raises:
        DataError: an unknown grouping or attribute.
    """
    if how == "label_x_domain":
        values = {d: np.full(len(data), d) for d, data in domains.items()}
    elif how.startswith("label_x_"):
        attribute = how.removeprefix("label_x_")
        if attribute not in attributes:
            have = ", ".join(["domain", *attributes])
            raise DataError(f"data.groups: no attribute '{attribute}' (this data has: {have})")
        values = {d: data.attributes[attribute].astype(str) for d, data in domains.items()}
    else:
        raise DataError(f"data.groups must be label_x_domain or label_x_<attribute>, got '{how}'")
    seen = sorted({str(v) for vs in values.values() for v in vs})
    names = [f"{c}/{v}" for c in class_names for v in seen]
    index = {name: i for i, name in enumerate(names)}
    for d, data in domains.items():
        data.groups = np.array(
            [index[f"{class_names[y]}/{v}"] for y, v in zip(data.labels, values[d], strict=True)],
            dtype=np.int64,
        )
    return names


def build_benchmark(loaded: LoadedData, cfg: DataConfig, name: str) -> Benchmark:
    """Split the ID domains (seeded, stratified) and cap every domain's size.

    Raises:
        DataError: a named domain is absent or empty, or ID training data has one class.
    """
    available = list(loaded.domains)
    fixed = loaded.fixed_splits if cfg.id_domains is None else None
    if fixed and (
        "train" not in fixed or set(fixed) - {*ID_ROLES} or len({*fixed.values()}) < len(fixed)
    ):
        raise ValueError(f"fixed_splits maps train (id_val, id_test) to distinct domains: {fixed}")
    id_domains = list(fixed.values()) if fixed else cfg.id_domains or available[:1]
    ood_domains = cfg.ood_domains
    if ood_domains is None:
        ood_domains = [d for d in available if d not in id_domains]
    _check_domains(id_domains, available, "ID")
    _check_domains(ood_domains, available, "OOD")
    overlap = sorted(set(id_domains) & set(ood_domains))
    if overlap:
        raise DataError(f"domain '{overlap[0]}' is listed both in id_domains and ood_domains")
    used = {d: _materialise(loaded, d) for d in [*id_domains, *ood_domains]}
    group_names = loaded.group_names
    if cfg.groups is not None:
        group_names = assign_groups(used, cfg.groups, loaded.class_names, loaded.attributes)
    rng = np.random.default_rng(cfg.seed)
    parts: dict[str, list[tuple[str, Domain]]] = {role: [] for role in ID_ROLES}
    role_of = {d: r for r, d in fixed.items()} if fixed else {}
    fractions = dict(zip(ID_ROLES, (cfg.split.train, cfg.split.val, cfg.split.test), strict=True))
    for domain in id_domains:
        data = used[domain]
        if len(data) == 0:
            raise DataError(f"ID domain '{domain}' is empty after filtering")
        role = role_of.get(domain, "train")
        if role == "train" and data.answers is None:  # generation data has no classes
            _check_classes(domain, data.labels, loaded.class_names)
        data = data.capped(_cap(cfg, domain, ood=False), rng)
        if cfg.label_noise is not None:
            data = with_label_noise(data, cfg.label_noise, len(loaded.class_names), domain)
        if role != "train":  # a fixed ID val / test split, used as it is
            parts[role].append((domain, data))
            continue
        carve = [r for r in ID_ROLES if r == "train" or r not in role_of.values()]
        scale = sum(fractions[r] for r in carve) if fixed else 1.0
        pieces = stratified_partition(data.strata, [fractions[r] / scale for r in carve], rng)
        for role, index in zip(carve, pieces, strict=True):
            if len(index) == 0:
                raise DataError(
                    f"ID domain '{domain}' has too few examples ({len(data)}) for a "
                    f"non-empty {role} split; lower max_per_domain or change data.split"
                )
            parts[role].append((domain, data.subset(index)))
    ood = []
    for domain in ood_domains:
        data = used[domain]
        if len(data) == 0:
            raise DataError(f"OOD domain '{domain}' is empty after filtering")
        data = data.capped(_cap(cfg, domain, ood=True), rng)
        ood.append(
            Split(
                domain,
                "ood",
                data.inputs,
                data.labels,
                data.groups,
                ids=data.ids,
                true_labels=data.true_labels,
                domains=np.full(len(data), domain, dtype=object),
                answers=data.answers,
            )
        )

    def merged(role: Role) -> Split:
        names = [name for name, _ in parts[role]]
        domains = [d for _, d in parts[role]]

        def joined(values: list[np.ndarray | None]) -> np.ndarray | None:
            return None if any(v is None for v in values) else np.concatenate(values)

        return Split(
            role,
            role,
            concat([d.inputs for d in domains]),
            np.concatenate([d.labels for d in domains]),
            joined([d.groups for d in domains]),
            ids=joined([d.ids for d in domains]),
            true_labels=joined([d.true_labels for d in domains]),
            domains=np.concatenate(
                [np.full(len(d), n, dtype=object) for n, d in zip(names, domains, strict=True)]
            ),
            answers=joined([d.answers for d in domains]),
        )

    train = merged("train")
    if train.answers is None and len(np.unique(train.labels)) < 2:
        raise DataError("the ID training split has only one class; training needs at least two")
    if group_names is not None and train.groups is not None:
        missing = [g for i, g in enumerate(group_names) if not (train.groups == i).any()]
        if missing:
            log(f"groups with no training example: {', '.join(missing)}")
    test = merged("id_test")
    if cfg.corruptions is not None:
        if loaded.modality != "image":
            raise DataError("data.corruptions apply to image benchmarks only")
        ood += corrupted_splits(test, cfg.corruptions, cfg.seed)
    return Benchmark(
        name=name,
        class_names=list(loaded.class_names),
        modality=loaded.modality,
        train=train,
        val=merged("id_val"),
        test=test,
        ood=ood,
        id_domains=list(id_domains),
        group_names=group_names,
    )
