"""Import optional packages inside the function that needs them, naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from shiftlab.errors import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an error that says ``pip install 'shiftlab[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"'{module}' is not installed; run: pip install 'shiftlab[{extra}]'"
        ) from exc
