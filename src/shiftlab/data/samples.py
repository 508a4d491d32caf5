"""Small data for the conformance checks of dataset loaders (their ``fast`` options, see
:mod:`shiftlab.testing`): a table written on the spot, or a loader's folder under the local data
folder (``$SHIFTLAB_DATA_DIR``) where there is one."""

from __future__ import annotations

import csv
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def under_data_dir(folder: str, **more: Any) -> Callable[..., dict[str, Any] | None]:
    """A ``fast`` factory: the loader's ``path`` is ``folder`` under the local data folder (and
    ``more`` options); None (the check skips) where there is no data folder."""

    def fast(data_dir: Path | None = None, **_: Any) -> dict[str, Any] | None:
        return {"path": str(Path(data_dir) / folder), **more} if data_dir else None

    return fast


def sample_table(workdir: Path, kind: str) -> dict[str, str]:
    """Options of a small labelled table written into ``workdir`` (what the conformance check of
    ``csv`` and ``jsonl`` loads)."""
    rows = [
        {"text": f"{word} {i}", "label": label, "domain": domain}
        for i, (word, label, domain) in enumerate(
            [("good", "pos", "a"), ("bad", "neg", "a"), ("fine", "pos", "b"), ("poor", "neg", "b")]
            * 3
        )
    ]
    path = Path(workdir) / f"sample.{kind}"
    if kind == "csv":
        lines = ["text,label,domain", *(f"{r['text']},{r['label']},{r['domain']}" for r in rows)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"path": str(path), "domain_column": "domain"}


def sample_hf_dataset(workdir: Path, **_: Any) -> dict[str, Any] | None:
    """Options of a small text dataset saved with the ``datasets`` library (None without it)."""
    if importlib.util.find_spec("datasets") is None:
        return None
    import datasets

    words = ["good", "bad", "fine", "poor"] * 3
    ds = datasets.Dataset.from_dict(
        {
            "text": [f"{w} {i}" for i, w in enumerate(words)],
            "label": ["pos" if w in ("good", "fine") else "neg" for w in words],
            "site": ["a", "a", "b", "b"] * 3,
        }
    )
    ds.save_to_disk(str(Path(workdir) / "texts"))
    return {"path": str(Path(workdir) / "texts"), "text_column": "text", "domain_column": "site"}


def sample_waterbirds(workdir: Path, **_: Any) -> dict[str, Any] | None:
    """Options of a tiny Waterbirds folder in the WILDS layout (metadata.csv, a release file,
    small images of both classes and places in each official split); None without ``wilds``."""
    if importlib.util.find_spec("wilds") is None:
        return None
    from PIL import Image

    folder = Path(workdir) / "waterbirds_v1.0"
    rows = []
    for split in (0, 1, 2):
        for y in (0, 1):
            for place in (0, 1):
                i = len(rows)
                name = f"{'098.Scott_Oriole' if y == 0 else '045.Northern_Fulmar'}/b_{i:03d}.png"
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), (60 * y, 120 * place, 200)).save(folder / name)
                place_file = f"/{'b/bamboo_forest' if place == 0 else 'o/ocean'}/x_{i}.jpg"
                rows.append([i + 1, name, y, split, place, place_file])
    with (folder / "metadata.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["img_id", "img_filename", "y", "split", "place", "place_filename"])
        writer.writerows(rows)
    (folder / "RELEASE_v1.0.txt").write_text("v1.0\n")
    return {"dataset": "waterbirds", "root_dir": str(workdir)}
