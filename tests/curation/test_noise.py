import numpy as np
import pytest

from shiftlab.curation import inject_label_noise
from shiftlab.errors import ConfigError


@pytest.mark.parametrize(
    ("n", "rate", "flips"),
    [(1000, 0.1, 100), (1000, 0.0, 0), (1000, 1.0, 1000), (7, 0.5, 4), (5, 0.5, 2), (33, 0.2, 7)],
)
def test_exactly_round_rate_times_n_labels_flip(n, rate, flips):
    labels = np.arange(n) % 3
    noisy, flipped = inject_label_noise(labels, 3, rate=rate, kind="symmetric", seed=0)
    assert flipped.sum() == flips == round(rate * n)
    assert (noisy[flipped] != labels[flipped]).all()
    assert (noisy[~flipped] == labels[~flipped]).all()


def test_symmetric_noise_is_uniform_over_the_other_classes():
    labels = np.arange(30000) % 4
    noisy, flipped = inject_label_noise(labels, 4, rate=0.5, kind="symmetric", seed=1)
    for k in range(4):
        new = noisy[flipped & (labels == k)]
        shares = np.bincount(new, minlength=4) / len(new)
        assert shares[k] == 0
        np.testing.assert_allclose(np.delete(shares, k), 1 / 3, atol=0.03)


def test_pair_noise_maps_k_to_k_plus_one():
    labels = np.arange(100) % 5
    noisy, flipped = inject_label_noise(labels, 5, rate=0.3, kind="pair", seed=2)
    assert flipped.sum() == 30
    np.testing.assert_array_equal(noisy[flipped], (labels[flipped] + 1) % 5)


def test_noise_is_deterministic_per_seed():
    labels = np.arange(200) % 4
    a = inject_label_noise(labels, 4, rate=0.2, kind="symmetric", seed=3)
    b = inject_label_noise(labels, 4, rate=0.2, kind="symmetric", seed=3)
    c = inject_label_noise(labels, 4, rate=0.2, kind="symmetric", seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="rate"):
        inject_label_noise(np.zeros(4, int), 2, rate=1.5, seed=0)
    with pytest.raises(ConfigError, match="kind"):
        inject_label_noise(np.zeros(4, int), 2, rate=0.5, kind="pairs", seed=0)
