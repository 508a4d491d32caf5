"""The one place that fills the registries: every method package, imported once.

Registries call :func:`load` before any lookup, so a config, the CLI, a script or a test always
sees every registered recipe, adapter, dataset and backbone, and no module has to import method
packages for their side effect. Adding a package of methods is one line here.
"""

from __future__ import annotations

import importlib

PACKAGES = (
    "shiftlab.data",
    "shiftlab.models",
    "shiftlab.finetune",
    "shiftlab.adapt",
    "shiftlab.curation",
    "shiftlab.lm.transforms",
    "shiftlab.lm.audit",
    "shiftlab.membership",
    "shiftlab.unlearn",
)

_state = {"loaded": False}


def load() -> None:
    """Import every method package (registering its methods); later calls do nothing."""
    if _state["loaded"]:
        return
    _state["loaded"] = True  # set first: packages may look names up while they import
    for package in PACKAGES:
        importlib.import_module(package)
