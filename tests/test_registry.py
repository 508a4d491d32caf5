import pytest

from shiftlab.errors import ConfigError
from shiftlab.registry import BACKBONES, DATASETS, FINETUNE, Registry


def test_duplicate_name_is_refused():
    registry = Registry("thing")
    registry.register("a")(object())
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(object())


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="unknown recipe 'wiseft'; did you mean 'wise_ft'"):
        FINETUNE["wiseft"]


def test_unknown_name_without_close_match_lists_known_names():
    with pytest.raises(ConfigError) as info:
        FINETUNE["xyzzy"]
    assert "did you mean" not in str(info.value)
    assert "zero_shot" in str(info.value)


def test_core_entries_are_registered():
    assert {"zero_shot", "linear_probe", "full_ft", "lp_ft", "flyp", "wise_ft"} <= set(
        FINETUNE.names()
    )
    assert {"vader", "sentiment_sentences", "csv", "jsonl"} <= set(DATASETS.names())
    assert "minilm" in BACKBONES


def test_every_entry_has_a_summary_and_an_options_dataclass():
    for registry in (FINETUNE, DATASETS):
        for entry in registry:
            assert entry.summary, entry.name
            assert entry.options is not None, entry.name
