"""The unlearning registry and the data it takes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from shiftlab.errors import ConfigError, DataError
from shiftlab.typed import build
from shiftlab.unlearn import UNLEARN, Data

CLASSIFIER = {"finetune_retain", "gradient_ascent", "neggrad_plus", "scrub", "ssd"}
LANGUAGE = {"gradient_ascent", "grad_diff", "npo", "simnpo", "rmu", "whp", "task_vector"}


def test_every_method_is_registered_with_its_paper_and_kinds() -> None:
    assert set(UNLEARN.names()) == CLASSIFIER | LANGUAGE
    for entry in UNLEARN:
        assert entry.citation, f"{entry.name}'s module cites no arXiv id"
        kinds = {
            k
            for k, names in (("encoder", CLASSIFIER), ("causal_lm", LANGUAGE))
            if entry.name in names
        }
        assert entry.requires == kinds
        options = build(entry.config, {}, entry.name)  # every option has a default
        assert dataclasses.is_dataclass(options)


def test_options_are_typed_and_checked() -> None:
    options = build(UNLEARN["gradient_ascent"].config, {"causal_lm": {"lr": "2e-5"}}, "ga")
    assert options.causal_lm.lr == 2e-5 and options.classifier.lr == 1e-4
    with pytest.raises(ConfigError, match="did you mean 'beta'"):
        build(UNLEARN["npo"].config, {"betta": 0.2}, "npo")
    with pytest.raises(ConfigError, match="alpha must be in"):
        build(UNLEARN["neggrad_plus"].config, {"alpha": 2}, "neggrad_plus")


def test_data_holds_one_kind_of_examples() -> None:
    classifier = Data(inputs=["a", "b"], labels=[0, 1])
    assert classifier.kind == "classifier" and len(classifier) == 2
    assert classifier.labels.dtype == np.int64
    language = Data(prompts=["Q:"], answers=[" a"])
    assert language.kind == "causal_lm" and len(language) == 1
    assert language.texts([0]) == ["Q: a"]
    with pytest.raises(DataError, match="either inputs and labels"):
        Data()
    with pytest.raises(DataError, match="either inputs and labels"):
        Data(inputs=["a"], labels=[0], prompts=["Q:"], answers=[" a"])
    with pytest.raises(DataError, match="2 inputs but 1 labels"):
        Data(inputs=["a", "b"], labels=[0])
    with pytest.raises(DataError, match="1 prompts but 2 answers"):
        Data(prompts=["Q:"], answers=[" a", " b"])
