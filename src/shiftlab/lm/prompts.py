"""Prompts of a task: a template filled from a row, seeded few-shot demonstrations, and a seeded
relabelling of the label words.

Few-shot prompts follow GPT-3's format (Brown et al., NeurIPS 2020, arXiv 2005.14165): k
demonstrations, each its filled template followed by its answer, then the query's filled
template, joined by a separator. Demonstrations are drawn from the task's training split with a
seed and never include the evaluated example.

``permuted_label_map`` relabels demonstrations and gold labels together, as the flipped-label
in-context-learning tests of Wei et al. (2023, arXiv 2303.03846) and the random-label ablation
of Min et al. (EMNLP 2022, arXiv 2202.12837): a model that follows its demonstrations must then
answer with the relabelled word. By default the map is a derangement (no class keeps its own
word; with two classes, the labels are flipped), so identity is never returned and every
demonstration contradicts the model's prior.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shiftlab.errors import ConfigError, DataError

Seed = int | Sequence[int]


def template_fields(template: str) -> list[str]:
    """Column names a template uses (``{text}`` -> ``text``), in order of first use.

    Raises:
        ConfigError: the template is malformed (an unmatched brace) or has an empty ``{}``.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"prompt template {template!r} is malformed: {exc}") from None
    fields: list[str] = []
    for _, field, _, _ in parsed:
        if field is None:
            continue
        name = field.split(".", 1)[0].split("[", 1)[0]
        if not name or name.isdigit():
            raise ConfigError(f"prompt template {template!r}: every field must name a column")
        if name not in fields:
            fields.append(name)
    return fields


def format_prompt(template: str, row: Mapping[str, Any]) -> str:
    """Fill a template's ``{column}`` fields from a row (``{{`` and ``}}`` are literal braces).

    Raises:
        DataError: the template names a column the row lacks.
        ConfigError: the template is malformed.
    """
    missing = [f for f in template_fields(template) if f not in row]
    if missing:
        available = ", ".join(map(str, row)) or "none"
        raise DataError(
            f"prompt template field '{missing[0]}' is not a column; columns: {available}"
        )
    return template.format_map(row)


def demonstrations(
    train_rows: Sequence[Any] | int,
    k: int,
    *,
    seed: Seed,
    exclude_index: int | None = None,
) -> list[int]:
    """Indices of k seeded demonstrations from the training split.

    A permutation of the split is drawn from ``seed`` alone, and its first k indices other than
    ``exclude_index`` are returned: the same seed gives every query the same demonstrations,
    except that a query drawn from the training split itself (``exclude_index``) gets the next
    one in place of itself. For demonstrations that vary per query, put the query's index in the
    seed (a sequence of ints such as ``[seed, i]`` is accepted, as NumPy's SeedSequence).

    Args:
        train_rows: the training split's rows, or their number.
        k: how many demonstrations (0 gives none).
        seed: an int or a sequence of ints.
        exclude_index: index of the evaluated example in the training split, if it is there.

    Returns:
        k distinct indices into ``train_rows``, in presentation order.

    Raises:
        ConfigError: k is negative.
        DataError: the split has fewer than k examples besides the excluded one.
    """
    count = train_rows if isinstance(train_rows, int) else len(train_rows)
    if k < 0:
        raise ConfigError(f"the number of demonstrations must be >= 0, got {k}")
    available = count - (1 if exclude_index is not None and 0 <= exclude_index < count else 0)
    if k > available:
        raise DataError(
            f"{k} demonstrations asked for, but the training split has only {available} "
            "examples besides the evaluated one"
        )
    order = np.random.default_rng(seed).permutation(count)
    return [int(i) for i in order if i != exclude_index][:k]


def join_demonstrations(
    demos: Sequence[tuple[str, str]], query: str, *, separator: str = "\n\n"
) -> str:
    """``prompt_1 + answer_1 + separator + ... + prompt_k + answer_k + separator + query``.

    Answers are appended as given: a label word such as ``" positive"`` carries its own
    leading space.
    """
    return separator.join([prompt + answer for prompt, answer in demos] + [query])


def few_shot_prompt(
    template: str,
    demo_rows: Sequence[Mapping[str, Any]],
    demo_answers: Sequence[str],
    row: Mapping[str, Any],
    *,
    separator: str = "\n\n",
) -> str:
    """The filled template of each demonstration followed by its answer, then the query's.

    Args:
        template: the task's prompt template.
        demo_rows: k demonstration rows.
        demo_answers: their k answers or label words (already relabelled, if permuted).
        row: the evaluated example.
        separator: what goes between demonstrations and before the query.

    Raises:
        ValueError: demo_rows and demo_answers differ in length.
        DataError: a row lacks a column the template names.
    """
    if len(demo_rows) != len(demo_answers):
        raise ValueError(f"{len(demo_rows)} demonstrations but {len(demo_answers)} answers")
    demos = [(format_prompt(template, d), a) for d, a in zip(demo_rows, demo_answers, strict=True)]
    return join_demonstrations(demos, format_prompt(template, row), separator=separator)


def permuted_label_map(
    label_words: Sequence[str], seed: Seed, *, derangement: bool = True
) -> list[int]:
    """A seeded relabelling: class i is shown with ``label_words[mapping[i]]``.

    Apply it to demonstrations and gold labels alike (the gold class of an example of class y
    becomes ``mapping[y]``), so the relabelled task is consistent.

    Args:
        label_words: the K label words, in class order.
        seed: an int or a sequence of ints.
        derangement: no class keeps its own word (the default; identity is never returned).
            False draws any permutation, identity included.

    Returns:
        ``mapping``, a permutation of range(K).

    Raises:
        ConfigError: a derangement of fewer than two label words.
    """
    k = len(label_words)
    if derangement and k < 2:
        raise ConfigError(f"relabelling needs at least two label words, got {k}")
    rng = np.random.default_rng(seed)
    while True:  # rejection sampling: uniform over derangements, about e draws on average
        mapping = [int(i) for i in rng.permutation(k)]
        if not derangement or all(m != i for i, m in enumerate(mapping)):
            return mapping
