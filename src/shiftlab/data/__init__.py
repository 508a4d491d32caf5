"""Benchmarks: loaders register themselves in ``DATASETS`` on import."""

from shiftlab.data import (
    colored_digits,
    digits,
    fictitious_facts,
    hf_data,
    image_folder,
    sentiment_sentences,
    table,
    vader,
    wilds_data,
    wrench,
)
from shiftlab.data.benchmark import Benchmark, Domain, LoadedData, Split, build_benchmark
from shiftlab.data.load import load_benchmark

__all__ = [
    "Benchmark",
    "Domain",
    "LoadedData",
    "Split",
    "build_benchmark",
    "colored_digits",
    "digits",
    "fictitious_facts",
    "hf_data",
    "image_folder",
    "load_benchmark",
    "sentiment_sentences",
    "table",
    "vader",
    "wilds_data",
    "wrench",
]
