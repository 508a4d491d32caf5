"""LP-FT: linear probe, then fine-tune everything from that head (Kumar et al., ICLR 2022,
arXiv 2202.10054, "Fine-Tuning can Distort Pretrained Features and Underperform OOD").

Stage 1 is :mod:`shiftlab.finetune.linear_probe` (scikit-learn logistic regression, C chosen on
ID val). Stage 2 trains every weight from that head with the network kept in eval mode
(``use_net_val_mode=True`` in ``AnanyaKumar/transfer_learning``: frozen normalisation
statistics, no dropout) at a lower learning rate than full fine-tuning.

The reference's stage 2 is SGD with momentum 0.9 and no weight decay over a learning-rate sweep,
keeping the best ID val checkpoint (``configs/adaptation/*.yaml``,
``scripts/run_adaptation_experiments.py``). shiftlab's default keeps the optimiser of
``full_ft`` (AdamW, lr 1e-5 against full_ft's 3e-5) so that the two recipes differ only in the
head's start, the lr and the eval mode, but exempts the head from weight decay: the probe's head
is large (features are unit-norm), and AdamW's decay of 0.1 would shrink it, pulling LP-FT
towards plain fine-tuning from a small head. ``optimizer: sgd`` with ``weight_decay: 0`` and
``select: id_val_accuracy`` is the reference's setting (one lr of its sweep).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from shiftlab.finetune.context import RecipeContext
from shiftlab.finetune.full_ft import finetune
from shiftlab.finetune.linear_probe import LinearProbeOptions, probe_pretrained
from shiftlab.models.classifier import Predictor, linear_head
from shiftlab.registry import FINETUNE
from shiftlab.training import TrainOptions
from shiftlab.training.options import FAST
from shiftlab.typed import param


@dataclass
class LPFTOptions(TrainOptions):
    """Stage-2 optimisation (a lower lr than full_ft) and the stage-1 probe sweep."""

    lr: float = param(1e-5, "peak learning rate of stage 2, below full_ft's")
    eval_mode: bool = param(True, "fine-tune with the network in eval mode (use_net_val_mode)")
    decay_head: bool = param(
        False, "apply weight decay to the probe's head too (off: it would shrink the head)"
    )
    probe: LinearProbeOptions = field(
        default_factory=LinearProbeOptions, metadata={"help": "stage-1 probe sweep"}
    )


@FINETUNE.register(
    "lp_ft", options=LPFTOptions, kinds=("encoder",), fast={**FAST, "probe": {"num_c": 3}}
)
def lp_ft(ctx: RecipeContext, cfg: LPFTOptions) -> Iterator[Predictor]:
    """Linear probe, then fine-tune every weight from that head at a lower lr, in eval mode."""
    probe = probe_pretrained(ctx, cfg.probe)
    model, result = finetune(
        ctx,
        linear_head(probe.weight, probe.bias),
        cfg,
        eval_mode=cfg.eval_mode,
        decay_head=cfg.decay_head,
    )
    yield Predictor(ctx.name, "lp_ft", model, params={"probe_C": probe.c}, info=result.selection)
