"""Sliding-window prediction over a volume: window positions, Gaussian weights and stitching.

The network runs on ``device`` one batch of windows at a time; the weighted sums stay on the CPU in
numpy, so a whole jaw never has to fit in GPU memory. A volume that fits inside the ROI is
predicted in one pass (padded to the network's divisor only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import product

import numpy as np
import torch

from TeethSegmentationLib.model import pad_to_multiple

Predictor = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[float], None]


def _triple(value: int | Sequence[int]) -> tuple[int, int, int]:
    values = (value,) * 3 if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)
    if len(values) != 3 or not all(v >= 1 for v in values):
        raise ValueError(f"roi must be one or three positive sizes, not {value!r}")
    return values  # type: ignore[return-value]


def window_starts(size: int, roi: int, overlap: float = 0.25) -> list[int]:
    """Start indices of windows of length ``roi`` covering ``0..size``; the last one ends flush with ``size``."""
    if size < 1 or roi < 1:
        raise ValueError(f"size and roi must be positive (size={size}, roi={roi})")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), not {overlap}")
    if size <= roi:
        return [0]
    step = max(1, int(roi * (1.0 - overlap)))
    count = math.ceil((size - roi) / step) + 1
    actual = (size - roi) / (count - 1)
    starts = [int(round(actual * n)) for n in range(count)]
    gaps_ok = all(b - a <= roi for a, b in zip(starts, starts[1:], strict=False))
    if not (starts[0] == 0 and starts[-1] == size - roi and gaps_ok and all(s + roi <= size for s in starts)):
        raise ValueError(f"windows {starts} of {roi} do not cover {size}")
    return starts


@lru_cache(maxsize=16)
def _gaussian_cached(roi: tuple[int, int, int], sigma_scale: float, min_weight: float) -> np.ndarray:
    axes = []
    for size in roi:
        centre, sigma = (size - 1) / 2.0, max(sigma_scale * size, 1e-6)
        axes.append(np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2))
    weights = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    weights = (weights / weights.max()).astype(np.float32)
    np.maximum(weights, np.float32(min_weight), out=weights)
    weights.setflags(write=False)
    return weights


def gaussian_weights(
    roi: int | Sequence[int], sigma_scale: float = 0.125, min_weight: float = 1e-3
) -> np.ndarray:
    """Separable Gaussian importance map (1 at the centre, at least ``min_weight``); cached, read-only."""
    return _gaussian_cached(_triple(roi), float(sigma_scale), float(min_weight))


def _round_roi(roi: tuple[int, int, int], shape: Sequence[int], divisor: int) -> tuple[int, int, int]:
    """ROI as multiples of ``divisor``, no bigger than the (padded) volume needs."""
    out = []
    for r, s in zip(roi, shape, strict=True):
        needed = -(-s // divisor) * divisor
        out.append(max(divisor, min(-(-r // divisor) * divisor, needed)))
    return tuple(out)  # type: ignore[return-value]


def _predict_weighted(
    array: np.ndarray, predictor: Predictor, device: torch.device | str, weights: torch.Tensor
) -> np.ndarray:
    """Predictions of a batch of windows times the importance map (on ``device``), as float32 numpy."""
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)
    return (predictor(x).float() * weights).cpu().numpy()


def _single_pass(
    array: np.ndarray, predictor: Predictor, device: torch.device | str, out_dtype: type, divisor: int
) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    padded, crop = pad_to_multiple(x, divisor)
    out = predictor(padded.to(device)).float().cpu()[0]
    return out[(slice(None), *crop)].numpy().astype(out_dtype, copy=False)


def sliding_window_predict(
    array: np.ndarray,
    predictor: Predictor,
    roi: int | Sequence[int],
    overlap: float = 0.25,
    out_channels: int = 1,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    out_dtype: type = np.float32,
    progress: Progress | None = None,
    divisor: int = 4,
) -> np.ndarray:
    """Predict ``array`` (C, i, j, k) window by window; returns (out_channels, i, j, k) in ``out_dtype``.

    ``predictor`` maps a batch (B, C, *roi) to (B, out_channels, *roi). ``progress`` gets the fraction
    of windows done after each batch (the place where a cancel request surfaces).
    """
    if array.ndim != 4:
        raise ValueError(f"array must be (C, i, j, k), not {array.shape}")
    shape = array.shape[1:]
    window = _round_roi(_triple(roi), shape, divisor)
    if all(s <= w for s, w in zip(shape, window, strict=True)):
        out = _single_pass(array, predictor, device, out_dtype, divisor)
        if progress:
            progress(1.0)
        return out
    pads = [(0, 0)] + [(0, max(0, w - s)) for s, w in zip(shape, window, strict=True)]
    padded = np.pad(array, pads, mode="edge") if any(p[1] for p in pads) else array
    full = padded.shape[1:]
    corners = list(product(*(window_starts(s, w, overlap) for s, w in zip(full, window, strict=True))))
    weights = gaussian_weights(window)
    weights_on_device = torch.from_numpy(weights.copy()).to(device)
    acc = np.zeros((out_channels, *full), dtype=np.float32)  # float16 sums in numpy are slow
    norm = np.zeros(full, dtype=np.float32)
    for first in range(0, len(corners), batch_size):
        batch = corners[first : first + batch_size]
        slices = [tuple(slice(c, c + w) for c, w in zip(corner, window, strict=True)) for corner in batch]
        inputs = np.stack([padded[(slice(None), *s)] for s in slices])
        outputs = _predict_weighted(inputs, predictor, device, weights_on_device)
        for s, out in zip(slices, outputs, strict=True):
            acc[(slice(None), *s)] += out
            norm[s] += weights
        if progress:
            progress(min(1.0, (first + len(batch)) / len(corners)))
    crop = tuple(slice(0, s) for s in shape)
    result = acc[(slice(None), *crop)]
    result /= norm[crop]
    return np.ascontiguousarray(result, dtype=out_dtype)
