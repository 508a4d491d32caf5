import numpy as np
import pytest

from helpers import sentences_data_config
from shiftlab.data import load_benchmark
from shiftlab.errors import DataError


def test_splits_have_the_configured_sizes(sentences_dir):
    bench = load_benchmark(sentences_data_config(sentences_dir, max_per_domain=200))
    assert (len(bench.train), len(bench.val), len(bench.test)) == (120, 40, 40)
    assert [s.name for s in bench.ood] == ["imdb", "yelp"]
    assert all(len(s) == 40 for s in bench.ood)
    assert bench.train.labels.mean() == 0.5  # stratified
    assert not set(bench.train.inputs) & set(bench.test.inputs)


def test_same_seed_same_splits_other_seed_other_splits(sentences_dir):
    a = load_benchmark(sentences_data_config(sentences_dir))
    b = load_benchmark(sentences_data_config(sentences_dir))
    c = load_benchmark(sentences_data_config(sentences_dir, seed=1))
    assert a.train.inputs == b.train.inputs
    assert a.train.inputs != c.train.inputs


def test_absent_ood_domain_is_named_with_a_suggestion(sentences_dir):
    cfg = sentences_data_config(sentences_dir, ood_domains=["yelpp"])
    with pytest.raises(DataError, match="unknown OOD domain 'yelpp'; did you mean 'yelp'"):
        load_benchmark(cfg)


def test_domain_in_both_roles_is_refused(sentences_dir):
    cfg = sentences_data_config(sentences_dir, ood_domains=["amazon_cells"])
    with pytest.raises(DataError, match="both in id_domains and ood_domains"):
        load_benchmark(cfg)


def test_too_small_id_domain_is_refused(sentences_dir):
    cfg = sentences_data_config(sentences_dir, max_per_domain=2)
    with pytest.raises(DataError, match="too few examples"):
        load_benchmark(cfg)


def test_split_fingerprint_changes_with_content(sentences_dir):
    bench = load_benchmark(sentences_data_config(sentences_dir))
    assert bench.val.fingerprint != bench.test.fingerprint
    assert len({s.fingerprint for s in bench.eval_splits()}) == 4
    assert np.issubdtype(bench.val.labels.dtype, np.integer)
