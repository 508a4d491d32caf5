"""LoRA through PEFT, its merged weight delta, and WiSE-FT along that delta.

LoRA (Hu et al., ICLR 2022, arXiv 2106.09685) learns, for each target weight W (out, in), a
low-rank update ``delta = B @ A * scaling`` with A (r, in), B (out, r) and
``scaling = alpha / r``; B starts at zero, so the adapted model starts as the base model. The
adapter is added with PEFT (``huggingface/peft``, ``get_peft_model``); PEFT's default target
modules for the architecture are used unless given (``q_proj`` and ``v_proj`` for Llama, as in
the paper).

``merged_delta`` reads every target weight's delta (PEFT's ``get_delta_weight``, which handles
``fan_in_fan_out`` layers), and ``apply_delta`` adds ``scale * delta`` to a copy of the base
model. Because the fine-tuned model is exactly base + delta, ``apply_delta(base, delta, alpha)``
is WiSE-FT's weight-space interpolation ``(1 - alpha) * theta_0 + alpha * theta_1`` (Wortsman et
al., CVPR 2022, arXiv 2109.01903; ``mlfoundations/wise-ft`` ``_merge``): alpha 0 is the base and
alpha 1 the merged fine-tuned model.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from shiftlab._optional import require
from shiftlab.errors import ConfigError


def add_lora(
    model: nn.Module,
    *,
    rank: int = 8,
    alpha: float = 16,
    dropout: float = 0.05,
    target_modules: Sequence[str] | None = None,
) -> Any:
    """Wrap a causal LM with a trainable LoRA adapter (the base weights are frozen).

    The model is modified in place (PEFT swaps its target layers); deep-copy it first if the
    base model is needed too.

    Args:
        model: a causal LM.
        rank: r, the rank of each update.
        alpha: LoRA alpha; the update is scaled by alpha / r.
        dropout: dropout on the adapter's input.
        target_modules: names of the layers to adapt (None: PEFT's default for the
            architecture, ``["q_proj", "v_proj"]`` for Llama).

    Returns:
        A ``peft.PeftModel``; only the adapter's A and B matrices require gradients.

    Raises:
        ConfigError: rank below 1, or no default target modules for this architecture.
        MissingExtraError: ``peft`` is not installed.
    """
    peft = require("peft", "lm")
    if rank < 1:
        raise ConfigError(f"LoRA rank must be at least 1, got {rank}")
    config = peft.LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules) if target_modules is not None else None,
        task_type="CAUSAL_LM",
    )
    try:
        with warnings.catch_warnings():  # PEFT calls an API transformers 5 deprecates
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            return peft.get_peft_model(model, config)
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "ValueError"
        raise ConfigError(f"cannot add LoRA: {first} (set target_modules)") from None


def _lora_layers(peft_model: Any) -> tuple[str, list[tuple[str, Any]]]:
    """(active adapter name, [(module name in the base model, LoRA layer)])."""
    require("peft", "lm")
    from peft.tuners.lora import LoraLayer

    adapter = peft_model.active_adapter
    adapter = adapter[0] if isinstance(adapter, (list, tuple)) else adapter
    base = peft_model.get_base_model()
    layers = [
        (name, module)
        for name, module in base.named_modules()
        if isinstance(module, LoraLayer)
        and (adapter in module.lora_A or adapter in getattr(module, "lora_embedding_A", {}))
    ]
    return adapter, layers


def merged_delta(peft_model: Any) -> dict[str, torch.Tensor]:
    """The weight update of the active LoRA adapter, per target weight.

    Args:
        peft_model: a ``peft.PeftModel`` with a LoRA adapter (merged or not).

    Returns:
        ``{base parameter name: delta}``, each delta ``B @ A * scaling`` of the weight's shape
        (out, in), detached, named as in the unwrapped model's ``named_parameters()``
        (``model.layers.0.self_attn.q_proj.weight``).

    Raises:
        ConfigError: the adapter is not plain LoRA (DoRA's update is not B @ A).
    """
    adapter, layers = _lora_layers(peft_model)
    delta = {}
    for name, module in layers:
        if getattr(module, "use_dora", {}).get(adapter, False):
            raise ConfigError("merged_delta supports plain LoRA, not DoRA (use_dora=True)")
        with torch.no_grad():
            delta[f"{name}.weight"] = module.get_delta_weight(adapter).detach().clone()
    return delta


def apply_delta(
    base_model: nn.Module, delta: dict[str, torch.Tensor], scale: float, *, inplace: bool = False
) -> nn.Module:
    """``base + scale * delta`` for every weight the delta names.

    Args:
        base_model: the model the adapter was trained on, without the adapter.
        delta: from :func:`merged_delta`.
        scale: 0 gives the base model, 1 the merged fine-tuned one (WiSE-FT's alpha).
        inplace: change ``base_model`` itself instead of a deep copy.

    Returns:
        The interpolated model.

    Raises:
        ConfigError: the delta names a weight the model lacks, or one of another shape.
    """
    model = base_model if inplace else copy.deepcopy(base_model)
    params = dict(model.named_parameters())
    for name, update in delta.items():
        if name not in params:
            raise ConfigError(f"the LoRA delta names weight '{name}', which the model lacks")
        if params[name].shape != update.shape:
            raise ConfigError(
                f"the LoRA delta for '{name}' has shape {tuple(update.shape)}, "
                f"the model's weight {tuple(params[name].shape)}"
            )
    with torch.no_grad():
        for name, update in delta.items():
            params[name].add_(update.to(params[name]), alpha=scale)
    return model
