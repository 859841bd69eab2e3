"""Checks and conversions every file format shares: 3D scalar voxels, native byte order, short errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from TeethSegmentationLib.errors import InputError

NOT_A_VOLUME = "open a 3D scalar CT/CBCT volume (NRRD, NIfTI or a DICOM series) instead"


def short_error(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__


def check_scalar_3d(data: np.ndarray, path: Path) -> np.ndarray:
    """The checks every format shares: structured (RGB) voxels, 2D, 4D, empty, complex."""
    if data.dtype.fields is not None or data.dtype.kind == "c":
        raise InputError(f"{path.name} holds colour or complex voxels ({data.dtype}); {NOT_A_VOLUME}.")
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim < 3:
        raise InputError(f"{path.name} is a {data.ndim}D image {data.shape}, not a 3D volume; {NOT_A_VOLUME}.")
    if data.ndim > 3:
        raise InputError(f"{path.name} is {data.ndim}D {data.shape} (a time series or vector image); {NOT_A_VOLUME}.")
    if 0 in data.shape:
        raise InputError(f"{path.name} is empty (shape {data.shape}); {NOT_A_VOLUME}.")
    if data.dtype == bool:
        data = data.astype(np.uint8)
    return data


def native(data: np.ndarray) -> np.ndarray:
    """Big-endian files give '>i2' arrays: torch and friends want native byte order."""
    return data if data.dtype.isnative else data.astype(data.dtype.newbyteorder("="))


def writable(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return native(array)


# Limits no real dental or head scan meets: the largest CBCT fields of view are about 25 cm, a head and
# neck CT about 45 cm; the finest large CBCT grids hold under 10^9 voxels. A header beyond them is
# damaged or hostile, and honouring it would allocate tens of gigabytes before anything is checked.
MAX_EXTENT_MM = 600.0
MAX_VOLUME_MM3 = 32e6  # a 32 cm cube: segmenting 31 litres peaked at 2.2 GB, 61 litres at 2.6 GB
MAX_VOXELS = 1_500_000_000


def check_plausible_size(shape: tuple[int, ...] | np.ndarray, path: Path, components: int = 1) -> None:
    """Refuse a header whose voxel count would need more memory than any real scan (before reading voxels)."""
    voxels = int(np.prod(np.asarray(shape, dtype=np.int64), dtype=np.int64)) * max(1, components)
    if voxels > MAX_VOXELS:
        raise InputError(
            f"{path.name} claims {voxels:,} voxels {tuple(int(s) for s in shape)}, more than any CBCT scan "
            f"({MAX_VOXELS:,} at most); check the file, or crop and downsample it first."
        )


def check_plausible_geometry(matrix: np.ndarray, shape: tuple[int, ...], path: Path, field: str) -> None:
    """The 4x4 ijk->RAS matrix is finite and invertible, and the field of view fits a head (``field`` names it)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if not np.isfinite(matrix).all():
        raise InputError(f"{path.name} has a non-finite (NaN or infinite) {field}; re-export the file.")
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    if np.any(spacing <= 0) or abs(np.linalg.det(matrix[:3, :3])) <= 1e-12 * float(np.prod(spacing)):
        raise InputError(f"{path.name} has a singular {field} (zero or parallel voxel axes); re-export the file.")
    extent = spacing * np.asarray(shape[:3], dtype=np.float64)
    if np.any(extent > MAX_EXTENT_MM) or float(np.prod(extent)) > MAX_VOLUME_MM3:
        raise InputError(
            f"{path.name} spans {' x '.join(f'{e:.0f}' for e in extent)} mm by its {field}, more than any head "
            f"scan ({MAX_EXTENT_MM:.0f} mm a side, {MAX_VOLUME_MM3 / 1e6:.0f} litres at most); check the voxel "
            "size and its unit."
        )
