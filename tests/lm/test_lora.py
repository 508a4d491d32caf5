"""LoRA through PEFT: merged delta, merge == unmerged adapter, WiSE-FT end points."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from tiny_lm import tiny_llama

from shiftlab.errors import ConfigError
from shiftlab.lm.lora import add_lora, apply_delta, merged_delta

VOCAB = 128
IDS = torch.tensor([[5, 17, 99, 3, 42, 7], [1, 2, 3, 4, 5, 6]])


def logits(model: Any) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.fixture()
def base() -> torch.nn.Module:
    return tiny_llama(VOCAB, seed=3)


@pytest.fixture()
def adapted(base: torch.nn.Module) -> Any:
    """A LoRA adapter with random B (PEFT starts B at zero), in eval mode (no dropout)."""
    model = add_lora(copy.deepcopy(base), rank=4, alpha=8)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.3)
    return model.eval()


def test_default_targets_for_llama_and_only_the_adapter_trains(adapted: Any) -> None:
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    targets = {n.split(".")[-4] for n in trainable}  # ...q_proj.lora_A.default.weight
    assert targets == {"q_proj", "v_proj"}


def test_delta_is_b_times_a_times_scaling(adapted: Any, base: torch.nn.Module) -> None:
    delta = merged_delta(adapted)
    assert len(delta) == 2 * base.config.num_hidden_layers
    params = dict(base.named_parameters())
    for name, value in delta.items():
        assert params[name].shape == value.shape
        layer = adapted.get_submodule("base_model.model." + name.removesuffix(".weight"))
        expected = layer.lora_B["default"].weight @ layer.lora_A["default"].weight * (8 / 4)
        torch.testing.assert_close(value, expected)


def test_merge_equals_the_unmerged_adapter(adapted: Any, base: torch.nn.Module) -> None:
    unmerged = logits(adapted)
    assert not torch.allclose(unmerged, logits(base), atol=1e-3)  # the adapter does something
    merged = apply_delta(base, merged_delta(adapted), 1.0)
    torch.testing.assert_close(logits(merged), unmerged, atol=1e-4, rtol=1e-4)
    peft_merged = copy.deepcopy(adapted).merge_and_unload()
    torch.testing.assert_close(logits(peft_merged), unmerged, atol=1e-4, rtol=1e-4)


def test_wise_ft_end_points_and_midpoint(adapted: Any, base: torch.nn.Module) -> None:
    delta = merged_delta(adapted)
    before = {n: p.clone() for n, p in base.named_parameters()}
    torch.testing.assert_close(logits(apply_delta(base, delta, 0.0)), logits(base), atol=0, rtol=0)
    half = apply_delta(base, delta, 0.5)
    name = next(iter(delta))
    torch.testing.assert_close(
        half.get_parameter(name), before[name] + 0.5 * delta[name], atol=1e-6, rtol=0
    )
    for n, p in base.named_parameters():  # the base model is never changed
        assert torch.equal(p, before[n])


def test_a_delta_for_another_model_is_refused(adapted: Any, base: torch.nn.Module) -> None:
    delta = merged_delta(adapted)
    with pytest.raises(ConfigError, match="lacks"):
        apply_delta(base, {"nope.weight": next(iter(delta.values()))}, 1.0)
    name, value = next(iter(delta.items()))
    with pytest.raises(ConfigError, match="shape"):
        apply_delta(base, {name: value[:, :3]}, 1.0)
    with pytest.raises(ConfigError, match="rank"):
        add_lora(copy.deepcopy(base), rank=0)
