"""Scale-out costs, in one run:

1. the one-process trainer (with precision, accumulation, checkpoint and distributed hooks)
   against the plain PyTorch loop of ``benchmarks/throughput.py`` (MiniLM, VADER movie
   snippets): ``trainer ratio`` = shiftlab samples/s over plain samples/s;
2. Ray's overhead per task: the round trip of an empty task on a local Ray instance, one at a
   time (latency) and many at once (throughput);
3. the quickstart's recipes (examples/quickstart.yaml) run by the local executor and by the Ray
   executor with one worker per core, each into a fresh run directory.

Prints ``ratio=`` (local wall time over Ray wall time) last.

    python benchmarks/scale.py [--config examples/quickstart.yaml] [--samples 256] [--skip-runs]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from shiftlab import config
from shiftlab.config.sections import BackboneConfig, DataConfig
from shiftlab.data import load_benchmark
from shiftlab.data.vader import VaderOptions
from shiftlab.models import load_backbone
from shiftlab.runner import run
from shiftlab.training import TrainOptions
from shiftlab.typed import build

CPU = torch.device("cpu")


def trainer_ratio(samples: int, repeats: int = 2) -> float:
    sys.path.insert(0, str(Path(__file__).parent))
    from throughput import plain_run, shiftlab_run  # the plain loop, beside this script

    data_cfg = build(
        DataConfig,
        {"kind": "vader", "id_domains": ["movie"], "ood_domains": ["tweets"]},
        "data",
    )
    data_cfg.options = VaderOptions()
    backbone = load_backbone(BackboneConfig(max_length=128), CPU)
    bench = load_benchmark(data_cfg)
    texts, labels = bench.train.inputs[:samples], bench.train.labels[:samples]
    head = torch.nn.Linear(backbone.featurizer.dim, 2)
    cfg = TrainOptions(epochs=1, lr=3e-5, batch_size=32, warmup_steps=2)
    plain_run(backbone, head, texts[:64], labels[:64], cfg)  # warm-up
    ours, plain = [], []
    for _ in range(repeats):
        plain.append(plain_run(backbone, head, texts, labels, cfg))
        ours.append(shiftlab_run(backbone, head, texts, labels, cfg))
    print(f"trainer: plain {max(plain):.2f} samples/s, shiftlab {max(ours):.2f} samples/s")
    ratio = max(ours) / max(plain)
    print(f"trainer ratio={ratio:.3f}")
    return ratio


def ray_overhead(tasks: int = 200) -> tuple[float, float]:
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    try:

        @ray.remote(num_cpus=1)
        def nothing(x: int) -> int:
            return x

        ray.get([nothing.remote(i) for i in range(os.cpu_count() or 1)])  # start the workers
        start = time.perf_counter()
        for i in range(tasks):
            ray.get(nothing.remote(i))
        latency = (time.perf_counter() - start) / tasks * 1000
        start = time.perf_counter()
        ray.get([nothing.remote(i) for i in range(tasks)])
        throughput = (time.perf_counter() - start) / tasks * 1000
    finally:
        ray.shutdown()
    print(f"ray overhead per task: {latency:.2f} ms one at a time, {throughput:.2f} ms in bulk")
    return latency, throughput


def timed_run(path: str, kind: str, folder: Path) -> float:
    cfg = config.load(path)
    cfg = dataclasses.replace(cfg, executor=dataclasses.replace(cfg.executor, kind=kind))
    start = time.perf_counter()
    run(cfg, folder / kind, report=False)
    seconds = time.perf_counter() - start
    print(f"{kind} executor: {seconds:.1f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="examples/quickstart.yaml")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--skip-runs", action="store_true", help="only parts 1 and 2")
    args = parser.parse_args()
    trainer_ratio(args.samples)
    ray_overhead()
    if args.skip_runs:
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = timed_run(args.config, "local", Path(tmp))
        remote = timed_run(args.config, "ray", Path(tmp))
    print(f"cores={os.cpu_count()} local {local:.1f} s, ray {remote:.1f} s")
    print(f"ratio={local / remote:.3f}")


if __name__ == "__main__":
    main()
