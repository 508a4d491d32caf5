"""What test-time adaptation may change: normalisation layers, and nothing else."""

from __future__ import annotations

from torch import nn

from shiftlab.errors import AdaptError

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
NORMS = (*BATCH_NORMS, nn.LayerNorm, nn.GroupNorm)


def use_batch_statistics(model: nn.Module) -> int:
    """Make every BatchNorm layer normalise with the statistics of the batch it sees.

    As TENT's ``configure_model``: running statistics are dropped and no longer tracked, so
    train and eval mode alike use test-batch statistics. LayerNorm and GroupNorm already
    normalise each example by itself. Returns the number of BatchNorm layers changed.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, BATCH_NORMS):
            module.track_running_stats = False
            module.running_mean = None
            module.running_var = None
            count += 1
    return count


def norm_affine_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Freeze every parameter except the affine scale and shift of normalisation layers
    (BatchNorm, LayerNorm, GroupNorm), and return those: TENT's ``collect_params``, extended
    from BatchNorm2d to every normalisation layer so transformers adapt too.

    Raises:
        AdaptError: the model has no normalisation layer with affine parameters.
    """
    model.requires_grad_(False)
    params: list[nn.Parameter] = []
    for module in model.modules():
        if isinstance(module, NORMS):
            for name in ("weight", "bias"):
                param = getattr(module, name, None)
                if isinstance(param, nn.Parameter):
                    param.requires_grad_(True)
                    params.append(param)
    if not params:
        raise AdaptError(
            f"{type(model).__name__} has no normalisation layer with affine parameters "
            "(BatchNorm, LayerNorm or GroupNorm) for test-time adaptation to update"
        )
    return params
