"""A model exported by ``shiftlab export``, loaded back: ``shiftlab.load(DIR).predict(inputs)``.

The folder is read through its own library, exactly as a user without shiftlab would load it
(sentence-transformers for text encoders, timm for image models), so what shiftlab predicts
from an export is what that one line gives.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shiftlab._optional import require
from shiftlab.errors import ConfigError, DataError

FORMAT_FILE = "shiftlab.json"


@dataclass
class Exported:
    """An exported classifier: its class names, and ``logits`` of a batch of inputs (texts, or
    image paths) from the folder's own library."""

    folder: Path
    meta: dict[str, Any]
    model: Any
    transform: Any = None

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    def logits(self, inputs: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        """(N, K) logits of texts (sentence-transformers) or image paths / PIL images (timm)."""
        if self.meta["format"] == "sentence-transformers":
            return np.asarray(
                self.model.encode(list(inputs), batch_size=batch_size, convert_to_numpy=True)
            )
        out = []
        with torch.inference_mode():
            for start in range(0, len(inputs), batch_size):
                images = [open_image(x) for x in inputs[start : start + batch_size]]
                batch = torch.stack([self.transform(image) for image in images])
                out.append(self.model(batch).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)))

    def predict(self, inputs: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        """(N, K) class probabilities (softmax of the logits)."""
        logits = torch.as_tensor(self.logits(inputs, batch_size))
        return logits.softmax(dim=-1).numpy()


class OpenClipClassifier(torch.nn.Module):
    """An open_clip model's normalised image embeddings through the exported head."""

    def __init__(self, model: Any, head: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.model, self.weight, self.bias = model, head["weight"], head["bias"]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        embeddings = torch.nn.functional.normalize(self.model.encode_image(images), dim=-1)
        return embeddings @ self.weight.T + self.bias


class LiTClassifier(torch.nn.Module):
    """A LiT export: the timm image tower's features, projected and normalised, through the
    head of class-prompt embeddings."""

    def __init__(self, model: Any, head: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        joint = self.model(images) @ self.head["projection"].T
        return (
            torch.nn.functional.normalize(joint, dim=-1) @ self.head["weight"].T + self.head["bias"]
        )


def open_image(item: Any) -> Any:
    """An RGB PIL image from a path (or the image itself)."""
    from PIL import Image

    if isinstance(item, (str, Path)):
        try:
            with Image.open(item) as image:
                return image.convert("RGB")
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read image {item}: {exc}") from None
    return item.convert("RGB")


def load(folder: str | Path) -> Exported:
    """An export folder, through its own library.

    Raises:
        ConfigError: not a folder ``shiftlab export`` wrote.
    """
    folder = Path(folder)
    path = folder / FORMAT_FILE
    if not path.is_file():
        raise ConfigError(f"{folder} is not a shiftlab export (no {FORMAT_FILE})")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta["format"] == "sentence-transformers":
        st = require("sentence_transformers", "deploy")
        return Exported(folder, meta, st.SentenceTransformer(str(folder), device="cpu"))
    if meta["format"] in ("timm", "lit"):
        timm = require("timm", "vision")
        model = timm.create_model(
            meta["architecture"],
            pretrained=True,
            num_classes=meta["overlay"]["num_classes"],
            pretrained_cfg_overlay={**meta["overlay"], "file": str(folder / "model.safetensors")},
        ).eval()
        config = timm.data.resolve_data_config({}, model=model)
        if meta["format"] == "lit":
            from safetensors.torch import load_file

            model = LiTClassifier(model, load_file(str(folder / "lit_head.safetensors")))
        return Exported(folder, meta, model, timm.data.create_transform(**config))
    if meta["format"] == "open_clip":
        open_clip = require("open_clip", "clip")
        from safetensors.torch import load_file

        open_clip.add_model_config(str(folder / f"{meta['architecture']}.json"))
        size = {"force_image_size": meta["image_size"]} if meta.get("image_size") else {}
        model, _, preprocess = open_clip.create_model_and_transforms(
            meta["architecture"], pretrained=str(folder / "open_clip.pt"), **size
        )
        return Exported(folder, meta, OpenClipClassifier(model.eval(), load_file(
            str(folder / "head.safetensors"))), preprocess)  # fmt: skip
    if meta["format"] in ("peft", "transformers"):
        raise ConfigError(
            f"{folder} holds a language model: load it with the line in its README.md, or "
            "predict with the run directory (shiftlab predict RUN_DIR MODEL)"
        )
    raise ConfigError(f"{folder}: unknown export format {meta['format']!r}")
