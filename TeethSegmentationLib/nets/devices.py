"""Choosing the torch device (``auto`` takes CUDA when present, else the CPU) and the arithmetic the networks
run in (``auto`` takes bfloat16 where the CPU computes it natively, float32 elsewhere)."""

from __future__ import annotations

import torch

from TeethSegmentationLib.errors import InputError


def resolve_device(name: str = "auto") -> torch.device:
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") or name == "gpu":
        if not torch.cuda.is_available():
            raise InputError("A GPU was requested but torch sees no CUDA device; use --device cpu or auto.")
        return torch.device("cuda" if name == "gpu" else name)
    if name == "cpu":
        return torch.device("cpu")
    raise InputError(f"Unknown device {name!r}; use auto, cpu or cuda.")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


PRECISIONS = ("auto", "float32", "bfloat16")


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """float32 or bfloat16 for running the networks on ``device``.

    ``auto`` takes bfloat16 only on CPUs with native bf16 instructions (AVX512-BF16 or AMX), where oneDNN's
    3-D convolutions run about twice as fast; elsewhere bf16 is emulated and slower, so float32. On a GPU
    ``auto`` is float32: on an H200 bf16 autocast was no faster (the CPU's work sets the pace there) and lost
    accuracy on the 50 family scans (README, Speed).
    """
    name = (name or "auto").lower()
    if name not in PRECISIONS:
        raise InputError(f"Unknown precision {name!r}; use {', '.join(PRECISIONS)}.")
    if name == "float32":
        return torch.float32
    if name == "bfloat16":
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else torch.float32


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private probe: absent in some builds
        return False
