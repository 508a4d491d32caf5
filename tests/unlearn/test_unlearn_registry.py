"""The unlearning registry and the data it takes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from shiftlab.errors import ConfigError, DataError
from shiftlab.typed import build
from shiftlab.unlearn import UNLEARN, Data


def test_every_method_cites_its_paper_and_declares_its_kinds() -> None:
    for entry in UNLEARN:
        assert entry.citation, f"{entry.name}'s module cites no arXiv id"
        assert entry.kinds and entry.kinds <= {"encoder", "causal_lm"}
        options = build(entry.options, {}, entry.name)  # every option has a default
        assert dataclasses.is_dataclass(options)


def test_options_are_typed_and_checked() -> None:
    options = build(UNLEARN["gradient_ascent"].options, {"causal_lm": {"lr": "2e-5"}}, "ga")
    assert options.causal_lm.lr == 2e-5 and options.classifier.lr == 1e-4
    with pytest.raises(ConfigError, match="did you mean 'beta'"):
        build(UNLEARN["npo"].options, {"betta": 0.2}, "npo")
    with pytest.raises(ConfigError, match=r"alpha must be in \[0, 1\]"):
        build(UNLEARN["neggrad_plus"].options, {"alpha": 2}, "neggrad_plus")


def test_data_holds_one_kind_of_examples() -> None:
    classifier = Data(inputs=["a", "b"], labels=[0, 1])
    assert classifier.kind == "encoder" and len(classifier) == 2
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
