"""Plain helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from shiftlab.config.sections import DataConfig
from shiftlab.data.sentiment_sentences import SentimentSentencesOptions
from shiftlab.typed import build


def sentences_data_config(folder: Path, **overrides: object) -> DataConfig:
    """A small sentiment-sentences benchmark: ID amazon_cells, OOD imdb and yelp."""
    cfg = build(
        DataConfig,
        {
            "kind": "sentiment_sentences",
            "id_domains": ["amazon_cells"],
            "ood_domains": ["imdb", "yelp"],
            "max_per_domain": 80,
            "max_per_ood_domain": 40,
            **overrides,
        },
        "data",
    )
    cfg.options = SentimentSentencesOptions(path=str(folder))
    return cfg


def write_config(path: Path, text: str) -> Path:
    """Write a YAML config file and return its path."""
    path.write_text(text, encoding="utf-8")
    return path
