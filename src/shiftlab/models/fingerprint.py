"""Content hashes of module weights: the feature cache's key for a featurizer."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def weights_fingerprint(module: nn.Module) -> str:
    """Hash every parameter and buffer (name, dtype, shape, bytes) plus the module's cache tag.

    Two featurizers share a fingerprint exactly when they hold the same weights and settings,
    so a WiSE-FT model at alpha 0 reuses the pretrained model's cached features.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(getattr(module, "cache_tag", type(module).__name__)).encode())
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
