"""Task-vector negation: subtract what fine-tuning on the forget set adds (Ilharco, Ribeiro,
Wortsman, Gururangan, Schmidt, Hajishirzi, Farhadi, "Editing Models with Task Arithmetic",
ICLR 2023, arXiv 2212.04089).

A reinforced model is the original fine-tuned further on the forget answers; with
``tau = theta_reinforced - theta_original`` the unlearned model is
``theta_original - scale * tau``. Entries of the state dict that are not floating point (integer
buffers) keep the original's values, as the reference skips int64 and uint8 entries.

Follows ``mlfoundations/task_vectors`` src/task_vectors.py (``TaskVector``: ``finetuned -
pretrained``; ``__neg__``; ``apply_to(pretrained, scaling_coef=1.0)``) and, for language models,
MUSE's ``tv`` baseline (``swj0419/muse_bench`` baselines/unlearn.py: ``finetune`` on the forget
set with ``--epochs 5`` and ``--lr 1e-5`` by default, then ``tv_unlearn`` with ``--alpha 1.0`` by
default; its scripts use alpha 5 and 10 epochs on MUSE-News). Other optimisation settings are the
shared LM defaults (TOFU's).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from shiftlab.registry import UNLEARN
from shiftlab.typed import param
from shiftlab.unlearn.base import Data, LMOptions, Unlearner, relative


@dataclass
class TaskVectorOptions(LMOptions):
    """The negation's scale and the reinforcement's optimisation (MUSE tv's defaults)."""

    scale: float = param(
        1.0, "scaling coefficient of the negated task vector (reference 1.0)", within="[0, inf)"
    )
    epochs: int = param(5, "epochs of the reinforced model on the forget set (MUSE --epochs)")
    lr: float = param(1e-5, "learning rate of the reinforced model (MUSE --lr)")


def negate_task_vector(original: nn.Module, reinforced: nn.Module, scale: float) -> nn.Module:
    """A copy of ``original`` with ``theta - scale * (theta_reinforced - theta)`` in every
    floating-point entry of its state dict (others as ``original``'s).

    Args:
        original: the model before reinforcement; not modified.
        reinforced: the same architecture after fine-tuning on the forget set.
        scale: the scaling coefficient (0 gives the original's weights exactly).

    Returns:
        The negated copy, in eval mode, on ``original``'s device.
    """
    result = copy.deepcopy(original)
    finetuned = reinforced.state_dict()
    state = {}
    with torch.no_grad():
        for key, value in original.state_dict().items():
            if torch.is_floating_point(value):
                tau = finetuned[key].to(device=value.device, dtype=value.dtype) - value
                state[key] = value - scale * tau
            else:
                state[key] = value
    result.load_state_dict(state)
    return result.eval()


@UNLEARN.register("task_vector", options=TaskVectorOptions, kinds=("causal_lm",))
class TaskVector(Unlearner):
    """Fine-tune a copy on the forget answers, then negate the task vector it moved along."""

    def uses(self) -> tuple[bool, bool]:
        return True, False

    def unlearn(self, model: nn.Module, forget: Data, retain: Data) -> nn.Module:
        options = relative(self.options, self.original, len(forget))
        reinforced = self.finetune_answers(model, forget, options)
        return negate_task_vector(model, reinforced, self.options.scale).to(self.device)
