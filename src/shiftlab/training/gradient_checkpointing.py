"""Gradient (activation) checkpointing of the Hugging Face models inside a trained module: less
memory for a second forward pass in the backward one (``gradient_checkpointing: true``)."""

from __future__ import annotations

from torch import nn

from shiftlab.errors import ConfigError


def enable_gradient_checkpointing(model: nn.Module, description: str) -> list[nn.Module]:
    """Turn on gradient (activation) checkpointing in every Hugging Face model inside ``model``
    (the outermost ones), non-reentrant; return those it turned on (:func:`checkpointing_off`
    turns them off again).

    Raises:
        ConfigError: ``model`` holds no Hugging Face model that supports it.
    """
    found = [
        m
        for m in model.modules()
        if getattr(m, "supports_gradient_checkpointing", False)
        and callable(
            getattr(m, "activation_checkpointing_enable", None)
            or getattr(m, "gradient_checkpointing_enable", None)
        )
    ]
    outer = [m for m in found if not any(m is not o and _contains(o, m) for o in found)]
    if not outer:
        raise ConfigError(
            f"{description}: gradient_checkpointing needs a Hugging Face encoder that supports "
            f"it in the trained model ({type(model).__name__} has none); set it to false"
        )
    enabled = []
    for module in outer:
        if hasattr(module, "activation_checkpointing_enable"):  # transformers >= 5
            if not module.is_activation_checkpointing:
                module.activation_checkpointing_enable({"use_reentrant": False})
                enabled.append(module)
        elif not module.is_gradient_checkpointing:
            module.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
            enabled.append(module)
    return enabled


def checkpointing_off(modules: list[nn.Module]) -> None:
    for module in modules:
        if hasattr(module, "activation_checkpointing_disable"):
            module.activation_checkpointing_disable()
        else:
            module.gradient_checkpointing_disable()


def _contains(outer: nn.Module, inner: nn.Module) -> bool:
    return any(m is inner for m in outer.modules())
