"""Image corruptions at five severities, after MNIST-C (Mu and Gilmer 2019, arXiv 1906.02337)
and CIFAR-10-C (Hendrycks and Dietterich 2019, arXiv 1903.12261).

Every corruption maps a float batch (N, C, H, W) in [0, 1] to a batch of the same shape, clipped
to [0, 1]. Randomness (noise, angles, directions) comes from a generator seeded by the run's
data seed, the corruption's name and the severity, so a corrupted split is the same every run.
Severities scale one parameter each (the tables below); the digits are small (16x16), so the
parameters are those of MNIST-C/CIFAR-10-C scaled to that size.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from shiftlab.errors import DataError
from shiftlab.registry import unknown_name_message

Tensor = torch.Tensor
Corruption = Callable[[Tensor, float, torch.Generator], Tensor]

# One parameter per severity 1..5.
LEVELS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),  # noise std
    "shot_noise": (60, 25, 12, 6, 3),  # photons at full intensity
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),  # fraction of salt-and-pepper pixels
    "gaussian_blur": (0.4, 0.6, 0.8, 1.0, 1.3),  # blur std, pixels
    "motion_blur": (2, 3, 4, 5, 6),  # streak length, pixels
    "rotate": (10, 20, 30, 40, 55),  # degrees, random sign
    "shear": (0.1, 0.2, 0.3, 0.45, 0.6),  # horizontal shear, random sign
    "scale": (0.9, 0.8, 0.7, 0.6, 0.5),  # zoom out
    "translate": (1, 2, 3, 4, 5),  # pixels, random direction
    "contrast": (0.6, 0.45, 0.3, 0.2, 0.12),  # contrast kept
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added intensity
    "fog": (0.2, 0.3, 0.4, 0.5, 0.6),  # amplitude of a smooth random field
    "stripe": (1, 2, 3, 4, 5),  # inverted one-pixel stripes
    "zigzag": (1, 2, 3, 4, 5),  # zigzag strokes drawn over the digit
    "inverse": (0.6, 0.7, 0.8, 0.9, 1.0),  # blend towards the negative
}


def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator)


def _signs(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.where(_uniform(n, generator) < 0.5, -1.0, 1.0)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Apply per-image 2x3 affine maps (output -> input coordinates), zero padding."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _identity(n: int) -> torch.Tensor:
    return torch.eye(2, 3).repeat(n, 1, 1)


def gaussian_noise(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    return x + level * torch.randn(x.shape, generator=g)


def shot_noise(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    return torch.poisson(x * level, generator=g) / level


def impulse_noise(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    u = torch.rand(x.shape, generator=g)
    salt = torch.rand(x.shape, generator=g) < 0.5
    return torch.where(u < level, salt.to(x.dtype), x)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    return k / k.sum()


def gaussian_blur(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    k = _gaussian_kernel(level)
    c = x.shape[1]
    r = len(k) // 2
    x = F.conv2d(
        F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c
    )
    return F.conv2d(
        F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c
    )


def motion_blur(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    """Average of the image shifted along a random direction, over ``level`` pixels."""
    n = len(x)
    angle = _uniform(n, g) * math.pi
    steps = torch.linspace(-level / 2, level / 2, int(level) + 1)
    h, w = x.shape[-2:]
    total = torch.zeros_like(x)
    for s in steps:
        theta = _identity(n)
        theta[:, 0, 2] = 2 * s * torch.cos(angle) / w
        theta[:, 1, 2] = 2 * s * torch.sin(angle) / h
        total += _affine(x, theta)
    return total / len(steps)


def rotate(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    a = math.radians(level) * _signs(len(x), g)
    theta = torch.zeros(len(x), 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(a), -torch.sin(a)
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(a), torch.cos(a)
    return _affine(x, theta)


def shear(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    theta = _identity(len(x))
    theta[:, 0, 1] = level * _signs(len(x), g)
    return _affine(x, theta)


def scale(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    return _affine(x, _identity(len(x)) / level * torch.tensor([1.0, 1.0, 0.0]))


def translate(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    n = len(x)
    angle = _uniform(n, g) * 2 * math.pi
    h, w = x.shape[-2:]
    theta = _identity(n)
    theta[:, 0, 2] = 2 * level * torch.cos(angle) / w
    theta[:, 1, 2] = 2 * level * torch.sin(angle) / h
    return _affine(x, theta)


def contrast(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * level + mean


def brightness(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    return x + level


def fog(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    """A smooth random field (4x4 noise upsampled), added and renormalised, as CIFAR-10-C's fog."""
    n, _, h, w = x.shape
    field = F.interpolate(
        torch.rand(n, 1, 4, 4, generator=g), size=(h, w), mode="bicubic", align_corners=False
    ).clamp(0, 1)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + level * field) * peak / (peak + level)


def stripe(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    """Invert ``level`` random one-pixel rows or columns (chosen per image)."""
    out = x.clone()
    n, _, h, w = x.shape
    vertical = _uniform(n, g) < 0.5
    for i in range(n):
        size = w if vertical[i] else h
        for j in torch.randperm(size, generator=g)[: int(level)]:
            if vertical[i]:
                out[i, :, :, j] = 1 - out[i, :, :, j]
            else:
                out[i, :, j, :] = 1 - out[i, :, j, :]
    return out


def zigzag(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    """Draw ``level`` random zigzag strokes (bright, one pixel wide) over each image."""
    out = x.clone()
    n, _, h, w = x.shape
    for i in range(n):
        for _ in range(int(level)):
            row = int(torch.randint(h, (1,), generator=g))
            for col in range(w):
                out[i, :, min(h - 1, max(0, row)), col] = 1.0
                row += 1 if (col // 2) % 2 == 0 else -1
    return out


def inverse(x: Tensor, level: float, g: torch.Generator) -> Tensor:
    return x * (1 - level) + (1 - x) * level


CORRUPTIONS: dict[str, Corruption] = {name: globals()[name] for name in LEVELS}


def corrupt(images: np.ndarray, kind: str, severity: int, seed: int) -> np.ndarray:
    """``images`` (N, C, H, W) in [0, 1] with corruption ``kind`` at ``severity`` (1-5).

    Raises:
        DataError: unknown corruption or severity outside 1-5.
    """
    if kind not in CORRUPTIONS:
        raise DataError(unknown_name_message("corruption", kind, list(CORRUPTIONS)))
    if severity not in (1, 2, 3, 4, 5):
        raise DataError(f"corruption severity must be 1 to 5, got {severity}")
    generator = torch.Generator().manual_seed(
        seed * 1_000_003 + zlib.crc32(kind.encode()) + severity
    )
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    with torch.no_grad():
        out = CORRUPTIONS[kind](x, LEVELS[kind][severity - 1], generator)
    return out.clamp(0, 1).numpy().astype(np.float32)
