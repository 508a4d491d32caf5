"""Translation as a conjugate-prompting transform, from translations the user supplies.

Kotha, Springer, Raghunathan, ICLR 2024, arXiv 2309.10105. Reference implementation:
kothasuhas/understanding-forgetting: its French, Spanish, Dutch and Hungarian prompts were
translated offline (Google Translate) and hard-coded in ``icl_vs_if/create_datasets.py`` and
``icl_vs_if/sentences/random_sentences_*.txt``; ``code_xnli/xnli.py`` uses XNLI's own
translations. No translation model runs here either. Translations come from:

- columns of the data: ``rows`` (the examples, as mappings), ``column`` (the translated text,
  e.g. ``text_fr``, of ``source_column``) and ``label_column`` (the translated label word of
  ``source_label_column``);
- ``table`` (any other segments, such as template words: ``{"Review:": "Critique :"}``) and
  ``labels`` (label words: ``{"positive": "positif"}``);
- or ``function``: a ``"module:function"`` callable mapping a prompt to its translation, with
  ``inverse_function`` for answers (else the ``labels`` read backwards).

With a table, ``forward`` replaces every known segment in one pass, longest first, only where it
is not part of a longer word; a prompt in which nothing is known is a DataError (a wrong column).
``inverse`` replaces translated segments by their source, label words first; two label words
with one translation are refused, since the inverse could not tell them apart. Other segments
that share a translation keep the first source. With ``function`` and neither ``labels`` nor
``inverse_function``, ``inverse`` returns the answer unchanged (the paper scores answers in the
transformed language).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shiftlab.errors import ConfigError, DataError
from shiftlab.lm.transforms.base import PromptTransform, load_callable
from shiftlab.registry import TRANSFORMS
from shiftlab.typed import param


@dataclass
class TranslateOptions:
    """Options of the translate transform."""

    rows: list[dict[str, Any]] = param([], "the data's examples, holding the translated columns")
    column: str | None = param(None, "column of rows holding the translation of source_column")
    source_column: str = param("text", "column of rows holding the original text")
    label_column: str | None = param(None, "column of rows holding the translated label word")
    source_label_column: str = param("label", "column of rows holding the original label word")
    table: dict[str, str] = param({}, "other segments and their translations (template words)")
    labels: dict[str, str] = param({}, "label words and their translations")
    function: str | None = param(
        None, "'module:function' translating a prompt (instead of a table)"
    )
    inverse_function: str | None = param(None, "'module:function' translating an answer back")


def _column(rows: Sequence[Mapping[str, Any]], name: str, what: str) -> list[str]:
    values = []
    for i, row in enumerate(rows):
        if name not in row:
            known = ", ".join(sorted(map(str, row))) or "none"
            raise DataError(f"translate: {what} '{name}' is not in row {i} (columns: {known})")
        value = row[name]
        if value is None or str(value).strip() == "":
            raise DataError(f"translate: {what} '{name}' is empty in row {i}")
        values.append(str(value))
    return values


def _pattern(keys: Sequence[str]) -> re.Pattern[str] | None:
    """One regex matching any key, longest first, never inside a longer word."""
    parts = []
    for key in sorted(keys, key=len, reverse=True):
        left = r"(?<!\w)" if key[:1].isalnum() or key[:1] == "_" else ""
        right = r"(?!\w)" if key[-1:].isalnum() or key[-1:] == "_" else ""
        parts.append(left + re.escape(key) + right)
    return re.compile("|".join(parts)) if parts else None


def _reverse(mapping: Mapping[str, str], *, strict: bool) -> dict[str, str]:
    reverse: dict[str, str] = {}
    for source, target in mapping.items():
        if target in reverse and reverse[target] != source and strict:
            raise ConfigError(
                f"translate: label words '{reverse[target]}' and '{source}' both translate to "
                f"'{target}'; the inverse cannot tell them apart"
            )
        reverse.setdefault(target, source)
    return reverse


#: A small French table: what the conformance check translates with.
FRENCH = {
    "table": {"Review": "Critique", "a quiet film about a long winter.": "un film calme."},
    "labels": {" positive": " positif", " negative": " négatif", " neutral": " neutre",
               " yes": " oui", " no": " non"},
}  # fmt: skip


@TRANSFORMS.register("translate", options=TranslateOptions, fast=FRENCH)
class Translate(PromptTransform):
    """Translation read from the data's columns, a table, or a ``module:function`` callable."""

    name = "translate"

    def __init__(self, options: TranslateOptions | None = None) -> None:
        options = options or TranslateOptions()
        self.options = options
        self._function: Callable[[str], str] | None = None
        self._inverse_function: Callable[[str], str] | None = None
        table: dict[str, str] = {}
        labels = {str(k): str(v) for k, v in options.labels.items()}
        if options.function is not None:
            if options.rows or options.table:
                raise ConfigError("translate: give either 'function' or a table ('rows'/'table')")
            self._function = load_callable(options.function, "translate.function")
        else:
            table.update(self._rows_table(options))
            labels.update(self._rows_labels(options, labels))
            table.update(options.table)
            if not table and not labels:
                raise ConfigError(
                    "translate needs 'column' (the translated column of 'rows'), 'table' and "
                    "'labels', or 'function'"
                )
        if options.inverse_function is not None:
            self._inverse_function = load_callable(
                options.inverse_function, "translate.inverse_function"
            )
        self.table = {**table, **labels}
        self.labels = labels
        self._forward = _pattern(list(self.table))
        reverse = {**_reverse(table, strict=False), **_reverse(labels, strict=True)}
        self._reverse = reverse
        self._inverse = _pattern(list(reverse))

    @staticmethod
    def _rows_table(options: TranslateOptions) -> dict[str, str]:
        if options.column is None:
            if options.rows and options.label_column is None:
                raise ConfigError("translate: 'rows' given without 'column' or 'label_column'")
            return {}
        sources = _column(options.rows, options.source_column, "source column")
        targets = _column(options.rows, options.column, "column")
        table: dict[str, str] = {}
        for source, target in zip(sources, targets, strict=True):
            table.setdefault(source, target)
        return table

    @staticmethod
    def _rows_labels(options: TranslateOptions, given: Mapping[str, str]) -> dict[str, str]:
        if options.label_column is None:
            return {}
        sources = _column(options.rows, options.source_label_column, "source label column")
        targets = _column(options.rows, options.label_column, "label column")
        labels: dict[str, str] = {}
        for source, target in zip(sources, targets, strict=True):
            known = labels.get(source, given.get(source, target))
            if known != target:
                raise DataError(
                    f"translate: label '{source}' is translated both as '{known}' and '{target}'"
                )
            labels[source] = target
        return labels

    def forward(self, text: str) -> str:
        """The translation: the callable's, or every known segment replaced in one pass."""
        if self._function is not None:
            out = self._function(text)
            if not isinstance(out, str):
                raise ConfigError(
                    f"translate.function must return a string, got {type(out).__name__}"
                )
            return out
        assert self._forward is not None
        out, count = self._forward.subn(lambda m: self.table[m.group(0)], text)
        if count == 0 and text.strip():
            raise DataError(
                f"translate: no segment of {text[:60]!r} has a translation (check 'column')"
            )
        return out

    def inverse(self, text: str) -> str:
        """The answer in the source language: the inverse callable's, or translated segments
        (label words first) replaced by their source."""
        if self._inverse_function is not None:
            return self._inverse_function(text)
        if self._inverse is None:
            return text
        return self._inverse.sub(lambda m: self._reverse[m.group(0)], text)

    def __repr__(self) -> str:
        how = self.options.function or f"{len(self.table)} segments"
        return f"Translate({how})"
