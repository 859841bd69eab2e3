"""Training throughput of the shipped architectures: voxels/s and s/epoch, on the CPU and on CUDA when present.

Not a test: prints a table. Random patches with a few "teeth" so the loss is realistic; the timed
steps are the real ``training.steps.train_step`` (float32 on the CPU, and bf16 autocast too where the CPU
has native bf16, as fine-tuning's default ``--precision auto``; mixed precision on CUDA).

    python scripts/benchmark_train.py [--steps 5] [--patches 64 96] [--steps-per-epoch 50] [--batch 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from TeethSegmentationLib.nets.devices import cpu_has_native_bf16
from TeethSegmentationLib.nets.unet import UNet, count_parameters
from TeethSegmentationLib.training.steps import make_optimizer, train_step

CONFIGS = {"teeth (9 filters, 1 out)": (1, 9), "types (9 filters, 9 out)": (9, 9)}


def batch(out_channels: int, patch: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(size, 1, patch, patch, patch, generator=generator)
    targets = torch.randint(0, max(2, out_channels), (size, patch, patch, patch), generator=generator)
    if out_channels == 1:
        targets = (targets > 0).to(torch.uint8)
    return images.to(device), targets.to(device)


def seconds_per_step(
    out_channels: int, filters: int, patch: int, size: int, steps: int, device: torch.device,
    cpu_dtype: torch.dtype = torch.float32,
) -> float:
    torch.manual_seed(0)
    net = UNet(1, out_channels, 3, filters).to(device).train()
    optimizer = make_optimizer("adam", net.parameters(), 1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    images, targets = batch(out_channels, patch, size, device)
    train_step(net, optimizer, scaler, images, targets, True, cpu_dtype)  # warm-up (allocations, cuDNN autotune)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        train_step(net, optimizer, scaler, images, targets, True, cpu_dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--patches", type=int, nargs="+", default=[64, 96])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    args = parser.parse_args()
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch}, "
        f"{args.steps_per_epoch} steps/epoch"
    )
    print(f"{'device':<8} {'configuration':<28} {'params':>8} {'patch':>5} {'s/step':>8} {'Mvox/s':>8} {'s/epoch':>8}")
    runs = [(name, torch.float32) for name in devices]
    if "cpu" in devices and cpu_has_native_bf16():  # what --precision auto (fine-tuning's default) trains in
        runs.insert(devices.index("cpu") + 1, ("cpu", torch.bfloat16))
    for name, cpu_dtype in runs:
        device = torch.device(name)
        shown = f"{name} bf16" if cpu_dtype == torch.bfloat16 else name
        for label, (out_channels, filters) in CONFIGS.items():
            params = count_parameters(UNet(1, out_channels, 3, filters))
            for patch in args.patches:
                step = seconds_per_step(out_channels, filters, patch, args.batch, args.steps, device, cpu_dtype)
                voxels = args.batch * patch**3 / step
                print(
                    f"{shown:<8} {label:<28} {params:>8,} {patch:>5} {step:>8.3f} {voxels / 1e6:>8.2f} "
                    f"{step * args.steps_per_epoch:>8.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
