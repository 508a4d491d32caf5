"""One generic registry; one instance per family of methods (recipes, adapters, datasets, ...).

A method registers itself where it is defined, with its options dataclass and what the
family's contract asks of it::

    @FINETUNE.register("wise_ft", options=WiseFTOptions)
    def wise_ft(ctx, options): ...

Each registry knows the modules that hold its members (its *homes*) and imports every module
of them the first time it is read (:meth:`Registry.discover`), so adding a method is one file:
no list of modules to edit. That discovery, by module name, is the one import that runs from a
low layer to the method packages; every static import goes downwards (docs/design.md).

The CLI, ``shiftlab list``, the docs tables and the conformance checks
(:mod:`shiftlab.testing`) all read these registries.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
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
    """A registered method, with the dataclass of its options and what its family's contract
    declares about it.

    Attributes:
        name: the registered name.
        obj: the method (a function or a class, per family).
        options: the dataclass of its options (None: it takes none).
        kinds: the backbones it works on, any one of which will do: ``encoder`` (features for a
            head), ``causal_lm`` (a language model), ``text_side`` (class prompts encodable).
            Empty: any. Checked before a run starts. A backbone's own: the inputs it reads
            (``text``; ``image``: image files and arrays; ``image_arrays``: arrays only) and
            ``causal_lm`` for a language model, known before it loads.
        needs: what it needs besides its family's inputs, all of them (a membership score's
            ``vocab_stats`` or ``reference`` model).
        parts: (recipes) ``(ctx, options) -> parts`` trainable apart (model-soup ingredients).
        fast: options that make it run in seconds on tiny data, or a function of the check's
            ``workdir`` and ``data_dir`` that returns them (None: it cannot run here): what the
            conformance checks of :mod:`shiftlab.testing` run it with.
        aliases: other names that resolve to it (old names kept for old configs).
    """

    name: str
    obj: T
    options: type | None = None
    kinds: frozenset[str] = frozenset()
    needs: frozenset[str] = frozenset()
    parts: Callable[..., dict[str, Any]] | None = None
    fast: Mapping[str, Any] | Callable[..., Mapping[str, Any] | None] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def citation(self) -> str | None:
        """The arXiv id cited by the module that defines the entry (its paper), if any."""
        module = sys.modules.get(getattr(self.obj, "__module__", ""), None)
        found = re.search(r"arXiv\s+(\d{4}\.\d{4,5})", (module.__doc__ or "") if module else "")
        return found.group(1) if found else None

    @property
    def summary(self) -> str:
        """First sentence of the registered object's docstring (its first paragraph)."""
        doc = (getattr(self.obj, "__doc__", None) or "").strip()
        paragraph = " ".join(doc.split("\n\n", 1)[0].split())
        end = re.search(r"\.(\s|$)", paragraph)
        return paragraph[: end.start() + 1] if end else paragraph


class Registry(Generic[T]):
    """Name -> entry map that refuses duplicates, resolves aliases and suggests the closest
    name on a miss.

    Args:
        kind: what an entry is, in messages ("recipe").
        homes: modules or packages whose modules register entries; every one is imported on
            the first lookup.
    """

    def __init__(self, kind: str, *homes: str) -> None:
        self.kind = kind
        self.homes = homes
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._discovered = False

    def register(
        self,
        name: str,
        *,
        options: type | None = None,
        kinds: tuple[str, ...] = (),
        needs: tuple[str, ...] = (),
        parts: Callable[..., dict[str, Any]] | None = None,
        fast: Mapping[str, Any] | Callable[..., Mapping[str, Any] | None] | None = None,
        aliases: tuple[str, ...] = (),
    ) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (see :class:`Entry` for the rest)."""

        def decorate(obj: T) -> T:
            for taken in (name, *aliases):
                if taken in self._entries or taken in self._aliases:
                    raise ValueError(f"{self.kind} '{taken}' is already registered")
            entry = Entry(
                name,
                obj,
                options,
                frozenset(kinds),
                frozenset(needs),
                parts,
                fast if callable(fast) else dict(fast or {}),
                tuple(aliases),
            )
            self._entries[name] = entry
            self._aliases.update(dict.fromkeys(aliases, name))
            return obj

        return decorate

    def discover(self) -> None:
        """Import every module of the registry's homes (once), registering their entries."""
        if self._discovered:
            return
        self._discovered = True  # set first: modules may look names up while they import
        for home in self.homes:
            module = importlib.import_module(home)
            path = getattr(module, "__path__", None)
            if path is None:
                continue
            for info in pkgutil.walk_packages(path, f"{home}."):
                importlib.import_module(info.name)

    def canonical(self, name: str) -> str:
        """The registered name ``name`` stands for (itself, or what it is an alias of)."""
        self.discover()
        return self._aliases.get(name, name)

    def __getitem__(self, name: str) -> Entry[T]:
        self.discover()
        try:
            return self._entries[self._aliases.get(name, name)]
        except KeyError:
            raise ConfigError(unknown_name_message(self.kind, name, list(self._entries))) from None

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[Entry[T]]:
        self.discover()
        return iter(self._entries[name] for name in sorted(self._entries))

    def __len__(self) -> int:
        self.discover()
        return len(self._entries)

    def names(self) -> list[str]:
        """Registered names, sorted (aliases left out)."""
        self.discover()
        return sorted(self._entries)


FINETUNE: Registry[Any] = Registry("recipe", "shiftlab.finetune")
ADAPT: Registry[Any] = Registry("adapter", "shiftlab.adapt")
DATASETS: Registry[Any] = Registry("dataset", "shiftlab.data")
BACKBONES: Registry[Any] = Registry("backbone", "shiftlab.models", "shiftlab.lm.backbone")
CURATE: Registry[Any] = Registry("curation score", "shiftlab.curation")
CURATE_ACTIONS: Registry[Any] = Registry("curation action", "shiftlab.curation")
TRANSFORMS: Registry[Any] = Registry("prompt transform", "shiftlab.lm.transforms")
AUDITS: Registry[Any] = Registry("audit method", "shiftlab.lm.audit")
MEMBERSHIP: Registry[Any] = Registry("membership score", "shiftlab.membership")
UNLEARN: Registry[Any] = Registry("unlearning method", "shiftlab.unlearn")

#: Every family's registry, by the name ``shiftlab list`` uses.
REGISTRIES: dict[str, Registry[Any]] = {
    "recipes": FINETUNE,
    "adapters": ADAPT,
    "datasets": DATASETS,
    "backbones": BACKBONES,
    "curation-scores": CURATE,
    "curation-actions": CURATE_ACTIONS,
    "transforms": TRANSFORMS,
    "audits": AUDITS,
    "membership": MEMBERSHIP,
    "unlearning": UNLEARN,
}
