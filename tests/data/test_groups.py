import numpy as np
import pytest

from helpers import sentences_data_config
from shiftlab.data import load_benchmark
from shiftlab.data.build import _materialise
from shiftlab.data.colored_digits import ColoredDigitsOptions, colored_digits
from shiftlab.errors import DataError


def test_label_x_domain_groups_on_real_text(sentences_dir):
    cfg = sentences_data_config(
        sentences_dir,
        id_domains=["amazon_cells", "yelp"],
        ood_domains=["imdb"],
        groups="label_x_domain",
        max_per_domain={"amazon_cells": 200, "yelp": 40},
    )
    bench = load_benchmark(cfg)
    assert bench.group_names == [
        f"{c}/{d}" for c in ("negative", "positive") for d in ("amazon_cells", "imdb", "yelp")
    ]
    counts = np.bincount(bench.train.groups, minlength=6)
    # 60% of 100 negative amazon reviews; 60% of 20 negative yelp reviews; no imdb in training
    assert counts.tolist() == [60, 0, 12, 60, 0, 12]
    assert set(np.unique(bench.ood[0].groups)) == {1, 4}


def test_unknown_grouping_attribute_is_named(sentences_dir):
    with pytest.raises(DataError, match="no attribute 'colour' \\(this data has: domain\\)"):
        load_benchmark(sentences_data_config(sentences_dir, groups="label_x_colour"))


def test_colored_digits_correlates_colour_with_label_as_configured():
    data = colored_digits(ColoredDigitsOptions(correlation=0.9, label_noise=0.25), None)
    agreement = {}
    for name in ("train", "reversed", "random"):
        domain = _materialise(data, name)
        colour = domain.inputs.sum(axis=(2, 3)).argmax(axis=1)  # the channel holding the digit
        assert (colour == (domain.groups % 2)).all()
        agreement[name] = float((colour == domain.labels).mean())
    assert agreement["train"] == pytest.approx(0.9, abs=0.02)
    assert agreement["reversed"] == pytest.approx(0.1, abs=0.03)
    assert agreement["random"] == pytest.approx(0.5, abs=0.04)
    train = _materialise(data, "train")
    assert train.inputs.shape[1:] == (2, 16, 16)
    assert sum(len(_materialise(data, n)) for n in ("train", "reversed", "random")) == 5000
    # label noise: about a quarter of labels disagree with the digit's shape
    assert data.group_names == ["0-4/red", "0-4/green", "5-9/red", "5-9/green"]
