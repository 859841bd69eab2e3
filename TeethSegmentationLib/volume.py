"""Volume = voxel array + 4x4 IJK-to-RAS matrix; reading, writing, reorienting and resampling.

World coordinates inside the engine are RAS millimetres. Files may be LPS or RAS: the convention
is converted at the edge (read/write) and remembered in ``Volume.space`` so that a label map
written for an input opens in Slicer exactly on top of it. Arrays are indexed [i, j, k] like NRRD.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Volume:
    array: np.ndarray  # [i, j, k]
    ijk_to_ras: np.ndarray  # 4x4, maps (i, j, k, 1) to RAS millimetres
    space: str = "LPS"  # header convention to write back: "LPS" or "RAS"
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. source path, original header fields

    def __post_init__(self) -> None:
        self.ijk_to_ras = np.asarray(self.ijk_to_ras, dtype=np.float64)
        if self.ijk_to_ras.shape != (4, 4):
            raise ValueError("ijk_to_ras must be a 4x4 matrix")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along i, j, k in mm."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def directions(self) -> np.ndarray:
        """3x3 unit column vectors of the i, j, k axes in RAS."""
        return self.ijk_to_ras[:3, :3] / self.spacing

    @property
    def origin(self) -> np.ndarray:
        """RAS position of voxel (0, 0, 0)'s centre."""
        return self.ijk_to_ras[:3, 3].copy()

    def with_array(self, array: np.ndarray) -> Volume:
        """Same geometry and convention, other voxels (e.g. a label map for this image)."""
        if array.shape[:3] != self.array.shape[:3]:
            raise ValueError(f"array shape {array.shape} does not match volume shape {self.array.shape}")
        return Volume(array, self.ijk_to_ras.copy(), self.space, dict(self.meta))

    def ijk_to_ras_points(self, ijk: np.ndarray) -> np.ndarray:
        ijk = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
        return ijk @ self.ijk_to_ras[:3, :3].T + self.ijk_to_ras[:3, 3]

    def ras_to_ijk_points(self, ras: np.ndarray) -> np.ndarray:
        ras = np.atleast_2d(np.asarray(ras, dtype=np.float64))
        return (ras - self.ijk_to_ras[:3, 3]) @ np.linalg.inv(self.ijk_to_ras[:3, :3]).T
