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

from TeethSegmentationLib.errors import InputError


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


# Grey values beyond these are scaled into range first (normalisation ignores any linear scaling): float32
# arithmetic on them would overflow (1e300 -> inf) or lose every digit.
SAFE_MAGNITUDE = (1e-20, 1e20)


def image_content(array: np.ndarray) -> np.ndarray:
    """The grey values ready to normalise, or an InputError when there is no image in them.

    A few NaN/Inf voxels are missing data: they become the smallest finite value (a copy is made only
    then). All-NaN, all-Inf or constant volumes have no image content. Float values beyond
    ``SAFE_MAGNITUDE`` are scaled into range (float32 result): the normalised input is the same.
    """
    array = np.asarray(array)
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.any():
            raise InputError(NO_CONTENT)
        if not finite.all():
            low = array[finite].min()
            array = np.where(finite, array, low)
        magnitude = float(max(abs(float(array.min())), abs(float(array.max()))))
        if magnitude > SAFE_MAGNITUDE[1] or 0 < magnitude < SAFE_MAGNITUDE[0]:
            array = (array / np.float64(magnitude)).astype(np.float32)
    if array.size == 0 or array.min() == array.max():
        raise InputError(NO_CONTENT)
    return array


NO_CONTENT = (
    "The volume has no image content (every voxel has the same value, or none is a number); "
    "check that the right file was exported."
)


def sample_for_statistics(array: np.ndarray, max_samples: int = 2_000_000) -> np.ndarray:
    """A strided view with at most about ``max_samples`` voxels: percentiles without copying a big scan."""
    step = max(1, int(np.ceil((array.size / max_samples) ** (1 / 3))))
    return np.asarray(array[::step, ::step, ::step], dtype=np.float32).ravel()  # image_content bounds magnitudes


def intensity_window(array: np.ndarray, norm: Normalization = Normalization()) -> tuple[float, float]:
    """(low, high) grey values mapped to 0 and 1, always finite with ``high > low`` in float32 arithmetic."""
    sample = sample_for_statistics(array)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(sample, [norm.low_percentile, norm.high_percentile]))
    if not high > low:  # mostly one value (air): fall back to the full range of the sample
        low, high = float(sample.min()), float(sample.max())
    if not np.float32(high) - np.float32(low) > 0:  # constant, or a range float32 cannot resolve
        high = low + max(1.0, abs(low) * 1e-3)
    return low, high


def normalize(
    array: np.ndarray, norm: Normalization = Normalization(), window: tuple[float, float] | None = None
) -> np.ndarray:
    """float32 array: ``low`` -> 0, ``high`` -> 1, clipped to [clip_low, clip_high]."""
    low, high = window if window is not None else intensity_window(array, norm)
    out = np.asarray(array, dtype=np.float32) - np.float32(low)
    scale = 1.0 / (float(high) - float(low))
    out *= np.float32(scale if np.isfinite(scale) else 0.0)
    np.clip(out, norm.clip_low, norm.clip_high, out=out)
    return out
