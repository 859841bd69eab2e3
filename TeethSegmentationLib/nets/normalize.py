"""Robust intensity normalisation shared by training and inference.

CBCT grey values are not calibrated: files range from HU to arbitrary 16-bit values and 8-bit
exports. Percentiles of the volume map soft tissue/air and the dense end (bone, enamel) onto a
fixed range, so any linear rescaling of the same scan gives the same network input.

The anchors sit inside the tissue, not at the tails the file format clips: the 5th percentile is in
air or soft tissue (an HU file clips the air noise at -1024, an uncalibrated one does not), and the
99.5th in dentin and enamel, below the metal of restorations (clipped at 3071, 4095 or 8191 in HU
files). The defaults (1, 99.8) of the first models moved with both; model files keep their own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Normalization:
    method: str = "percentile"
    low_percentile: float = 5.0
    high_percentile: float = 99.5
    clip_low: float = -0.5
    clip_high: float = 2.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Normalization:
        if data.get("method", "percentile") != "percentile":
            raise ValueError(f"unknown normalisation method {data.get('method')!r}")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def sample_for_statistics(array: np.ndarray, max_samples: int = 2_000_000) -> np.ndarray:
    """A strided view with at most about ``max_samples`` voxels: percentiles without copying a big scan."""
    step = max(1, int(np.ceil((array.size / max_samples) ** (1 / 3))))
    return np.asarray(array[::step, ::step, ::step], dtype=np.float32).ravel()


def intensity_window(array: np.ndarray, norm: Normalization = Normalization()) -> tuple[float, float]:
    sample = sample_for_statistics(array)
    low, high = np.percentile(sample, [norm.low_percentile, norm.high_percentile])
    if not high > low:
        high = low + 1.0  # a constant volume: any scale will do, avoid dividing by zero
    return float(low), float(high)


def normalize(
    array: np.ndarray, norm: Normalization = Normalization(), window: tuple[float, float] | None = None
) -> np.ndarray:
    """float32 array: ``low`` -> 0, ``high`` -> 1, clipped to [clip_low, clip_high]."""
    low, high = window if window is not None else intensity_window(array, norm)
    out = np.asarray(array, dtype=np.float32) - np.float32(low)
    out *= np.float32(1.0 / (high - low))
    np.clip(out, norm.clip_low, norm.clip_high, out=out)
    return out
