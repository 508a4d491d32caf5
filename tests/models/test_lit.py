"""The LiT two-tower: tuned on image-text pairs with both towers locked, saved and reloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shiftlab.config.sections import BackboneConfig
from shiftlab.data.image_text import sample_pairs
from shiftlab.data.images import ImageFiles
from shiftlab.errors import BackboneError
from shiftlab.models import load_backbone
from shiftlab.models.lit import embed, pair_captions

CPU = torch.device("cpu")


def lit_config(tmp_path: Path, **more) -> BackboneConfig:
    pairs = sample_pairs(tmp_path)["path"]
    options = {"epochs": 30, "batch_size": 12, "lr": 1e-2}
    return BackboneConfig(name="lit", pairs=pairs, lit=options, image_size=32, **more)


def images(tmp_path: Path) -> ImageFiles:
    return ImageFiles(sorted(str(p) for p in tmp_path.glob("*.png")))


@pytest.mark.parametrize("train_text", [False, True])
def test_saved_lit_reloads_and_scores_identically(tmp_path, train_text):
    folder = tmp_path / "lit"
    cfg = lit_config(tmp_path, pretrained=str(folder))
    cfg.lit["train_text"] = train_text
    if train_text:
        cfg.lit["epochs"] = 3
    tuned = load_backbone(cfg, CPU, 0, None)
    untouched = load_backbone(BackboneConfig(name="lit", pretrained=False, image_size=32), CPU, 0)
    text_weights = [torch.equal(a, b) for a, b in zip(
        tuned.featurizer.text.state_dict().values(),
        untouched.featurizer.text.state_dict().values(), strict=True)]  # fmt: skip
    assert all(text_weights) != train_text  # the text tower trained exactly when asked
    assert (folder / "lit.json").is_file() and (folder / "projections.safetensors").is_file()
    again = load_backbone(BackboneConfig(name="lit", pretrained=str(folder)), CPU, 7, None)
    files = images(tmp_path)
    texts = ["a red square", "a blue square"]
    with torch.no_grad():
        assert torch.equal(embed(tuned.featurizer, files), embed(again.featurizer, files))
        assert torch.equal(
            tuned.featurizer.encode_prompts(texts), again.featurizer.encode_prompts(texts)
        )
    assert again.logit_scale == tuned.logit_scale != 10.0  # the learned temperature


def test_tuning_matches_images_to_their_captions_and_locks_the_towers(tmp_path):
    untuned = load_backbone(BackboneConfig(name="lit", pretrained=False, image_size=32), CPU, 0)
    tuned = load_backbone(lit_config(tmp_path), CPU, 0, None)
    for tower in ("image", "text"):  # the same seeded towers, untouched by tuning
        a = getattr(untuned.featurizer, tower).state_dict()
        b = getattr(tuned.featurizer, tower).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    files = images(tmp_path)
    truth = np.array([i % 2 for i in range(len(files))])  # sample_pairs: red, blue, red, ...
    with torch.no_grad():
        prompts = tuned.featurizer.encode_prompts(["a red square", "a blue square"])
        picked = (embed(tuned.featurizer, files) @ prompts.T).argmax(1).numpy()
    assert (picked == truth).all()


def test_captions_or_class_prompts():
    class Split:
        captions = None
        labels = np.array([0, 1, 1])

        def __len__(self):
            return 3

    prompts = pair_captions(Split(), ["cat", "dog"], seed=0)
    assert [p.rsplit(" ", 1)[-1].strip(".") for p in prompts] == ["cat", "dog", "dog"]
    Split.captions = np.array(["x", "y", "z"], dtype=object)
    assert pair_captions(Split(), ["cat", "dog"], seed=0) == ["x", "y", "z"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "lit"}, "needs backbone.pairs"),
        ({"name": "lit:small_cnn"}, r"lit:IMAGE\+TEXT"),
        ({"name": "lit:minilm+minilm", "pretrained": False}, "first tower must read images"),
    ],
)
def test_lit_refuses_what_it_cannot_build(options, message):
    with pytest.raises(BackboneError, match=message):
        load_backbone(BackboneConfig(**options), CPU, 0, (3, 16, 16))


def test_a_folder_without_a_saved_lit_is_refused(tmp_path):
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(BackboneError, match="holds no saved LiT"):
        load_backbone(BackboneConfig(name="lit", pretrained=str(tmp_path)), CPU, 0, None)


def test_a_saved_lit_is_not_reused_for_another_tuning(tmp_path):
    """A folder holds one tuning: a config asking for other towers, options, pairs, seed or
    training split is refused rather than given the saved model."""
    folder = tmp_path / "lit"
    load_backbone(lit_config(tmp_path, pretrained=str(folder)), CPU, 0, None)
    asks = [
        (lit_config(tmp_path, pretrained=str(folder)), 1, "seed 0, not 1"),
        (BackboneConfig(name="lit", pretrained=str(folder), lit={"dim": 8}), 0, "backbone.lit"),
        (BackboneConfig(name="lit:small_cnn+minilm", pretrained=str(folder)), 0, "towers"),
        (BackboneConfig(name="lit", pretrained=str(folder), pairs="train"), 0, "pairs"),
        (BackboneConfig(name="lit", pretrained=str(folder), image_size=64), 0, "image_size"),
    ]
    for cfg, seed, message in asks:
        with pytest.raises(BackboneError, match=message):
            load_backbone(cfg, CPU, seed, None)


def test_a_lit_tuned_on_one_training_split_is_not_reused_for_another(tmp_path):
    from shiftlab.config.sections import DataConfig, SplitConfig
    from shiftlab.data.build import load_benchmark
    from shiftlab.data.image_text import ImageTextOptions

    options = ImageTextOptions(path=sample_pairs(tmp_path)["path"])
    split = SplitConfig(train=0.5, val=0.25, test=0.25)
    data = DataConfig(
        kind="image_text", id_domains=["light"], ood_domains=["dark"], split=split, options=options
    )
    train = load_benchmark(data).train
    folder = tmp_path / "lit"
    cfg = BackboneConfig(name="lit", pairs="train", pretrained=str(folder), image_size=32,
                         lit={"epochs": 2})  # fmt: skip
    names = ["blue", "red"]
    load_backbone(cfg, CPU, 0, None, train=train, class_names=names)
    load_backbone(cfg, CPU, 0, None, train=train, class_names=names)  # the same split: reloads
    with pytest.raises(BackboneError, match="another run's training split"):
        load_backbone(cfg, CPU, 0, None, train=train.subset(np.arange(3)), class_names=names)
