"""torch.distributed set-up shared by the trainers: launched with ``torchrun``, nccl on CUDA, gloo on CPU."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def local_device(device: torch.device, context: DistributedContext) -> torch.device:
    """Each rank takes its own GPU; CPU ranks share the CPU."""
    if device.type == "cuda" and context.enabled:
        return torch.device("cuda", context.local_rank)
    return device


def all_reduce_mean(value: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    if not context.enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / context.world_size


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def shutdown(context: DistributedContext, finished: bool = False) -> None:
    """Leave the process group. ``finished`` (every rank completed the same work): meet at a barrier first, so that
    no rank closes its gloo connections while a peer still reads from them (the peer then dies of an uncaught
    gloo::IoException, SIGABRT: seen now and then at the end of 2-rank CPU runs). Never after an error, when a
    peer may be gone and the barrier would wait for it until the timeout."""
    if context.enabled and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
