import math

import numpy as np
import pytest

from shiftlab.curation import dedupe_drop, near_duplicates
from shiftlab.errors import ConfigError, DataError


def _planted() -> np.ndarray:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(300, 32))
    embeddings[200] = embeddings[3]  # exact copy
    embeddings[201] = embeddings[10] + 1e-3 * rng.normal(size=32)  # near copy
    embeddings[202] = 3.0 * embeddings[20]  # same direction, other norm
    embeddings[203] = embeddings[5]  # a group of three: 5, 203, 204
    embeddings[204] = embeddings[5] + 1e-3 * rng.normal(size=32)
    return embeddings


def test_planted_duplicates_and_nothing_else_are_found():
    embeddings = _planted()
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    cosine = unit @ unit.T
    planted = {(3, 200), (10, 201), (20, 202), (5, 203), (5, 204), (203, 204)}
    others = [cosine[i, j] for i in range(300) for j in range(i + 1, 300) if (i, j) not in planted]
    assert max(others) < 0.8  # the rest are far from the threshold
    pairs = near_duplicates(embeddings, threshold=0.95)
    assert {(i, j) for i, j, _ in pairs} == planted
    assert pairs == sorted(pairs)
    for i, j, similarity in pairs:
        assert similarity == pytest.approx(cosine[i, j], abs=1e-12)
        assert similarity > 0.999
    np.testing.assert_array_equal(dedupe_drop(pairs, 300), [200, 201, 202, 203, 204])


def test_leakage_pairs_across_sets():
    embeddings = _planted()
    rng = np.random.default_rng(1)
    test_set = np.stack(
        [embeddings[7] + 1e-3 * rng.normal(size=32), rng.normal(size=32), embeddings[42]]
    )
    pairs = near_duplicates(embeddings, threshold=0.95, others=test_set)
    assert [(i, j) for i, j, _ in pairs] == [(7, 0), (42, 2)]


def test_threshold_is_strict_and_a_chain_keeps_its_first_example():
    angles = np.radians([0.0, 15.0, 30.0, 90.0])
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    # neighbours 15 degrees apart (cos 0.966) pair; 0 and 30 degrees (cos 0.866) do not
    pairs = near_duplicates(points, threshold=math.cos(math.radians(20)))
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (1, 2)]
    assert near_duplicates(points, threshold=math.cos(math.radians(15)) + 1e-9) == []
    np.testing.assert_array_equal(dedupe_drop(pairs, 4), [1, 2])  # as SemDeDup: 2 pairs with 1


def test_bad_input_is_refused_in_one_line():
    with pytest.raises(DataError, match="row 1 is all zeros"):
        near_duplicates(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ConfigError, match="threshold"):
        near_duplicates(np.eye(2), threshold=1.0)
    with pytest.raises(DataError, match="distinct indices"):
        dedupe_drop([(0, 5, 0.99)], 3)
