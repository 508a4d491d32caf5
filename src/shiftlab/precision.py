"""Numeric precision of training and encoding: fp32, or mixed bf16 / fp16 through autocast.

A run's ``precision: auto | fp32 | bf16 | fp16`` is resolved once, by :func:`resolve_precision`,
against the device: ``auto`` is fp32 on a CPU (and on a GPU without bf16) and bf16 on a GPU that
supports it. The session makes the resolved value the process's current precision
(:func:`set_precision`); the shared trainer and :func:`shiftlab.features.encode` read it
(:func:`current_precision`) unless told otherwise, so every recipe trains and every split is
encoded the same way without each recipe passing it on.

Mixed precision keeps the weights and the optimiser in fp32: only the forward pass (and so the
backward) runs in the lower precision, inside :func:`autocast`. fp16 needs a gradient scaler
(:func:`grad_scaler`) against underflow; bf16 has fp32's range and needs none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal, cast

import torch

from shiftlab.errors import ConfigError

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

_current: Precision = "fp32"


def resolve_precision(requested: str, device: torch.device | str) -> Precision:
    """The precision a run uses on ``device``: ``auto`` resolved, the others checked.

    Args:
        requested: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        device: where the run trains and encodes.

    Raises:
        ConfigError: the device cannot run the requested precision (fp16 on a CPU, bf16 on a
            GPU without it), or the name is unknown.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    if requested == "auto":
        return "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    if requested not in PRECISIONS:
        raise ConfigError(f"precision must be auto, fp32, bf16 or fp16, got {requested!r}")
    if requested == "fp16" and not cuda:
        raise ConfigError("fp16 needs a CUDA GPU; use bf16 or fp32 on a CPU")
    if requested == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU does not support bf16; use fp16 or fp32")
    if requested == "bf16" and device.type not in ("cpu", "cuda"):
        raise ConfigError(f"bf16 autocast is supported on CPUs and CUDA GPUs, not {device.type}")
    return cast(Precision, requested)


def current_precision() -> Precision:
    """The precision training and encoding use when not told one (default fp32)."""
    return _current


def set_precision(precision: str) -> Precision:
    """Make ``precision`` (already resolved) the current one; return the previous one."""
    global _current
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be fp32, bf16 or fp16 here, got {precision!r}")
    previous, _current = _current, cast(Precision, precision)
    return previous


@contextlib.contextmanager
def using_precision(precision: str) -> Iterator[None]:
    """Use ``precision`` inside the block, then restore the previous one."""
    previous = set_precision(precision)
    try:
        yield
    finally:
        set_precision(previous)


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The forward pass's context: nothing for fp32, ``torch.autocast`` to bf16 / fp16 else.

    Raises:
        ConfigError: the device cannot run ``precision`` (see :func:`resolve_precision`).
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    device = torch.device(device)
    resolve_precision(precision, device)  # fp16 on a CPU: the one-line error
    return torch.autocast(device.type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: torch.device | str) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 training (loss scaling against underflow); None otherwise."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)
