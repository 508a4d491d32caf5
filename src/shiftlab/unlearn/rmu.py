"""RMU (Representation Misdirection for Unlearning): steer one layer's activations on forget
text towards a fixed random vector, and keep its activations on retain text where the frozen
model has them (Li et al. 2024, "The WMDP Benchmark", arXiv 2403.03218).

With ``h`` the output of decoder layer ``layer`` (B, T, H), ``u`` a random unit vector (uniform
entries, normalised) and ``c`` the steering coefficient::

    loss = MSE(h_theta(forget), c * u) + alpha * MSE(h_theta(retain), h_frozen(retain))

Only the ``params`` of layers ``update_layers`` train. Each document is a prompt + answer,
tokenised with the BOS and cut on the right to ``max_length`` tokens; the i-th forget batch pairs
with the i-th retain batch (both sets read in order, the retain set cycled).

Follows ``centerforaisafety/wmdp`` rmu/unlearn.py (``run_rmu``: ``random_vector =
torch.rand(1, 1, hidden_size)``, ``control_vec = random_vector / norm * steering_coeff``,
``unlearn_loss = mse_loss(updated_forget_activations, control_vec)``, ``retain_loss *= alpha``,
AdamW over ``get_params(model, layer_ids, param_ids)``, one pass of at most ``max_num_batches``;
``get_args``: ``alpha 100``, ``steering_coeffs 20``, ``lr 5e-5``, ``batch_size 4``,
``max_num_batches 80``, ``layer_id 7``, ``layer_ids 5,6,7``, ``param_ids 6``; ``max_length
512``), read through forks of it (the original is not in the searchable index), whose
``AdamW`` is ``transformers.AdamW`` (no weight decay by default). Deviations: padding positions
are left out of both MSEs (the reference averages over them); ``param_ids 6`` (parameter 6,
0-based, of a Llama/Mistral decoder layer) is named here: ``mlp.down_proj.weight``.

Scaling to smaller models: the reference steers layer 7 of zephyr-7b's 32 (and updates layers
5-7). ``layer: null`` picks ``round(7 / 32 * depth)`` (SmolLM2-135M's 30 layers: layer 7, as
the reference; a 2-layer test model: layer 0) and ``update_layers: null`` the layer and the two
before it. The steering coefficient is an absolute activation norm, kept at the reference's 20;
the WMDP README's zephyr run uses 6.5 (with alpha 1200), so re-tune ``steering_coeff`` when the
model's activation norms differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from shiftlab.errors import ConfigError
from shiftlab.lm.tokens import text_batch
from shiftlab.registry import UNLEARN
from shiftlab.training import TrainOptions
from shiftlab.typed import param
from shiftlab.unlearn.base import Batch, Cycle, Data, Unlearner

REFERENCE_LAYER, REFERENCE_DEPTH = 7, 32  # zephyr-7b's steered layer and depth


@dataclass
class RMUOptions(TrainOptions):
    """RMU's layer, steering and retain weight, and the reference's optimisation."""

    steering_coeff: float = param(
        20.0, "c, the norm of the random target (reference default)", within="(0, inf)"
    )
    alpha: float = param(
        100.0, "weight of the retain activation MSE (reference default)", within="[0, inf)"
    )
    layer: int | None = param(
        None,
        "decoder layer whose output is steered; null: round(7 / 32 * depth)",
        within="[0, inf)",
    )
    update_layers: list[int] | None = param(
        None, "decoder layers whose params train; null: layer - 2 .. layer", within="[0, inf)"
    )
    params: list[str] = param(
        ["mlp.down_proj.weight"], "parameter names within each updated layer (param_ids 6)"
    )
    max_batches: int = param(
        80, "forget batches per epoch at most (max_num_batches)", within="[1, inf)"
    )
    max_length: int = param(
        512, "tokens per document, cut on the right (reference: 512)", within="[2, inf)"
    )
    epochs: int = param(1, "passes (reference: one)")
    lr: float = param(5e-5, "learning rate (reference)")
    weight_decay: float = param(0.0, "AdamW weight decay (transformers.AdamW default 0)")
    batch_size: int = param(4, "documents per step (reference)")
    warmup_steps: int = param(0, "no warmup (reference)")
    grad_clip: float | None = param(None, "no clipping (reference)")
    schedule: Literal["cosine", "constant"] = param("constant", "lr after warmup (constant)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_batches < 1 or self.max_length < 1:
            raise ConfigError("rmu needs max_batches >= 1 and max_length >= 1")


def default_layer(depth: int) -> int:
    """The reference's layer 7 of 32, scaled to ``depth`` decoder layers."""
    return min(depth - 1, round(REFERENCE_LAYER / REFERENCE_DEPTH * depth))


