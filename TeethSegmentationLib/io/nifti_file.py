"""NIfTI (.nii, .nii.gz) files: the affine in millimetres, stored voxel types kept."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.io.format_checks import (
    check_plausible_geometry,
    check_plausible_size,
    check_scalar_3d,
    native,
    short_error,
    writable,
)
from TeethSegmentationLib.io.volume import Volume


def read_nifti(path: Path) -> Volume:
    """The header first (affine, unit and size checked), then the voxels."""
    image, matrix = _checked_header(path)
    try:
        data = _nifti_data(image)
    except Exception as e:  # nibabel raises many kinds (ImageFileError, EOFError, zlib.error, ...)
        raise InputError(
            f"{path.name} could not be read as NIfTI ({short_error(e)}); check that the file is complete."
        ) from e
    data = check_scalar_3d(np.asarray(data), path)
    meta = {"format": "nifti", "source": str(path), "header_space": "RAS"}
    return Volume(native(data), matrix, "RAS", meta)


def inspect_nifti(path: Path) -> None:
    """Every check ``read_nifti`` makes before reading voxels."""
    _checked_header(path)


def _checked_header(path: Path) -> tuple[Any, np.ndarray]:
    """(nibabel image with its voxels not yet read, RAS matrix in mm), every field checked."""
    nib = _import_nibabel()
    try:
        image = nib.load(str(path))
        shape = tuple(int(s) for s in image.shape)
    except Exception as e:
        raise InputError(
            f"{path.name} could not be read as NIfTI ({short_error(e)}); check that the file is complete."
        ) from e
    check_scalar_3d(np.broadcast_to(np.zeros((), image.get_data_dtype()), shape), path)
    check_plausible_size(shape, path)
    matrix = _affine_mm(image, path)
    check_plausible_geometry(matrix, shape, path, _affine_field(image.header))
    return image, matrix


def _stored_pixdim(path: Path) -> list[float]:
    """pixdim[1..3] as stored: nibabel's header reader replaces zero or negative values before anyone sees them."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read(_PIXDIM_OFFSET + 16)
    order = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    return [float(v) for v in struct.unpack(order + "3f", raw[_PIXDIM_OFFSET + 4 : _PIXDIM_OFFSET + 16])]


_PIXDIM_OFFSET = 76  # NIfTI-1: float32 pixdim[8] starts here


def _affine_field(header: Any) -> str:
    """The header field nibabel takes the affine from: sform, else qform, else pixdim alone."""
    if int(header.get("sform_code", 0)) > 0:
        return "sform (srow_x/y/z)"
    if int(header.get("qform_code", 0)) > 0:
        return "qform (quatern_b/c/d, qoffset, pixdim)"
    return "pixdim (voxel size)"


def _affine_mm(image: Any, path: Path) -> np.ndarray:
    """The affine in millimetres: the engine works in mm, as Slicer; xyzt units in metres or microns are honoured."""
    header = image.header
    if int(header.get("sform_code", 0)) <= 0:  # nibabel would quietly turn a zero voxel size into 1 mm
        raw = _stored_pixdim(path) + [float(header[k]) for k in ("quatern_b", "quatern_c", "quatern_d") if k in header]
        if not np.isfinite(raw).all() or min(raw[:3]) <= 0:
            raise InputError(
                f"{path.name} has an invalid {_affine_field(header)}: voxel sizes {raw[:3]} must be positive; "
                "re-export the file."
            )
    try:
        matrix = np.array(image.affine, dtype=np.float64)
    except Exception as e:  # a NaN quaternion or pixdim can make nibabel fail while building the affine
        raise InputError(f"{path.name} has an invalid {_affine_field(image.header)}; re-export the file.") from e
    unit = image.header.get_xyzt_units()[0] if hasattr(image.header, "get_xyzt_units") else "mm"
    matrix[:3] *= {"meter": 1000.0, "micron": 0.001}.get(unit, 1.0)
    return matrix


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
