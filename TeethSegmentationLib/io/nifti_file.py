"""NIfTI (.nii, .nii.gz) files: the affine in millimetres, stored voxel types kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.io.format_checks import check_scalar_3d, native, short_error, writable
from TeethSegmentationLib.io.volume import Volume


def read_nifti(path: Path) -> Volume:
    nib = _import_nibabel()
    try:
        image = nib.load(str(path))
        data = _nifti_data(image)
    except Exception as e:  # nibabel raises many kinds (ImageFileError, EOFError, zlib.error, ...)
        raise InputError(
            f"{path.name} could not be read as NIfTI ({short_error(e)}); check that the file is complete."
        ) from e
    data = check_scalar_3d(np.asarray(data), path)
    unit = image.header.get_xyzt_units()[0] if hasattr(image.header, "get_xyzt_units") else "mm"
    matrix = np.array(image.affine, dtype=np.float64)
    matrix[:3] *= {"meter": 1000.0, "micron": 0.001}.get(unit, 1.0)  # engine works in mm, as Slicer
    meta = {"format": "nifti", "source": str(path), "header_space": "RAS"}
    return Volume(native(data), matrix, "RAS", meta)


def _nifti_data(image: Any) -> np.ndarray:
    """Voxels in stored type, or float32 when scl_slope/scl_inter scale them (nibabel would give float64)."""
    proxy = image.dataobj
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    if not hasattr(proxy, "get_unscaled") or (slope == 1 and inter == 0):
        return np.asarray(proxy)
    data = np.asarray(proxy.get_unscaled()).astype(np.float32)
    data *= np.float32(slope)
    data += np.float32(inter)
    return data


def _import_nibabel() -> Any:
    try:
        import nibabel
    except ImportError as e:
        raise InputError("Reading or writing NIfTI needs nibabel; install it with `pip install nibabel`.") from e
    return nibabel


def write_nifti(volume: Volume, path: Path) -> None:
    nib = _import_nibabel()
    array = writable(volume.array)
    image = nib.Nifti1Image(array, volume.ijk_to_ras, dtype=array.dtype)
    image.set_qform(volume.ijk_to_ras, code=1)  # both forms: readers differ in which one they trust
    image.set_sform(volume.ijk_to_ras, code=1)
    image.header.set_xyzt_units("mm")
    image.header.set_slope_inter(1.0, 0.0)  # integers stay integers: label maps round-trip exactly
    nib.save(image, str(path))
