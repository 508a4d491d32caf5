"""One generic registry; one instance per concept (recipes, adapters, datasets, backbones).

Methods register themselves where they are defined, and :mod:`shiftlab.catalogue` imports
every method package the first time a registry is read::

    @FINETUNE.register("wise_ft", config=WiseFTConfig)
    def wise_ft(ctx, cfg): ...

The CLI, ``shiftlab list``, the docs table and the conformance tests all read these registries.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shiftlab.errors import ConfigError

T = TypeVar("T")


def closest(name: str, candidates: list[str]) -> str | None:
    """Return the candidate closest to ``name`` by edit similarity, or None if none is close."""
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower().replace("-", "_"): c for c in candidates}
        match = difflib.get_close_matches(name.lower().replace("-", "_"), list(lowered), 1, 0.6)
        match = [lowered[m] for m in match]
    return match[0] if match else None


def unknown_name_message(kind: str, name: str, candidates: list[str]) -> str:
    """Build "unknown recipe 'wiseft'; did you mean 'wise_ft'? (known: ...)"."""
    hint = closest(name, candidates)
    message = f"unknown {kind} '{name}'"
    if hint is not None:
        message += f"; did you mean '{hint}'?"
    return message + f" (known: {', '.join(sorted(candidates))})"


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object, with the dataclass that holds its options (if it has any)."""

    name: str
    obj: T
    config: type | None = None
    requires: frozenset[str] = frozenset()  # backbone capabilities, any one of which will do
    parts: Callable[..., dict[str, Any]] | None = None  # (ctx, cfg) -> parts trainable apart

    @property
    def citation(self) -> str | None:
        """The arXiv id cited by the module that defines the entry (its paper), if any."""
        module = sys.modules.get(getattr(self.obj, "__module__", ""), None)
        found = re.search(r"arXiv (\d{4}\.\d{4,5})", (module.__doc__ or "") if module else "")
        return found.group(1) if found else None

    @property
    def summary(self) -> str:
        """First sentence of the registered object's docstring (its first paragraph)."""
        doc = (getattr(self.obj, "__doc__", None) or "").strip()
        paragraph = " ".join(doc.split("\n\n", 1)[0].split())
        end = re.search(r"\.(\s|$)", paragraph)
        return paragraph[: end.start() + 1] if end else paragraph


class Registry(Generic[T]):
    """Name -> object map that refuses duplicates and suggests the closest name on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        *,
        config: type | None = None,
        requires: tuple[str, ...] = (),
        parts: Callable[..., dict[str, Any]] | None = None,
    ) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; ``config`` is its options dataclass,
        ``requires`` what it needs of the backbone (checked before a run starts), ``parts``
        (recipes) the pieces an executor may train apart (see :meth:`RecipeContext.part`)."""

        def decorate(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = Entry(name, obj, config, frozenset(requires), parts)
            return obj

        return decorate

    def __getitem__(self, name: str) -> Entry[T]:
        _fill()
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(unknown_name_message(self.kind, name, list(self._entries))) from None

    def __contains__(self, name: object) -> bool:
        _fill()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        _fill()
        return iter(self._entries[name] for name in sorted(self._entries))

    def __len__(self) -> int:
        _fill()
        return len(self._entries)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        _fill()
        return sorted(self._entries)


def _fill() -> None:
    """Make sure every method package has registered itself (see :mod:`shiftlab.catalogue`)."""
    from shiftlab import catalogue

    catalogue.load()


FINETUNE: Registry[Any] = Registry("recipe")
ADAPT: Registry[Any] = Registry("adapter")
DATASETS: Registry[Any] = Registry("dataset")
BACKBONES: Registry[Any] = Registry("backbone")
CURATE: Registry[Any] = Registry("curation score")
CURATE_ACTIONS: Registry[Any] = Registry("curation action")
TRANSFORMS: Registry[Any] = Registry("prompt transform")
AUDITS: Registry[Any] = Registry("audit method")
MEMBERSHIP: Registry[Any] = Registry("membership score")
UNLEARN: Registry[Any] = Registry("unlearning method")
