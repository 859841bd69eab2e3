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

from TeethSegmentationLib.nets.unet import pad_to_multiple

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
    return as_numpy(out[(slice(None), *crop)], out_dtype)


def as_numpy(tensor: torch.Tensor, dtype: type) -> np.ndarray:
    """A contiguous numpy copy in ``dtype``, converted by torch: numpy's float32 -> float16 cast of a strided
    array is many times slower (about 1.4 s for stage 2 of a head), and both round to nearest even."""
    target = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    return tensor.to(target).contiguous().numpy()


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
    mask: np.ndarray | None = None,
    fill: float | Sequence[float] = 0.0,
) -> np.ndarray:
    """Predict ``array`` (C, i, j, k) window by window; returns (out_channels, i, j, k) in ``out_dtype``.

    ``predictor`` maps a batch (B, C, *roi) to (B, out_channels, *roi). ``progress`` gets the fraction
    of windows done after each batch (the place where a cancel request surfaces). With a ``mask``
    (i, j, k), windows holding none of its voxels are not run: voxels no run window covers get
    ``fill`` (a value, or one per output channel); voxels only run windows cover are exactly as without
    the mask. A volume that fits in one window runs in one pass unless the mask is empty.
    """
    if array.ndim != 4:
        raise ValueError(f"array must be (C, i, j, k), not {array.shape}")
    if mask is not None and mask.shape != array.shape[1:]:
        raise ValueError(f"mask shape {mask.shape} is not the array's {array.shape[1:]}")
    shape = array.shape[1:]
    window = _round_roi(_triple(roi), shape, divisor)
    if mask is not None and not mask.any():
        if progress:
            progress(1.0)
        return _filled((out_channels, *shape), fill, out_dtype)
    if all(s <= w for s, w in zip(shape, window, strict=True)):
        out = _single_pass(array, predictor, device, out_dtype, divisor)
        if progress:
            progress(1.0)
        return out
    pads = [(0, 0)] + [(0, max(0, w - s)) for s, w in zip(shape, window, strict=True)]
    padded = np.pad(array, pads, mode="edge") if any(p[1] for p in pads) else array
    full = padded.shape[1:]
    corners = window_corners(shape, window, overlap, mask)
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
    return _normalised(acc[(slice(None), *crop)], norm[crop], fill, out_dtype)


def _filled(shape: tuple[int, ...], fill: float | Sequence[float], dtype: type) -> np.ndarray:
    """An array of ``shape`` (channels first) holding ``fill`` (a value or one per channel)."""
    values = np.broadcast_to(np.asarray(fill, dtype=dtype).reshape(-1, *([1] * (len(shape) - 1))), shape)
    return np.ascontiguousarray(values)


def _normalised(acc: np.ndarray, norm: np.ndarray, fill: float | Sequence[float], dtype: type) -> np.ndarray:
    """``acc / norm`` (in place) where a window ran, ``fill`` where none did; as contiguous ``dtype``."""
    uncovered = norm == 0
    if uncovered.any():
        norm = np.where(uncovered, np.float32(1), norm)
    acc /= norm
    result = as_numpy(torch.from_numpy(acc), dtype)
    if uncovered.any():
        result[:, uncovered] = _filled((acc.shape[0], 1), fill, dtype)
    return result


def window_corners(
    shape: Sequence[int], window: Sequence[int], overlap: float = 0.25, mask: np.ndarray | None = None
) -> list[tuple[int, ...]]:
    """Start corners of the windows tiling ``shape`` (at least ``window``); with a ``mask``, only the
    windows holding one of its voxels (the mask is (i, j, k) of ``shape``, unpadded)."""
    full = [max(int(s), int(w)) for s, w in zip(shape, window, strict=True)]
    corners = list(product(*(window_starts(s, w, overlap) for s, w in zip(full, window, strict=True))))
    if mask is None:
        return corners
    return [c for c in corners if mask[tuple(slice(a, a + w) for a, w in zip(c, window, strict=True))].any()]
