"""Benchmarks: loaders register themselves in ``DATASETS`` on import."""

from shiftlab.data.benchmark import Benchmark, Domain, LoadedData, Split
from shiftlab.data.build import build_benchmark, load_benchmark

__all__ = [
    "Benchmark",
    "Domain",
    "LoadedData",
    "Split",
    "build_benchmark",
    "load_benchmark",
]
