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
