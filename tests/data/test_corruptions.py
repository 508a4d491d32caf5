import numpy as np
import pytest

from shiftlab.data.corruptions import CORRUPTIONS, corrupt
from shiftlab.errors import DataError


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = np.zeros((20, 1, 16, 16), dtype=np.float32)
    x[:, :, 4:12, 6:10] = rng.uniform(0.7, 1.0, size=(20, 1, 8, 4))  # bright strokes
    return x


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_every_corruption_changes_images_within_range_deterministically(images, kind):
    assert len(CORRUPTIONS) >= 10
    for severity in (1, 5):
        out = corrupt(images, kind, severity, seed=0)
        assert out.shape == images.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert not np.array_equal(out, images)
        assert np.array_equal(out, corrupt(images, kind, severity, seed=0))
    mild = np.abs(corrupt(images, kind, 1, 0) - images).mean()
    strong = np.abs(corrupt(images, kind, 5, 0) - images).mean()
    assert strong > mild  # severity 5 moves images further than severity 1


def test_random_corruptions_depend_on_the_seed(images):
    assert not np.array_equal(
        corrupt(images, "gaussian_noise", 3, 0), corrupt(images, "gaussian_noise", 3, 1)
    )


def test_inverse_at_full_severity_is_the_negative(images):
    np.testing.assert_allclose(corrupt(images, "inverse", 5, 0), 1 - images, atol=1e-6)


def test_unknown_corruption_and_severity_are_named(images):
    with pytest.raises(DataError, match="did you mean 'gaussian_noise'"):
        corrupt(images, "gausian_noise", 1, 0)
    with pytest.raises(DataError, match="severity must be 1 to 5"):
        corrupt(images, "fog", 6, 0)
