"""Prompt templates, seeded demonstrations and relabelling."""

from __future__ import annotations

import pytest

from shiftlab.errors import ConfigError, DataError
from shiftlab.lm.prompts import (
    demonstrations,
    few_shot_prompt,
    format_prompt,
    join_demonstrations,
    permuted_label_map,
    template_fields,
)

TEMPLATE = "Review: {text}\nSentiment:"


def test_format_prompt_fills_columns_and_keeps_literal_braces() -> None:
    row = {"text": "great", "title": "x"}
    assert format_prompt(TEMPLATE, row) == "Review: great\nSentiment:"
    assert format_prompt("{{json}} {title}", row) == "{json} x"
    assert template_fields("{title}: {text} ({title})") == ["title", "text"]


def test_a_missing_column_names_it_and_the_available_ones() -> None:
    with pytest.raises(DataError, match=r"field 'label' is not a column; columns: text, title"):
        format_prompt("{text} -> {label}", {"text": "a", "title": "b"})


def test_malformed_templates_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="malformed"):
        format_prompt("Review: {text", {"text": "a"})
    with pytest.raises(ConfigError, match="must name a column"):
        format_prompt("Review: {}", {"text": "a"})


def test_demonstrations_never_include_the_evaluated_example() -> None:
    rows = [{"text": str(i)} for i in range(12)]
    for seed in range(30):
        for i in range(len(rows)):
            picked = demonstrations(rows, 4, seed=seed, exclude_index=i)
            assert i not in picked
            assert len(set(picked)) == 4 and all(0 <= j < len(rows) for j in picked)
    # the whole split but the evaluated example
    assert sorted(demonstrations(rows, 11, seed=0, exclude_index=5)) == [
        j for j in range(12) if j != 5
    ]


def test_demonstrations_repeat_for_the_same_seed() -> None:
    first = demonstrations(50, 5, seed=7, exclude_index=3)
    assert demonstrations(50, 5, seed=7, exclude_index=3) == first
    assert demonstrations(list(range(50)), 5, seed=7, exclude_index=3) == first
    assert demonstrations(50, 5, seed=[7, 3], exclude_index=3) == demonstrations(
        50, 5, seed=[7, 3], exclude_index=3
    )
    assert len({tuple(demonstrations(50, 5, seed=s)) for s in range(10)}) > 1
    # one seed, one set of demonstrations, except where the query is one of them
    shared = demonstrations(50, 5, seed=7)
    assert demonstrations(50, 5, seed=7, exclude_index=49 if 49 not in shared else 48) == shared
    replaced = demonstrations(50, 5, seed=7, exclude_index=shared[0])
    assert replaced[:4] == shared[1:] and replaced[4] not in shared


def test_too_many_demonstrations_is_a_data_error() -> None:
    assert demonstrations(3, 0, seed=0, exclude_index=0) == []
    with pytest.raises(DataError, match="only 2 examples"):
        demonstrations(3, 3, seed=0, exclude_index=1)
    with pytest.raises(ConfigError):
        demonstrations(3, -1, seed=0)


def test_few_shot_prompt_puts_each_answer_after_its_demonstration() -> None:
    demos = [{"text": "loved it"}, {"text": "awful"}]
    prompt = few_shot_prompt(TEMPLATE, demos, [" positive", " negative"], {"text": "fine"})
    assert prompt == (
        "Review: loved it\nSentiment: positive\n\n"
        "Review: awful\nSentiment: negative\n\n"
        "Review: fine\nSentiment:"
    )
    assert few_shot_prompt(TEMPLATE, [], [], {"text": "x"}) == "Review: x\nSentiment:"
    assert join_demonstrations([("a:", " 1")], "b:", separator="\n") == "a: 1\nb:"
    with pytest.raises(ValueError, match="2 demonstrations but 1 answers"):
        few_shot_prompt(TEMPLATE, demos, [" positive"], {"text": "x"})


def test_permuted_label_map_is_a_seeded_derangement() -> None:
    assert permuted_label_map([" positive", " negative"], seed=0) == [1, 0]
    words = [f" w{i}" for i in range(5)]
    maps = [permuted_label_map(words, seed=s) for s in range(40)]
    for mapping in maps:
        assert sorted(mapping) == list(range(5))
        assert all(m != i for i, m in enumerate(mapping))
    assert permuted_label_map(words, seed=3) == maps[3]
    assert len({tuple(m) for m in maps}) > 5
    with pytest.raises(ConfigError, match="at least two"):
        permuted_label_map([" yes"], seed=0)


def test_plain_permutations_may_be_the_identity() -> None:
    maps = {tuple(permuted_label_map(["a", "b"], seed=s, derangement=False)) for s in range(20)}
    assert maps == {(0, 1), (1, 0)}
    assert permuted_label_map(["a"], seed=0, derangement=False) == [0]
