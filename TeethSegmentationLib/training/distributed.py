"""Multi-GPU / multi-node training with torch.distributed, as launched by ``torchrun``.

``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK; without them training runs in one process and
every helper here is a no-op. Each rank draws its own patches (its rank is part of the sampling
seed), DistributedDataParallel averages the gradients, and only rank 0 writes events, checkpoints
and the model file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env(env: dict[str, str] | None = None) -> DistContext:
    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return DistContext()
    return DistContext(int(env.get("RANK", "0")), world, int(env.get("LOCAL_RANK", "0")))


def setup(ctx: DistContext, device: torch.device) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU); the device this rank trains on."""
    if not ctx.enabled:
        return device
    if device.type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
        device = torch.device("cuda", ctx.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(net: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``net`` (SyncBatchNorm on CUDA); ``net`` itself when alone."""
    if not ctx.enabled:
        return net
    if device.type == "cuda":
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        return nn.parallel.DistributedDataParallel(net, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(net)


def mean_across_ranks(value: float, ctx: DistContext, device: torch.device) -> float:
    if not ctx.enabled:
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / ctx.world_size


def sync_buffers(net: nn.Module, ctx: DistContext) -> None:
    """Rank 0's BatchNorm statistics on every rank, so all ranks end with identical state dicts."""
    if ctx.enabled:
        for buffer in net.buffers():
            dist.broadcast(buffer, 0)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()
