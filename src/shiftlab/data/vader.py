"""VADER 4-domain sentiment (Hutto and Gilbert, ICWSM 2014; MIT licence).

Movie-review snippets, tweets, Amazon reviews and NYT editorial snippets, each rated by about 20
people on -4..+4. The data ships inside the ``vaderSentiment==3.3.2`` source distribution, which
is fetched with pip, verified by sha256 and cached under :func:`shiftlab.runtime.cache_dir`.

Labels come from the mean rating (``labels: mean``, the default). ``labels: rater`` gives real,
instance-dependent human label noise: each text is labelled by one of its raters, drawn at
random (seeded) among those whose own rating is outside the neutral band, binarised as the mean
is; the clean label (from the mean) is kept as the example's true label, against which models
are scored and curation is judged. Example ids are ``<domain>:<id in the file>``.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.data.download import pip_sdist, temporary_dir, verify
from shiftlab.errors import DataError
from shiftlab.registry import DATASETS
from shiftlab.runtime import cache_dir, log
from shiftlab.typed import param

REQUIREMENT = "vaderSentiment==3.3.2"
ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
ARCHIVE_SHA256 = "d5bb07d87474b3eb8d30b4deccbc23f19d742a6c5718fbacc65485b70b95c5fa"
FILES = {
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}
RATER_FILES = {d: f.replace("_GroundTruth", "_anonDataRatings") for d, f in FILES.items()}
CLASS_NAMES = ["negative", "positive"]


@dataclass
class VaderOptions:
    """Where the VADER files are, and how mean ratings become binary labels."""

    path: str | None = param(
        None,
        "folder with *_GroundTruth.txt, or the vaderSentiment sdist / hutto_ICWSM_2014.tar.gz; "
        "default: fetched with pip into the cache",
    )
    neutral_band: float = param(
        0.5, "texts with |mean rating| below this are dropped", within="[0, inf)"
    )
    labels: Literal["mean", "rater"] = param(
        "mean",
        "mean: the label of the mean rating; rater: one seeded random rater's label (real "
        "human noise), the mean's kept as the true label",
    )
    rater_seed: int = param(
        0, "seed of the rater drawn per text (labels: rater)", within="[0, 4294967295]"
    )


def _extract(archive: bytes, dest: Path) -> None:
    """Write the four ground-truth files of the verified inner archive into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        for filename in [*FILES.values(), *RATER_FILES.values()]:
            if filename not in members:
                raise DataError(f"{filename} is missing from the VADER archive")
            handle = tar.extractfile(members[filename])
            assert handle is not None
            (dest / filename).write_bytes(handle.read())


def _inner_archive(path: Path) -> bytes:
    """The verified hutto_ICWSM_2014.tar.gz bytes, from itself or from the sdist holding it."""
    data = path.read_bytes()
    if path.name.startswith("hutto_ICWSM_2014"):
        return verify(data, ARCHIVE_SHA256, str(path))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith(ARCHIVE)), None)
        if member is None:
            raise DataError(f"{path} does not contain {ARCHIVE}; is it the {REQUIREMENT} sdist?")
        handle = tar.extractfile(member)
        assert handle is not None
        return verify(handle.read(), ARCHIVE_SHA256, f"{ARCHIVE} in {path.name}")


def vader_folder(path: str | None) -> Path:
    """A folder holding the four ground-truth files, fetching and caching them if needed."""
    if path is not None:
        source = Path(path).expanduser()
        if source.is_dir():
            return source
        if not source.is_file():
            raise DataError(f"VADER data not found at {source} (data.path)")
        target = Path(cache_dir()) / "vader-3.3.2"
        _extract(_inner_archive(source), target)
        return target
    target = Path(cache_dir()) / "vader-3.3.2"
    if all((target / f).is_file() for f in [*FILES.values(), *RATER_FILES.values()]):
        return target
    with temporary_dir() as tmp:
        sdist = pip_sdist(REQUIREMENT, Path(tmp))
        _extract(_inner_archive(sdist), target)
    log(f"VADER data cached in {target}")
    return target


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return [(n, line.split("\t")) for n, line in enumerate(text.split("\n"), 1) if line.strip()]


def _read(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Ids, texts and mean ratings of one ``id<TAB>mean<TAB>text`` file."""
    ids, texts, ratings = [], [], []
    for number, parts in _lines(path):
        if len(parts) < 3:
            raise DataError(f"{path}:{number} is not 'id<TAB>rating<TAB>text'")
        ids.append(parts[0].strip())
        ratings.append(float(parts[1]))
        texts.append("\t".join(parts[2:]).strip())
    return ids, texts, np.array(ratings)


def _rater_ratings(path: Path) -> dict[str, list[float]]:
    """Each text's individual ratings, from ``id<TAB>mean<TAB>std<TAB>[r1, r2, ...]``."""
    ratings = {}
    for number, parts in _lines(path):
        if len(parts) != 4 or not parts[3].strip().startswith("["):
            raise DataError(f"{path}:{number} is not 'id<TAB>mean<TAB>std<TAB>[ratings]'")
        ratings[parts[0].strip()] = [float(v) for v in parts[3].strip(" []\r").split(",")]
    return ratings


def rater_labels(
    ids: list[str], ratings: dict[str, list[float]], band: float, rng: np.random.Generator
) -> np.ndarray:
    """One rater's binary label per text: a rater drawn uniformly among those whose rating is
    outside the neutral band; -1 where every rater was neutral."""
    out = np.full(len(ids), -1, dtype=np.int64)
    for i, key in enumerate(ids):
        decisive = [r for r in ratings.get(key, []) if abs(r) >= band]
        if decisive:
            out[i] = int(decisive[int(rng.integers(len(decisive)))] > 0)
    return out


@DATASETS.register("vader", options=VaderOptions)
def vader(cfg: VaderOptions, class_names: list[str] | None) -> LoadedData:
    """VADER sentiment: movie, tweets, amazon, nyt; binary labels from the mean human rating."""
    if cfg.neutral_band < 0:
        raise DataError("data.neutral_band must be >= 0")
    if class_names is not None and len(class_names) != 2:
        raise DataError("VADER is binary: class_names must name 2 classes (negative, positive)")
    folder = vader_folder(cfg.path)
    domains = {}
    rng = np.random.default_rng(cfg.rater_seed)
    for domain, filename in FILES.items():
        file = folder / filename
        if not file.is_file():
            raise DataError(f"VADER file {filename} not found in {folder}")
        ids, texts, ratings = _read(file)
        keep = np.flatnonzero(np.abs(ratings) >= cfg.neutral_band)
        labels = (ratings[keep] > 0).astype(np.int64)
        true_labels = None
        if cfg.labels == "rater":
            rater_file = folder / RATER_FILES[domain]
            if not rater_file.is_file():
                raise DataError(f"VADER file {rater_file.name} not found in {folder}")
            given = rater_labels(
                [ids[i] for i in keep], _rater_ratings(rater_file), cfg.neutral_band, rng
            )
            decided = given >= 0  # a text no rater was decided on has no rater label
            keep, true_labels, labels = keep[decided], labels[decided], given[decided]
        domains[domain] = Domain(
            [texts[i] for i in keep],
            labels,
            ids=np.array([f"{domain}:{ids[i]}" for i in keep], dtype=object),
            true_labels=true_labels,
        )
    return LoadedData(domains, list(class_names or CLASS_NAMES), "text")
