"""Membership tests share the causal-LM tests' tiny Llama (``tests/lm/tiny_lm.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

LM_TESTS = Path(__file__).resolve().parents[1] / "lm"
if str(LM_TESTS) not in sys.path:
    sys.path.insert(0, str(LM_TESTS))
