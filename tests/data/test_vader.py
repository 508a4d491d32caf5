"""VADER, fetched through pip from the vaderSentiment 3.3.2 sdist (needs PyPI)."""

import pytest

from shiftlab.data.download import verify
from shiftlab.data.vader import VaderOptions, vader
from shiftlab.errors import DataError


@pytest.fixture(scope="module")
def loaded():
    return vader(VaderOptions(), None)


def test_domain_sizes_and_balance_match_the_published_counts(loaded):
    # ../shared/data/README.md: binarised at |mean| >= 0.5, movie 10,072 (50% positive),
    # tweets 3,432 (68%), amazon 2,985 (59%), nyt 2,970 (40%).
    expected = {
        "movie": (10072, 0.50),
        "tweets": (3432, 0.68),
        "amazon": (2985, 0.59),
        "nyt": (2970, 0.40),
    }
    for domain, (size, positive) in expected.items():
        labels = loaded.domains[domain].labels
        assert len(labels) == size
        assert labels.mean() == pytest.approx(positive, abs=0.005)
    assert loaded.class_names == ["negative", "positive"]


def test_neutral_band_drops_weak_ratings():
    everything = vader(VaderOptions(neutral_band=0.0), None)
    assert len(everything.domains["tweets"]) == 4200  # every rated tweet


def test_checksum_mismatch_is_refused():
    with pytest.raises(DataError, match="sha256"):
        verify(b"not the archive", "0" * 64, "archive")


def test_missing_path_is_named(tmp_path):
    with pytest.raises(DataError, match="VADER data not found"):
        vader(VaderOptions(path=str(tmp_path / "absent.tar.gz")), None)


def test_rater_labels_are_one_real_rater_each_with_the_mean_kept_as_truth(loaded):
    raters = vader(VaderOptions(labels="rater"), None)
    for domain in ("movie", "tweets"):
        clean, noisy = loaded.domains[domain], raters.domains[domain]
        assert noisy.true_labels is not None
        # the true labels are the mean's labels of the same texts (matched by id)
        by_id = dict(zip(clean.ids, clean.labels, strict=True))
        assert [by_id[i] for i in noisy.ids] == noisy.true_labels.tolist()
        disagree = float((noisy.labels != noisy.true_labels).mean())
        assert 0.005 < disagree < 0.25  # real, modest human noise
    again = vader(VaderOptions(labels="rater"), None).domains["movie"].labels
    other = vader(VaderOptions(labels="rater", rater_seed=1), None).domains["movie"].labels
    assert (again == raters.domains["movie"].labels).all() and (other != again).any()


def test_rater_draw_ignores_neutral_raters():
    import numpy as np

    from shiftlab.data.vader import rater_labels

    ratings = {"a": [0.0, 0.0, -2.0], "b": [0.0, 0.0], "c": [3.0, 1.0]}
    out = rater_labels(["a", "b", "c"], ratings, 0.5, np.random.default_rng(0))
    assert out.tolist() == [0, -1, 1]  # a: the one decided rater; b: none; c: both positive
