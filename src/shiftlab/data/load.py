"""From a data config to a Benchmark: run the registered loader, then split."""

from __future__ import annotations

from shiftlab.config import DataConfig
from shiftlab.data.benchmark import Benchmark, build_benchmark
from shiftlab.registry import DATASETS
from shiftlab.runtime import log


def load_benchmark(cfg: DataConfig) -> Benchmark:
    """Load the data named by ``cfg.kind`` and split it into a Benchmark."""
    entry = DATASETS[cfg.kind]
    loaded = entry.obj(cfg.options, cfg.class_names)
    benchmark = build_benchmark(loaded, cfg, cfg.kind)
    log(benchmark.summary())
    return benchmark
