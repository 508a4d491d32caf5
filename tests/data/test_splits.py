import numpy as np

from shiftlab.data.splits import stratified_partition, stratified_subsample


def test_partition_is_disjoint_stratified_and_seeded():
    labels = np.array([0] * 60 + [1] * 40)
    parts = stratified_partition(labels, (0.6, 0.2, 0.2), np.random.default_rng(0))
    assert [len(p) for p in parts] == [60, 20, 20]
    assert len(np.unique(np.concatenate(parts))) == 100
    for part, size in zip(parts, (60, 20, 20), strict=True):
        assert (labels[part] == 0).sum() == size * 0.6
    again = stratified_partition(labels, (0.6, 0.2, 0.2), np.random.default_rng(0))
    assert all((a == b).all() for a, b in zip(parts, again, strict=True))
    other = stratified_partition(labels, (0.6, 0.2, 0.2), np.random.default_rng(1))
    assert not (parts[0] == other[0]).all()


def test_partition_may_leave_examples_out():
    labels = np.array([0, 1] * 50)
    parts = stratified_partition(labels, (0.5, 0.1, 0.1), np.random.default_rng(0))
    assert [len(p) for p in parts] == [50, 10, 10]


def test_subsample_keeps_class_proportions_exactly():
    labels = np.array([0] * 700 + [1] * 300)
    index = stratified_subsample(labels, 100, np.random.default_rng(0))
    assert len(index) == 100
    assert (labels[index] == 1).sum() == 30
    assert (np.diff(index) > 0).all()  # sorted, no repeats
