"""Seeding, device choice and the console every stage logs to."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from rich.console import Console

from shiftlab.errors import ConfigError

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
    """Map "auto" to cuda when available, else cpu; check that any other device exists here.

    Raises:
        ConfigError: ``device`` is no device name (``gpu0``), or names an accelerator this
            machine lacks (``cuda`` without CUDA, ``cuda:3`` with two GPUs, ``mps`` off a Mac).
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(
            f"device '{device}' is not a device name; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    _check_available(device, resolved)
    return resolved


def _check_available(device: str, resolved: torch.device) -> None:
    fix = "use device: auto or cpu"
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device '{device}' requested but CUDA is not available here "
                f"(torch reports no GPU); {fix}"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            have = (
                "1 CUDA GPU (cuda:0)"
                if count == 1
                else f"{count} CUDA GPUs (cuda:0 to cuda:{count - 1})"
            )
            raise ConfigError(
                f"device '{device}' requested but this machine has {have}; "
                "use device: cuda, auto or cpu"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"device '{device}' requested but MPS (Apple GPU) is not available here; {fix}"
        )
    elif resolved.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise ConfigError(f"device '{device}' requested but no Intel XPU is available here; {fix}")
    elif resolved.type == "meta":
        raise ConfigError(f"device '{device}' holds no data and cannot run; {fix}")


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