def decoder_layers(lm: nn.Module) -> nn.ModuleList:
    """The decoder layers of a Hugging Face causal LM (``lm.model.layers`` for Llama-like
    models, also under a PEFT wrapper).

    Raises:
        ConfigError: no list of decoder layers is found.
    """
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if isinstance(layers, nn.ModuleList):
        return layers
    depth = getattr(getattr(lm, "config", None), "num_hidden_layers", None)
    for _, module in lm.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == depth:
            return module
    raise ConfigError(f"rmu: no decoder layers found in {type(lm).__name__}")


def control_vector(hidden: int, coeff: float, seed: int) -> torch.Tensor:
    """``c * u`` with ``u = r / ||r||``, ``r`` uniform in [0, 1)^H: shape (1, 1, H)."""
    generator = torch.Generator().manual_seed(seed)
    vector = torch.rand(1, 1, hidden, generator=generator)
    return vector / vector.norm() * coeff


def masked_mse(activations: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over hidden units and real (unpadded) tokens.

    Args:
        activations: (B, T, H).
        target: broadcastable to (B, T, H).
        mask: (B, T), 1 on real tokens.
    """
    per_token = ((activations - target) ** 2).mean(dim=-1)
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


class _Capture:
    """Keeps the output of one module's latest forward pass."""

    def __init__(self, module: nn.Module) -> None:
        self.output: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: Any, output: Any) -> None:
        self.output = output[0] if isinstance(output, tuple) else output

    def run(self, lm: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        lm(**batch)
        assert self.output is not None
        return self.output


@UNLEARN.register("rmu", options=RMUOptions, kinds=("causal_lm",))
class RMU(Unlearner):
    """Train the chosen layers of a copy with RMU's steering and retain losses (a frozen copy
    gives the retain targets; every parameter's requires_grad is restored after)."""

    def unlearn(self, model: nn.Module, forget: Data, retain: Data) -> nn.Module:
        options, device = self.options, self.device
        frozen = self.frozen(model)
        student = self.copy(model)
        layers, frozen_layers = decoder_layers(student.model), decoder_layers(frozen.model)
        depth = len(layers)
        layer = default_layer(depth) if options.layer is None else options.layer
        update = options.update_layers
        update = list(range(max(0, layer - 2), layer + 1)) if update is None else update
        if not all(0 <= i < depth for i in [layer, *update]):
            raise ConfigError(f"rmu: layers must be in 0..{depth - 1}, got {layer} and {update}")
        chosen = [
            p for i in update for name, p in layers[i].named_parameters() if name in options.params
        ]
        if not chosen:
            names = [name for name, _ in layers[update[0]].named_parameters()]
            raise ConfigError(f"rmu: no parameter named {options.params} in a layer ({names})")
        flags = [(p, p.requires_grad) for p in student.parameters()]
        for p, _ in flags:
            p.requires_grad_(False)
        for p in chosen:
            p.requires_grad_(True)

        hidden = int(student.model.config.hidden_size)
        dtype = next(student.model.parameters()).dtype
        target = control_vector(hidden, options.steering_coeff, self.seed).to(device, dtype)
        steered, reference = _Capture(layers[layer]), _Capture(frozen_layers[layer])
        cycle = Cycle(len(retain), rng=None)
        tokenizer = student.tokenizer

        def documents(data: Data, index: np.ndarray) -> dict[str, torch.Tensor]:
            batch = text_batch(tokenizer, data.texts(index), options.max_length)
            return {k: v.to(device) for k, v in batch.items()}

        def loss_fn(batch: Batch) -> torch.Tensor:
            forget_batch = documents(forget, batch.index)
            forget_acts = steered.run(student.model, forget_batch)
            forget_loss = masked_mse(forget_acts, target, forget_batch["attention_mask"])
            retain_batch = documents(retain, cycle.next(len(batch.index)))
            retain_acts = steered.run(student.model, retain_batch)
            with torch.no_grad():
                frozen_acts = reference.run(frozen.model, retain_batch)
            retain_loss = masked_mse(retain_acts, frozen_acts, retain_batch["attention_mask"])
            return forget_loss + options.alpha * retain_loss

        order = np.arange(min(len(forget), options.max_batches * options.batch_size))
        try:
            self.train(
                student,
                loss_fn,
                options,
                len(forget),
                plan=[order.copy() for _ in range(options.epochs)],
                params=chosen,
                stateful=[cycle],
            )
        finally:
            steered.handle.remove()
            reference.handle.remove()
            for p, flag in flags:
                p.requires_grad_(flag)
        return student.eval()
