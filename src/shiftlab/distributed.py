"""Data-parallel runs: which process this is, main-process-only writes, and the collectives the
shared trainer and the encoder use.

A run launched on several processes (``shiftlab run CONFIG --launcher accelerate``, or
``accelerate launch -m shiftlab.cli run CONFIG``) runs the whole program on every process:
every process loads the data and the backbone, runs every recipe, and computes every record.
Only the work that is worth sharing is split:

- training (:func:`shiftlab.training.trainer.train`): each global batch is split across the
  processes, each computes the gradient of its share weighted by its share of the batch, and the
  gradients are summed (:func:`sum_gradients`), so every process takes the step one process
  would take on the whole batch;
- encoding (:func:`shiftlab.features.encode`): each process encodes every W-th batch and the
  features are gathered (:func:`all_gather_rows`), so every process holds every feature.

Everything else (head fits on cached features, metrics, adapters) is computed by every process
alike, so the processes never disagree about what comes next. Files are written by the main
process alone, between two barriers (:func:`main_writes`): no process reads the run directory at
a point where the one-process run would see it differently.

In one process (no launcher) every function here is a no-op: ``is_main_process()`` is True and
nothing is imported or initialised.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

T = TypeVar("T")

_RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
BUCKET_BYTES = 32 * 2**20  # gradients are summed in flat buckets of at most this size


def _env_int(names: Sequence[str], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)
    return default


def _initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size() -> int:
    """Number of processes of this run (1 without a launcher)."""
    if _initialized():
        return torch.distributed.get_world_size()
    return _env_int(_SIZE_VARS, 1)


def rank() -> int:
    """This process's rank, 0 for the main process (and without a launcher)."""
    if _initialized():
        return torch.distributed.get_rank()
    return _env_int(_RANK_VARS, 0)


def is_distributed() -> bool:
    """Whether this run has more than one process."""
    return world_size() > 1


def is_main_process() -> bool:
    """Whether this process writes the run's files (rank 0; always, in one process)."""
    return rank() == 0


def setup(device: torch.device | str = "cpu") -> None:
    """Join the process group of a launched multi-process run; a no-op in one process or when
    already joined.

    Accelerate's ``PartialState`` picks the backend (gloo on CPUs, NCCL on GPUs) and makes
    ``cuda`` mean this process's own GPU. Non-main processes stop logging (their lines would
    repeat the main process's).

    Args:
        device: the run's device; a CPU run uses gloo even where GPUs exist.
    """
    if not is_distributed():
        return
    if not _initialized():
        cpu = torch.device(device).type != "cuda"
        try:
            from accelerate import PartialState
        except ImportError:  # launched by torchrun without Accelerate installed
            backend = "gloo" if cpu else "nccl"
            if not cpu:
                torch.cuda.set_device(_env_int(("LOCAL_RANK",), 0))
            torch.distributed.init_process_group(backend)
        else:
            PartialState(cpu=cpu)
        atexit.register(_leave)
    if not is_main_process():
        from shiftlab.runtime import console

        console.quiet = True


def _leave() -> None:
    if _initialized():
        torch.distributed.destroy_process_group()


def _comm_device() -> torch.device:
    if _initialized() and torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait until every process reaches this point (nothing in one process)."""
    if is_distributed():
        torch.distributed.barrier()


@contextlib.contextmanager
def main_writes() -> Iterator[bool]:
    """Bracket a write to the run directory: every process waits until all arrive, the body
    runs, every process waits until the main process has written. Yields whether this process
    writes (the main process)::

        with main_writes() as main:
            if main:
                path.write_text(...)

    So no process reads a file before the main process wrote it, nor after the main process
    rewrote it for a later step. Every process must enter the block at the same point.
    """
    barrier()
    yield is_main_process()
    barrier()


def shard(items: Sequence[T]) -> list[T]:
    """This process's share of ``items``: every W-th one, starting at its rank."""
    return list(items[rank() :: world_size()])


