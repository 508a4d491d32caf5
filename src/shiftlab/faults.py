"""Fault injection, for tests that a killed run resumes exactly: ``SHIFTLAB_KILL_AT=POINT:N``
makes the process SIGKILL itself at the N-th time it passes ``POINT`` (``train_step``: a
training step; ``evaluate``: a split evaluated; ``write``: a file written, just before it
replaces the old one). Unset (always, outside tests), :func:`point` does nothing."""

from __future__ import annotations

import os
import signal
from collections import Counter

_counts: Counter[str] = Counter()


def point(name: str) -> None:
    """Mark that the process passes ``name``; die here if the environment asks to."""
    plan = os.environ.get("SHIFTLAB_KILL_AT")
    if not plan:
        return
    where, _, count = plan.partition(":")
    if where != name:
        return
    _counts[name] += 1
    if _counts[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
