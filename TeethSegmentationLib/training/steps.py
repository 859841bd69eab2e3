"""The pieces of one training step: optimiser, learning-rate schedule, the step itself, and its guards.

Pure enough to share with ``scripts/benchmark_train.py``: no trainer state.
"""

from __future__ import annotations

import importlib
import math
import os
import threading

import numpy as np
import torch
from torch import nn

from TeethSegmentationLib.errors import Failed, InputError
from TeethSegmentationLib.training.losses import stage_loss

# Bytes a training step holds per voxel of a batch and start filter of the U-Net (activations kept for the
# backward pass, their gradients, the layout copies; measured 75-95 on the CPU): to refuse settings that
# cannot fit (a batch of 100000, a patch of 4000) before any data is read, not to tune the ones that can.
STEP_BYTES_PER_VOXEL_FILTER = 100
SKIPPED_STEPS_TOLERATED = 20  # mixed precision: the loss scaler skips a few overflowing steps by design


def scheduled_lr(base_lr: float, schedule: str, epoch: int, epochs: int) -> float:
    """Learning rate of (0-based) ``epoch`` of ``epochs``: poly decay, which ends small but not at zero."""
    if schedule == "constant" or epochs <= 1:
        return base_lr
    return base_lr * (1.0 - epoch / epochs) ** 0.9


def import_optimizer_support_aside() -> threading.Thread:
    """Import, in a thread, what torch's first optimiser imports (``torch._dynamo``: 1.45 s on 2 cores), so
    that it comes while other work runs: fine-tuning's reading and segmenting of the user's cases took
    7.1-7.8 -> 7.8-8.1 s with it beside them, and the optimisers 1.46-1.48 -> 0.0 s (net 0.8-1.2 s less)."""
    thread = threading.Thread(target=importlib.import_module, args=("torch._dynamo",), daemon=True)
    thread.start()
    return thread


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "rmsprop":  # the reference method's optimiser, kept to compare against it
        return torch.optim.RMSprop(params, lr=lr)
    raise InputError(f"Unknown optimizer {name!r}; use adam or rmsprop.")


def training_layout(device: torch.device, cpu_dtype: torch.dtype = torch.float32) -> torch.memory_format:
    """Channels-last 3-D for float32 on the CPU (steps of these small networks 1.3x faster); the default layout
    elsewhere, and for bf16 on the CPU, where batch norm's backward pass is slow in channels-last (a step
    0.23 -> 0.14 s, patch 48, batch 2)."""
    if device.type == "cpu" and cpu_dtype == torch.float32:
        return torch.channels_last_3d
    return torch.contiguous_format


def train_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    images: torch.Tensor,
    targets: torch.Tensor,
    with_ce: bool = False,
    cpu_dtype: torch.dtype = torch.float32,
) -> float:
    """One optimisation step; mixed precision on CUDA (when the scaler is enabled); on the CPU float32, or
    bf16 autocast with ``cpu_dtype`` bfloat16 (bf16 keeps float32's range: no loss scaling)."""
    device = next(net.parameters()).device
    images = images.to(device, non_blocking=True).contiguous(memory_format=training_layout(device, cpu_dtype))
    targets = targets.to(device, non_blocking=True)
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cpu" and cpu_dtype == torch.bfloat16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = net(images).float()
    else:
        with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
            logits = net(images)
    loss = stage_loss(logits, targets, with_ce)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


class DivergenceGuard:
    """Stops a run whose loss or weights stop being finite (a learning rate far too high), before anything
    is saved. With mixed precision a few non-finite losses are normal: the scaler skips those steps."""

    def __init__(self, mixed_precision: bool) -> None:
        self.tolerated = SKIPPED_STEPS_TOLERATED if mixed_precision else 0
        self.skipped = 0

    def check_loss(self, loss: float, stage: str) -> None:
        self.skipped = 0 if math.isfinite(loss) else self.skipped + 1
        if self.skipped > self.tolerated:
            raise Failed(f"Training the {stage} network diverged (the loss is {loss}); lower --lr and start again.")

    @staticmethod
    def check_weights(net: nn.Module, stage: str) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
            raise Failed(
                f"Training the {stage} network diverged (its weights are not finite); lower --lr and start again."
            )


def split_cases(cases: list, val_fraction: float, seed: int) -> tuple[list, list]:
    """(training, validation): a seeded shuffle; at least one of each when there are two cases or more."""
    if val_fraction <= 0 or len(cases) < 2:
        return list(cases), []
    order = np.random.default_rng(seed).permutation(len(cases))
    n_val = min(len(cases) - 1, max(1, int(round(val_fraction * len(cases)))))
    val = sorted(order[:n_val].tolist())
    return [c for i, c in enumerate(cases) if i not in val], [cases[i] for i in val]


def check_step_fits(batch: int, patch: int, start_filters: int, device: torch.device) -> None:
    """Refuse a batch and patch whose training step cannot fit in the device's memory, before any data is read."""
    need = batch * patch**3 * start_filters * STEP_BYTES_PER_VOXEL_FILTER
    have = _memory_bytes(device)
    if have and need > have:
        raise InputError(
            f"A batch of {batch} patches of {patch}^3 voxels needs about {need / 2**30:.0f} GB, more than the "
            f"{have / 2**30:.0f} GB of {device.type} memory; use a smaller --batch or --patch."
        )


def _memory_bytes(device: torch.device) -> int | None:
    """Total memory of the device (CUDA) or the machine; None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None