def share(index: Any) -> Any:
    """This process's contiguous share of one global batch's example indices (sizes differ by
    at most one; a share may be empty when the batch is smaller than the world)."""
    size, me = world_size(), rank()
    if size == 1:
        return index
    n = len(index)
    start = me * (n // size) + min(me, n % size)
    return index[start : start + n // size + (1 if me < n % size else 0)]


def _on_comm(tensor: torch.Tensor) -> tuple[torch.Tensor, bool]:
    device = _comm_device()
    if tensor.device == device:
        return tensor, False
    return tensor.to(device), True


def sum_across(values: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``values`` over every process (a copy; ``values`` as it is in
    one process)."""
    if not is_distributed():
        return values
    moved, _ = _on_comm(values.clone())
    torch.distributed.all_reduce(moved)
    return moved.to(values.device)


def sum_gradients(
    params: Sequence[nn.Parameter], extra: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Replace every gradient by its sum over the processes; return ``extra`` summed too.

    A parameter without a gradient on every process keeps none (as in one process, where the
    optimiser then skips it); one with a gradient somewhere gets zeros where it has none.
    Gradients travel in flat buckets of at most :data:`BUCKET_BYTES`.

    Args:
        params: the trained parameters, in the same order on every process.
        extra: a small float tensor summed in the same collective as the "has a gradient" flags
            (the trainer's loss and NaN counts).
    """
    if not is_distributed():
        return extra
    head = extra.double().cpu() if extra is not None else torch.zeros(0, dtype=torch.float64)
    flags = torch.tensor([p.grad is not None for p in params], dtype=torch.float64)
    summed = sum_across(torch.cat([head, flags]))
    present = summed[len(head) :] > 0
    grads: list[torch.Tensor] = []
    for p, here in zip(params, present.tolist(), strict=True):
        if here:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    _bucketed(grads, torch.distributed.all_reduce)
    if extra is None:
        return None
    return summed[: len(head)].to(dtype=extra.dtype, device=extra.device)


def broadcast_gradients(params: Sequence[nn.Parameter]) -> None:
    """Replace every gradient by the main process's (for losses that every process computes on
    the whole batch: the processes stay equal even where kernels are not deterministic)."""
    if not is_distributed():
        return
    flags = broadcast_object([p.grad is not None for p in params])
    grads: list[torch.Tensor] = []
    for p, here in zip(params, flags, strict=True):
        if here:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        else:
            p.grad = None
    _bucketed(grads, lambda flat: torch.distributed.broadcast(flat, src=0))


def _bucketed(grads: list[torch.Tensor], collective: Callable[[torch.Tensor], Any]) -> None:
    """Run a collective on the gradients in place, in flat buckets (on the communication
    device), each written back into its gradients."""
    for bucket in _buckets(grads):
        flat, moved = _on_comm(torch.cat([g.reshape(-1) for g in bucket]))
        collective(flat)
        if moved:
            flat = flat.to(bucket[0].device)
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def _buckets(tensors: Iterable[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    by_kind: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for t in tensors:
        by_kind.setdefault((t.device, t.dtype), []).append(t)
    for group in by_kind.values():
        bucket: list[torch.Tensor] = []
        size = 0
        for t in group:
            nbytes = t.numel() * t.element_size()
            if bucket and size + nbytes > BUCKET_BYTES:
                yield bucket
                bucket, size = [], 0
            bucket.append(t)
            size += nbytes
        if bucket:
            yield bucket


@torch.no_grad()
def broadcast_module(module: nn.Module, extra: Iterable[torch.Tensor] = ()) -> None:
    """Give every process the main process's parameters and buffers of ``module`` (and the
    ``extra`` tensors), as DDP does when it wraps a model."""
    if not is_distributed():
        return
    seen: set[int] = set()
    for t in [*module.parameters(), *module.buffers(), *extra]:
        if id(t) in seen:
            continue
        seen.add(id(t))
        moved, copied = _on_comm(t.data)
        torch.distributed.broadcast(moved, src=0)
        if copied:
            t.data.copy_(moved)


@torch.no_grad()
def average_buffers(module: nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics, each computed on the
    process's share of every batch) over the processes; other buffers (counters) are the main
    process's. Parameters are equal everywhere already."""
    if not is_distributed():
        return
    size = world_size()
    for buffer in module.buffers():
        moved, copied = _on_comm(buffer.data)
        if buffer.is_floating_point():
            torch.distributed.all_reduce(moved)
            moved /= size
        else:
            torch.distributed.broadcast(moved, src=0)
        if copied:
            buffer.data.copy_(moved)


def all_gather_rows(local: torch.Tensor) -> list[torch.Tensor]:
    """Every process's 2-D float tensor (rows may differ in number, a process may have none),
    in rank order, on the CPU."""
    if not is_distributed():
        return [local]
    local = local.float().cpu()
    width = local.shape[1] if local.dim() == 2 and local.shape[0] else 0
    shapes = [torch.zeros(2, dtype=torch.int64) for _ in range(world_size())]
    mine = torch.tensor([local.shape[0], width], dtype=torch.int64)
    _all_gather(shapes, mine)
    rows = max(int(s[0]) for s in shapes)
    width = max(int(s[1]) for s in shapes)
    padded = torch.zeros(rows, width)
    if local.shape[0]:
        padded[: local.shape[0]] = local
    parts = [torch.zeros(rows, width) for _ in range(world_size())]
    _all_gather(parts, padded)
    return [p[: int(s[0])] for p, s in zip(parts, shapes, strict=True)]


def _all_gather(out: list[torch.Tensor], tensor: torch.Tensor) -> None:
    device = _comm_device()
    moved = [t.to(device) for t in out]
    torch.distributed.all_gather(moved, tensor.to(device))
    for target, source in zip(out, moved, strict=True):
        target.copy_(source)


def gather_objects(obj: Any) -> list[Any]:
    """Every process's picklable ``obj``, in rank order (``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    found: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(found, obj)
    return found


def broadcast_object(obj: Any) -> Any:
    """The main process's picklable ``obj``, on every process."""
    if not is_distributed():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def launch(argv: Sequence[str], num_processes: int | None) -> int:
    """Run ``shiftlab <argv>`` on ``num_processes`` processes with ``accelerate launch`` (torch's
    elastic launcher underneath: gloo on CPUs, NCCL on GPUs); return its exit status.

    The flags are those that work without an Accelerate config on CPUs and GPUs alike:
    ``--multi_gpu`` (despite its name, it only asks for torch's launcher; ``--cpu`` would start
    one process), ``--num_machines 1``, ``--mixed_precision no`` and ``--dynamo_backend no``
    (precision is the run's ``precision:``), and ``--main_process_port 0`` (a free port).

    Args:
        argv: the ``shiftlab`` arguments each process runs (``run CONFIG ...``).
        num_processes: processes to start; default one per visible GPU.

    Raises:
        ConfigError: fewer than two processes, or none given where there is no GPU.
    """
    import subprocess
    import sys

    from shiftlab._optional import require
    from shiftlab.errors import ConfigError

    require("accelerate", "distributed")
    if num_processes is None:
        if not torch.cuda.is_available():
            raise ConfigError("--launcher accelerate without GPUs needs --num-processes N")
        num_processes = torch.cuda.device_count()
    if num_processes < 2:
        raise ConfigError(f"--launcher accelerate needs 2 or more processes, got {num_processes}")
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(num_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
        "-m",
        "shiftlab.cli",
        *argv,
    ]
    return subprocess.run(command, check=False).returncode
