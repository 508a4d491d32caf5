import pytest

from shiftlab.data.sentiment_sentences import SentimentSentencesOptions, sentiment_sentences
from shiftlab.errors import DataError


def test_three_balanced_domains_of_one_thousand(sentences_dir):
    data = sentiment_sentences(SentimentSentencesOptions(path=str(sentences_dir)), None)
    assert list(data.domains) == ["amazon_cells", "imdb", "yelp"]
    for domain in data.domains.values():
        assert len(domain) == 1000
        assert domain.labels.sum() == 500


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="sentiment-sentences folder not found"):
        sentiment_sentences(SentimentSentencesOptions(path=str(tmp_path / "none")), None)


def test_missing_file_is_named(tmp_path):
    (tmp_path / "imdb_labelled.txt").write_text("good\t1\n")
    with pytest.raises(DataError, match="missing file amazon_cells_labelled.txt"):
        sentiment_sentences(SentimentSentencesOptions(path=str(tmp_path)), None)
