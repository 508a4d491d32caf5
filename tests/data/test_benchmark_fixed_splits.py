"""LoadedData.fixed_splits: domains that already are the ID splits are not re-split."""

from __future__ import annotations

import numpy as np
import pytest

from shiftlab.config.sections import DataConfig
from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.data.build import build_benchmark
from shiftlab.typed import build


def _domain(tag: str, n: int) -> Domain:
    return Domain([f"{tag}{i}" for i in range(n)], np.arange(n, dtype=np.int64) % 2)


def _loaded(fixed: dict[str, str] | None, **sizes: int) -> LoadedData:
    domains = {name: _domain(name, n) for name, n in sizes.items()}
    return LoadedData(domains, ["a", "b"], "text", fixed_splits=fixed)


def _cfg(**keys: object) -> DataConfig:
    return build(DataConfig, {"kind": "test", **keys}, "data")


def test_fixed_domains_are_the_id_splits_as_they_are_and_the_rest_is_ood():
    fixed = {"train": "train", "id_val": "id_val", "id_test": "id_test"}
    loaded = _loaded(fixed, train=20, id_val=6, id_test=8, val=10, test=12)
    bench = build_benchmark(loaded, _cfg(), "toy")
    assert bench.train.inputs == [f"train{i}" for i in range(20)]  # whole, in order
    assert bench.val.inputs == [f"id_val{i}" for i in range(6)]
    assert bench.test.inputs == [f"id_test{i}" for i in range(8)]
    assert [(s.name, s.role, len(s)) for s in bench.ood] == [
        ("val", "ood", 10),
        ("test", "ood", 12),
    ]
    assert bench.id_domains == ["train", "id_val", "id_test"]


def test_caps_still_apply_per_fixed_domain():
    fixed = {"train": "train", "id_val": "id_val", "id_test": "id_test"}
    loaded = _loaded(fixed, train=20, id_val=6, id_test=8, test=12)
    cfg = _cfg(max_per_domain={"train": 10, "id_val": 4}, max_per_ood_domain=5)
    bench = build_benchmark(loaded, cfg, "toy")
    assert (len(bench.train), len(bench.val), len(bench.test)) == (10, 4, 8)
    assert [len(s) for s in bench.ood] == [5]
    assert np.bincount(bench.train.labels).tolist() == [5, 5]  # stratified


def test_a_missing_role_is_carved_from_train_in_split_proportions():
    loaded = _loaded({"train": "train", "id_val": "val"}, train=40, val=6, test=12)
    bench = build_benchmark(loaded, _cfg(split={"train": 0.6, "val": 0.2, "test": 0.2}), "toy")
    # train 0.6 : test 0.2 of the train domain -> 30 : 10; val is the fixed domain, whole
    assert (len(bench.train), len(bench.val), len(bench.test)) == (30, 6, 10)
    assert set(bench.train.inputs) | set(bench.test.inputs) == {f"train{i}" for i in range(40)}
    assert not set(bench.train.inputs) & set(bench.test.inputs)
    assert [s.name for s in bench.ood] == ["test"]


def test_explicit_id_domains_override_the_fixed_splits():
    fixed = {"train": "train", "id_val": "id_val"}
    loaded = _loaded(fixed, train=40, id_val=6, test=12)
    bench = build_benchmark(loaded, _cfg(id_domains=["train"], ood_domains=["test"]), "toy")
    assert (len(bench.train), len(bench.val), len(bench.test)) == (24, 8, 8)  # re-split 60/20/20
    assert [s.name for s in bench.ood] == ["test"]


def test_ood_domains_can_still_be_chosen():
    fixed = {"train": "train", "id_val": "id_val", "id_test": "id_test"}
    loaded = _loaded(fixed, train=20, id_val=6, id_test=8, val=10, test=12)
    bench = build_benchmark(loaded, _cfg(ood_domains=["test"]), "toy")
    assert [s.name for s in bench.ood] == ["test"]


def test_fixed_splits_without_train_are_a_loader_bug():
    loaded = _loaded({"id_val": "id_val"}, train=20, id_val=6)
    with pytest.raises(ValueError, match="fixed_splits"):
        build_benchmark(loaded, _cfg(), "toy")
