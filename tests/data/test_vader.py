"""VADER, fetched through pip from the vaderSentiment 3.3.2 sdist (needs PyPI)."""

import pytest

from shiftlab.data.download import verify
from shiftlab.data.vader import VaderConfig, vader
from shiftlab.errors import DataError


@pytest.fixture(scope="module")
def loaded():
    return vader(VaderConfig(), None)


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
    everything = vader(VaderConfig(neutral_band=0.0), None)
    assert len(everything.domains["tweets"]) == 4200  # every rated tweet


def test_checksum_mismatch_is_refused():
    with pytest.raises(DataError, match="sha256"):
        verify(b"not the archive", "0" * 64, "archive")


def test_missing_path_is_named(tmp_path):
    with pytest.raises(DataError, match="VADER data not found"):
        vader(VaderConfig(path=str(tmp_path / "absent.tar.gz")), None)
