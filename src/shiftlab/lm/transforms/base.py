"""What every conjugate-prompting transform offers, and how one is built from its options.

Conjugate prompting (Kotha, Springer, Raghunathan, ICLR 2024, arXiv 2309.10105; reference
kothasuhas/understanding-forgetting): a transform maps the whole prompt (``forward``) and maps
the model's answer back (``inverse``).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from shiftlab.errors import ConfigError
from shiftlab.registry import TRANSFORMS
from shiftlab.typed import options_of


class PromptTransform(ABC):
    """An (approximately) invertible map on text.

    ``forward`` is applied to the whole prompt, demonstrations and label words included;
    ``inverse`` maps the model's answer back to the original language. ``inverse(forward(w))``
    is ``w`` for the task's label words (each subclass says where else it holds).
    """

    name: str = ""

    @abstractmethod
    def forward(self, text: str) -> str:
        """The transformed text."""

    @abstractmethod
    def inverse(self, text: str) -> str:
        """The text mapped back (an answer the model wrote in the transformed language)."""

    def forward_all(self, texts: Sequence[str]) -> list[str]:
        """``forward`` of each text (prompts, or label words such as ``" positive"``)."""
        return [self.forward(t) for t in texts]

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def make_transform(name: str, options: Any = None, **more: Any) -> PromptTransform:
    """Build the transform registered as ``name`` with its options.

    Args:
        name: ``leetspeak``, ``pig_latin`` or ``translate`` (a close misspelling is suggested).
        options: the transform's options dataclass, or a mapping of them; ``more`` adds keys.
            Unknown keys are ConfigErrors.

    Returns:
        The transform, ready to ``forward`` prompts and ``inverse`` answers.
    """
    entry = TRANSFORMS[name]
    if more:
        options = {**(options or {}), **more}
    built = options_of(entry.options, options, f"transforms.{name}")
    return entry.obj(built) if built is not None else entry.obj()


def load_callable(spec: str, what: str = "function") -> Callable[..., Any]:
    """Import ``"package.module:function"`` and return the callable, or raise a ConfigError.

    Args:
        spec: a module path and an attribute, separated by one colon.
        what: the option's name, used in the error message.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what} must be 'module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{what} {spec!r}: cannot import module '{module_name}' ({exc})"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{what} {spec!r}: module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{what} {spec!r} is not callable")
    return obj
