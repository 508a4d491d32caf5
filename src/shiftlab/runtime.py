"""Seeding, device choice and the console every stage logs to."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)  # logs: one line each


def log(message: str) -> None:
    """Print one progress line to stderr."""
    console.print(f"[dim]shiftlab[/dim] {message}")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a recipe's numbers depend on ``seed`` alone."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str) -> torch.device:
    """Map "auto" to cuda when available, else cpu; pass other names through."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cache_dir() -> str:
    """Where downloads are kept: ``$SHIFTLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/shiftlab``."""
    explicit = os.environ.get("SHIFTLAB_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "shiftlab")


def data_dir() -> str | None:
    """The folder of local datasets named by ``$SHIFTLAB_DATA_DIR``, if set."""
    return os.environ.get("SHIFTLAB_DATA_DIR") or None
