"""The regular RAS grid a phantom is drawn on, and re-expressing it in another file convention.

Phantoms are drawn on an axis-aligned RAS grid (i -> R, j -> A, k -> S). A file convention is then
applied by permuting/flipping the array axes and changing the matrix to match: the same voxels at
the same RAS points, so the labels stay exact (no resampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    origin: np.ndarray  # RAS mm of voxel (0, 0, 0)
    spacing: np.ndarray  # mm along x, y, z
    shape: tuple[int, int, int]

    @classmethod
    def around(cls, lo: np.ndarray, hi: np.ndarray, spacing: np.ndarray) -> Grid:
        """The smallest grid with this spacing covering the RAS box [lo, hi], centred on it."""
        spacing = np.asarray(spacing, dtype=np.float64)
        # A spacing drawn as extent / n puts the longest side exactly on an integer, where the CPU's last bits
        # (AVX2 against AVX-512 trigonometry) decided between n and n + 1 voxels and every later random draw.
        steps = (np.asarray(hi) - lo) / spacing
        shape = np.maximum(np.ceil(steps - 1e-6).astype(int) + 1, 2)
        centre = (np.asarray(lo) + hi) / 2
        origin = centre - (shape - 1) / 2 * spacing
        return cls(origin, spacing, tuple(int(n) for n in shape))

    def axes(self, lo: tuple[int, int, int] = (0, 0, 0), hi: tuple[int, int, int] | None = None):
        """Broadcastable x[:, None, None], y[None, :, None], z[None, None, :] for the index box [lo, hi)."""
        hi = self.shape if hi is None else hi
        coords = [(self.origin[a] + self.spacing[a] * np.arange(lo[a], hi[a])).astype(np.float32) for a in range(3)]
        return coords[0][:, None, None], coords[1][None, :, None], coords[2][None, None, :]

    def index_box(self, lo_mm: np.ndarray, hi_mm: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """Index range [lo, hi) of the voxels inside the RAS box, clipped to the grid; None when empty."""
        lo = np.maximum(np.ceil((np.asarray(lo_mm) - self.origin) / self.spacing), 0).astype(int)
        hi = np.minimum(np.floor((np.asarray(hi_mm) - self.origin) / self.spacing) + 1, self.shape).astype(int)
        if np.any(hi <= lo):
            return None
        return tuple(int(v) for v in lo), tuple(int(v) for v in hi)

    @property
    def ijk_to_ras(self) -> np.ndarray:
        matrix = np.eye(4)
        matrix[:3, :3] = np.diag(self.spacing)
        matrix[:3, 3] = self.origin
        return matrix

    def coarse(self, factor: int) -> Grid:
        """A grid ``factor`` times coarser whose trilinear upsampling (align_corners=False) lands on this one."""
        shape = tuple(int(np.ceil(n / factor)) for n in self.shape)
        origin = self.origin + (factor - 1) / 2 * self.spacing
        return Grid(origin, self.spacing * factor, shape)


def slices(lo: tuple[int, ...], hi: tuple[int, ...]) -> tuple[slice, slice, slice]:
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=False))  # type: ignore[return-value]


def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """3x3 rotation about a unit axis (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    angle = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


@dataclass(frozen=True)
class Convention:
    space: str  # "LPS" or "RAS": the header convention the file is written in
    perm: tuple[int, int, int]  # new array axis a = generation axis perm[a]
    flips: tuple[bool, bool, bool]  # new axis a runs backwards
    tilt: np.ndarray  # 3x3 rotation applied to the whole grid (a small oblique tilt), identity if none

    def describe(self) -> dict:
        axes = "RAS" if self.space == "RAS" else "LPS"
        names = []
        for a in range(3):
            letter = "RAS"[self.perm[a]]
            flipped = self.flips[a]
            names.append({"R": "L", "A": "P", "S": "I"}[letter] if flipped else letter)
        tilt = float(np.degrees(np.arccos(np.clip((np.trace(self.tilt) - 1) / 2, -1, 1))))
        return {"space": axes, "axes": "".join(names), "tilt_degrees": round(tilt, 2)}


def pick_convention(rng: np.random.Generator, name: str) -> Convention:
    if name == "ras_identity":
        return Convention("RAS", (0, 1, 2), (False, False, False), np.eye(3))
    if name == "lps_standard":  # what most scanners write: i -> L, j -> P, k -> S
        return Convention("LPS", (0, 1, 2), (True, True, False), np.eye(3))
    if name != "random":
        raise ValueError(f"unknown convention {name!r}")
    space = "LPS" if rng.random() < 0.6 else "RAS"
    perm = (0, 1, 2) if rng.random() < 0.4 else tuple(int(v) for v in rng.permutation(3))
    flips = tuple(bool(v) for v in rng.random(3) < 0.5)
    tilt = np.eye(3)
    if rng.random() < 0.2:
        tilt = rotation(rng.normal(size=3), rng.uniform(1.0, 6.0))
    return Convention(space, perm, flips, tilt)  # type: ignore[arg-type]


def apply_convention(array: np.ndarray, ijk_to_ras: np.ndarray, conv: Convention) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels with axes permuted/flipped and the matching ijk->RAS matrix (exact)."""
    old_shape = array.shape
    out = np.transpose(array, conv.perm)
    # old_ijk = T @ new_ijk (homogeneous): old axis perm[a] takes new index a, reversed if flipped.
    t = np.zeros((4, 4))
    t[3, 3] = 1
    for a, old in enumerate(conv.perm):
        if conv.flips[a]:
            t[old, a] = -1
            t[old, 3] = old_shape[old] - 1
        else:
            t[old, a] = 1
    flip_axes = tuple(a for a in range(3) if conv.flips[a])
    if flip_axes:
        out = np.flip(out, flip_axes)
    matrix = ijk_to_ras @ t
    tilt = np.eye(4)
    tilt[:3, :3] = conv.tilt
    return np.ascontiguousarray(out), tilt @ matrix
