"""WiSE-FT: weight-space ensembles of zero-shot and fine-tuned models (Wortsman et al., CVPR 2022,
arXiv 2109.01903).

Follows ``mlfoundations/wise-ft`` (``src/wise_ft.py``, ``_merge``): every entry of the state
dict, the head included, is interpolated::

    theta_alpha = (1 - alpha) * theta_0 + alpha * theta_1

where theta_0 is the pretrained featurizer with its zero-shot head (or the ``base`` predictor)
and theta_1 the ``finetuned`` predictor. Each alpha of the grid (default 0, 0.1, ..., 1) is a
predictor named ``<name>[alpha=A]``. Alpha 0 is theta_0 and alpha 1 is theta_1, exactly. With no
zero-shot head (a backbone without a text side), only the featurizer is interpolated and the
fine-tuned head kept, as the authors advise for new heads (wise-ft issue #8). Nothing is trained.

Two more predictors are labelled by how their alpha was chosen: ``[val_selected]``, the grid's
alpha with the best ID val accuracy (no OOD data is used), and ``[fixed_0.5]``, the alpha the
paper recommends when nothing is known of the shift.

On a causal language model theta_0 is the pretrained model; for a fully fine-tuned one every
weight is interpolated, and for a LoRA one the merged low-rank update is scaled by alpha (alpha 0
the pretrained model, 1 the adapted one).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from shiftlab.errors import ConfigError
from shiftlab.finetune.context import RecipeContext
from shiftlab.models.classifier import Classifier, Predictor
from shiftlab.registry import FINETUNE
from shiftlab.typed import param, ref

DEFAULT_ALPHAS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


@dataclass
class WiseFTOptions:
    """Which models to interpolate, and at which mixing coefficients."""

    finetuned: str = ref("full_ft", "the fine-tuned predictor (alpha = 1)")
    base: str | None = ref(
        None, "the alpha = 0 predictor; default: pretrained featurizer + zero-shot head"
    )
    alphas: list[float] = param(
        DEFAULT_ALPHAS,
        "mixing coefficients; each is a predictor",
        within="[0, 1]",
        nonempty=True,
        unique=True,
    )
    select: bool = param(
        True, "also add [val_selected] (alpha with the best ID val accuracy) and [fixed_0.5]"
    )

    def __post_init__(self) -> None:
        if not self.alphas or any(not 0 <= a <= 1 for a in self.alphas):
            raise ConfigError(f"wise_ft alphas must be in [0, 1], got {self.alphas}")


def interpolate(
    theta_0: dict[str, torch.Tensor], theta_1: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * theta_0 + alpha * theta_1`` per floating-point key; others from theta_1.

    At alpha 0 and 1 the end point is returned as is (bit for bit, so cached features match).
    """
    if theta_0.keys() != theta_1.keys():
        missing = sorted(theta_0.keys() ^ theta_1.keys())[:3]
        raise ConfigError(f"cannot interpolate models with different weights (e.g. {missing})")
    if alpha == 0:
        return {key: theta_0[key].to(value.device) for key, value in theta_1.items()}
    if alpha == 1:
        return dict(theta_1)
    return {
        key: (1 - alpha) * theta_0[key].to(value.device) + alpha * value
        if value.is_floating_point()
        else value
        for key, value in theta_1.items()
    }


def alpha_label(alpha: float) -> str:
    """``0.5`` -> ``"0.5"``, ``1.0`` -> ``"1"``."""
    return f"{alpha:g}"


def interpolated_model(base: nn.Module, finetuned: nn.Module, alpha: float) -> nn.Module:
    """A new model with weights interpolated between ``base`` and ``finetuned``."""
    model = copy.deepcopy(finetuned)
    model.load_state_dict(interpolate(base.state_dict(), finetuned.state_dict(), alpha))
    return model.eval()


def endpoint_0(ctx: RecipeContext, cfg: WiseFTOptions, finetuned: Classifier) -> Classifier:
    """Theta_0: the base predictor, else the pretrained model with a zero-shot head."""
    if cfg.base is not None:
        return ctx.predictor(cfg.base).model
    if ctx.backbone.has_text_side:
        head: nn.Linear = ctx.zero_shot_head()
    else:
        head = finetuned.head  # no zero-shot head: interpolate the featurizer only
    return ctx.head_only(head)


def lm_interpolation(ctx: RecipeContext, cfg: WiseFTOptions, finetuned: nn.Module):
    """For a language model: ``alpha -> model``, the base (pretrained, or ``base``) moved alpha
    of the way to the fine-tuned one; a LoRA model's merged update is scaled by alpha."""
    from shiftlab.lm.lora import apply_delta, merged_delta

    base = ctx.predictor(cfg.base).model if cfg.base is not None else ctx.backbone.featurizer
    if hasattr(finetuned.model, "peft_config"):  # LoRA: base + alpha * (B A) * scaling
        delta = merged_delta(finetuned.model)

        def make(alpha: float) -> nn.Module:
            model = copy.deepcopy(base)
            if alpha != 0:
                apply_delta(model.model, delta, alpha, inplace=True)
            return model.eval()

        return make
    return lambda alpha: interpolated_model(base, finetuned, alpha)


@FINETUNE.register("wise_ft", options=WiseFTOptions)
def wise_ft(ctx: RecipeContext, cfg: WiseFTOptions) -> Iterator[Predictor]:
    """Interpolate all weights between zero-shot and fine-tuned models over an alpha grid."""
    finetuned = ctx.predictor(cfg.finetuned).model
    if ctx.backbone.kind == "causal_lm":
        make = lm_interpolation(ctx, cfg, finetuned)
    else:
        base = endpoint_0(ctx, cfg, finetuned)
        make = lambda alpha: interpolated_model(base, finetuned, alpha)  # noqa: E731
    val_accuracy: dict[float, float] = {}
    for alpha in cfg.alphas:
        model = make(alpha)
        if cfg.select:
            val_accuracy[alpha] = ctx.accuracy(model, ctx.benchmark.val)
        yield Predictor(
            f"{ctx.name}[alpha={alpha_label(alpha)}]",
            "wise_ft",
            model,
            params={"alpha": alpha, "finetuned": cfg.finetuned},
            save=False,
        )
    if not cfg.select:
        return
    # Ties go to the first alpha of the grid (by default the one nearest the zero-shot model).
    chosen = max(cfg.alphas, key=lambda a: val_accuracy[a])
    for label, alpha, rule in (
        ("val_selected", chosen, "id_val_accuracy"),
        ("fixed_0.5", 0.5, "paper_default"),
    ):
        yield Predictor(
            f"{ctx.name}[{label}]",
            "wise_ft",
            make(alpha),
            params={"alpha": alpha, "finetuned": cfg.finetuned, "selection": rule},
            save=False,
        )
