"""From a data config to a Benchmark: run the registered loader, then split the ID domains,
cap every domain, add groups, corrupted copies of ID test and synthetic label noise."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from shiftlab.config.sections import CorruptionsConfig, DataConfig
from shiftlab.data.benchmark import ID_ROLES, Benchmark, Domain, LoadedData, Role, Split, concat
from shiftlab.data.corruptions import CORRUPTIONS, corrupt
from shiftlab.data.images import Corruption, ImageFiles
from shiftlab.data.splits import stratified_partition, stratified_subsample
from shiftlab.errors import DataError
from shiftlab.registry import DATASETS, unknown_name_message
from shiftlab.runtime import log


def load_benchmark(cfg: DataConfig) -> Benchmark:
    """Load the data named by ``cfg.kind`` and split it into a Benchmark."""
    entry = DATASETS[cfg.kind]
    loaded = entry.obj(cfg.options, cfg.class_names)
    benchmark = build_benchmark(loaded, cfg, cfg.kind)
    log(benchmark.summary())
    return benchmark


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


#: The per-example attribute naming the input regions reliable for that example.
ANNOTATION = "reliable"
#: The per-example attribute holding an image's caption (image-text data).
CAPTION = "caption"


class Pool:
    """The unlabeled pool being set aside: a seeded ``fraction`` of each of ``domains`` (drawn
    by a generator of its own per domain, so the rest of the run's splits do not move). The
    pool split holds no label; the labels stay here, behind :meth:`oracle`."""

    def __init__(self, fraction: float, domains: list[str], seed: int) -> None:
        self.fraction, self.domains, self.seed = fraction, domains, seed
        self.parts: list[tuple[str, Domain]] = []

    def set_aside(self, name: str, data: Domain) -> Domain:
        """``data`` less the pool's share of it (``data`` itself for a domain not pooled)."""
        if name not in self.domains:
            return data
        rng = np.random.default_rng([self.seed, zlib.crc32(f"unlabeled:{name}".encode())])
        order = rng.permutation(len(data))
        cut = len(data) if self.fraction >= 1 else round(self.fraction * len(data))
        self.parts.append((name, data.subset(np.sort(order[:cut]))))
        return data.subset(np.sort(order[cut:]))

    def info(self, name: str) -> dict[str, float]:
        """Record keys of a scored split that lost examples to the pool."""
        return {"unlabeled_fraction": self.fraction} if name in self.domains else {}

    def split(self) -> Split | None:
        """The pool as a split of role ``unlabeled``: inputs, ids and domains; labels -1."""
        if not self.parts:
            return None
        n = sum(len(d) for _, d in self.parts)
        if n == 0:
            raise DataError("the unlabeled pool is empty; raise data.unlabeled.fraction")
        return Split(
            "unlabeled",
            "unlabeled",
            concat([d.inputs for _, d in self.parts]),
            np.full(n, -1, dtype=np.int64),
            ids=np.concatenate([d.ids for _, d in self.parts]),
            domains=np.concatenate([np.full(len(d), name, dtype=object) for name, d in self.parts]),
            info={"unlabeled_fraction": self.fraction},
        )

    def oracle(self) -> Callable[[np.ndarray], np.ndarray]:
        """Labels of pool examples by index (an active query of the data's labels)."""
        labels = np.concatenate(
            [d.labels if d.true_labels is None else d.true_labels for _, d in self.parts]
        )

        def ask(index: np.ndarray) -> np.ndarray:
            return labels[np.asarray(index, dtype=np.int64)]

        return ask


def _check_ood_classes(ood: list[Split], train_labels: np.ndarray, class_names: list[str]) -> None:
    """Every OOD label must be a class the model trains on: a class only OOD data has cannot be
    predicted, and its examples would count as errors of every model alike."""
    trained = set(np.unique(train_labels).tolist())
    for split in ood:
        unseen = sorted(set(np.unique(split.labels).tolist()) - trained)
        if unseen:
            count = int(np.isin(split.labels, unseen).sum())
            raise DataError(
                f"OOD domain '{split.name}' has label '{class_names[unseen[0]]}' ({count} "
                f"examples), which the ID training data never has (ID classes: "
                f"{', '.join(class_names[i] for i in sorted(trained))}); drop those rows or "
                "relabel them"
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
            captions=source.captions,
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
    if isinstance(cfg.max_per_domain, dict):  # a misspelt domain would cap nothing
        used_names = [*id_domains, *ood_domains]
        for key in cfg.max_per_domain:
            if key not in used_names:
                message = unknown_name_message("domain", key, used_names)
                raise DataError(
                    "data.max_per_domain: " + message.replace("(known:", "(this run's domains:")
                )
    pool_cfg = cfg.unlabeled
    pool_domains = list(pool_cfg.domains) if pool_cfg is not None else []
    _check_domains(pool_domains, available, "unlabeled pool")
    used = {d: _materialise(loaded, d) for d in [*id_domains, *ood_domains, *pool_domains]}
    pool = Pool(pool_cfg.fraction if pool_cfg is not None else 0.0, pool_domains, cfg.seed)
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
        data = pool.set_aside(domain, data.capped(_cap(cfg, domain, ood=False), rng))
        if len(data) == 0:
            raise DataError(f"ID domain '{domain}' went whole into the unlabeled pool")
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
        data = pool.set_aside(domain, data.capped(_cap(cfg, domain, ood=True), rng))
        if len(data) == 0:  # fraction 1: the whole domain is pool, none of it scored
            continue
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
                info=pool.info(domain),
                annotations=data.attributes.get(ANNOTATION),
                captions=data.attributes.get(CAPTION),
            )
        )
    for domain in pool_domains:  # named only for the pool: the rest of it is not used
        if domain not in id_domains and domain not in ood_domains:
            pool.set_aside(domain, used[domain].capped(_cap(cfg, domain, ood=True), rng))

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
            annotations=joined([d.attributes.get(ANNOTATION) for d in domains]),
            captions=joined([d.attributes.get(CAPTION) for d in domains]),
        )

    train = merged("train")
    if train.answers is None and len(np.unique(train.labels)) < 2:
        raise DataError("the ID training split has only one class; training needs at least two")
    if train.answers is None:
        _check_ood_classes(ood, train.labels, loaded.class_names)
    if group_names is not None and train.groups is not None:
        missing = [g for i, g in enumerate(group_names) if not (train.groups == i).any()]
        if missing:
            log(f"warning: groups with no training example: {', '.join(missing)}")
    test = merged("id_test")
    if cfg.poison is not None:
        from shiftlab.data.poison import poison

        seed = cfg.poison.seed if cfg.poison.seed is not None else cfg.seed
        train, triggered = poison(train, test, list(loaded.class_names), cfg.poison, seed)
        ood.append(triggered)
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
        unlabeled=pool.split(),
        pool_oracle=pool.oracle() if pool_domains else None,
        regions=loaded.regions,
    )
