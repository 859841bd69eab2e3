"""NRRD (.nrrd, .nhdr) files: geometry in any space convention, scalar 3D voxels."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nrrd
import numpy as np

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.io import nrrd_labels
from TeethSegmentationLib.io.format_checks import (
    NOT_A_VOLUME,
    check_plausible_geometry,
    check_plausible_size,
    check_scalar_3d,
    native,
    short_error,
    writable,
)
from TeethSegmentationLib.io.nrrd_data import detached_data_path, open_regular_file, read_nrrd_voxels
from TeethSegmentationLib.io.volume import RAS_TO_LPS, Volume, bounding_box

_NRRD_SPACES = {
    "left-posterior-superior": ("LPS", np.diag([-1.0, -1.0, 1.0])),
    "lps": ("LPS", np.diag([-1.0, -1.0, 1.0])),
    "right-anterior-superior": ("RAS", np.eye(3)),
    "ras": ("RAS", np.eye(3)),
    "left-anterior-superior": ("LPS", np.diag([-1.0, 1.0, 1.0])),  # rare; written back as LPS
    "las": ("LPS", np.diag([-1.0, 1.0, 1.0])),
}
_SPATIAL_KINDS = {"domain", "space", "none", "???", ""}


def read_nrrd(path: Path) -> Volume:
    """Header first (geometry and size checked), then exactly the voxels it describes."""
    with open_regular_file(path, "The file") as fh:
        header, shape, matrix, space = _checked_header(fh, path)
        try:
            data = read_nrrd_voxels(header, fh, path)
        except InputError:
            raise
        except (nrrd.NRRDError, OSError, ValueError, EOFError, KeyError, TypeError) as e:
            raise InputError(
                f"{path.name} could not be read as NRRD ({short_error(e)}); check that the file is complete."
            ) from e
    data = check_scalar_3d(data.reshape(shape), path)
    meta = {"format": "nrrd", "source": str(path), "header_space": header.get("space", "")}
    return Volume(native(data), matrix, space, meta)


def inspect_nrrd(path: Path) -> None:
    """Every check ``read_nrrd`` makes before reading voxels, the data file's place included."""
    with open_regular_file(path, "The file") as fh:
        header, *_ = _checked_header(fh, path)
    data_path = detached_data_path(header, path)
    if data_path is not None:
        open_regular_file(data_path, "Data file").close()


def _checked_header(fh: Any, path: Path) -> tuple[dict, tuple[int, ...], np.ndarray, str]:
    """(header, spatial shape, RAS matrix, space convention), every field checked; no voxel read."""
    header = _read_header(fh, path)
    detached_data_path(header, path)  # where the voxels come from is checked first
    shape, header = _nrrd_scalar_axes(header, path)
    check_scalar_3d(np.broadcast_to(np.zeros((), _voxel_type(header, path)), shape), path)
    matrix, space = _nrrd_header_to_matrix(header, path)
    check_plausible_size(header["sizes"], path)
    check_plausible_geometry(matrix, shape, path, "NRRD geometry (space directions and spacing)")
    return header, shape, matrix, space


def _read_header(fh: Any, path: Path) -> dict[str, Any]:
    if os.fstat(fh.fileno()).st_size == 0:
        raise InputError(f"{path.name} is empty (0 bytes); {NOT_A_VOLUME}.")
    try:
        header = dict(nrrd.read_header(fh))
    except (nrrd.NRRDError, StopIteration, UnicodeDecodeError, ValueError, TypeError, KeyError, IndexError) as e:
        raise InputError(
            f"{path.name} could not be read as NRRD ({short_error(e)}); check that the file is complete."
        ) from e
    for field in ("type", "dimension", "sizes"):
        if field not in header:
            raise InputError(f"{path.name} has no '{field}' field in its NRRD header; re-export the file.")
    if int(header["dimension"]) != len(header["sizes"]):
        raise InputError(f"{path.name} has {len(header['sizes'])} sizes for dimension {header['dimension']}; fix it.")
    return header


def _voxel_type(header: dict, path: Path) -> np.dtype:
    try:
        return nrrd.reader._determine_datatype(header)
    except (nrrd.NRRDError, KeyError, TypeError) as e:
        raise InputError(f"{path.name} has an unknown NRRD voxel type ({short_error(e)}); re-export the file.") from e


def _nrrd_scalar_axes(header: dict, path: Path) -> tuple[tuple[int, ...], dict]:
    """The spatial shape, dropping singleton non-spatial axes; vector/colour/time axes are refused."""
    sizes = [int(s) for s in header["sizes"]]
    kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * len(sizes))]
    directions = header.get("space directions")
    if directions is not None:
        directions = np.asarray(directions, dtype=np.float64)
        if directions.ndim != 2 or directions.shape[0] != len(sizes):
            rows = directions.shape[0] if directions.ndim == 2 else 0
            raise InputError(
                f"{path.name} has {rows} 'space directions' rows for {len(sizes)} axes; re-export the file."
            )
    if len(kinds) != len(sizes):
        kinds = ["domain"] * len(sizes)
    spatial = [_nrrd_axis_is_spatial(a, kinds, directions) for a in range(len(sizes))]
    for axis in reversed(range(len(sizes))):
        if not spatial[axis] and sizes[axis] == 1:
            for values in (sizes, kinds, spatial):
                values.pop(axis)
            if directions is not None:
                directions = np.delete(directions, axis, axis=0)
    for axis, is_spatial in enumerate(spatial):
        if not is_spatial and kinds[axis] not in ("time", "list"):
            raise InputError(
                f"{path.name} holds vector or colour voxels ({sizes[axis]} components of kind "
                f"'{kinds[axis]}'); {NOT_A_VOLUME}."
            )
    if directions is not None and len(sizes) == 3 and not np.isfinite(directions).all():
        raise InputError(f"{path.name} has NaN or infinite values in its 'space directions'; re-export the file.")
    return tuple(sizes), {**header, "space directions": directions}


def _nrrd_axis_is_spatial(axis: int, kinds: list[str], directions: Any) -> bool:
    """A non-spatial kind says so; so does an all-NaN ('none') direction row, unless the kind says spatial."""
    if kinds[axis] not in _SPATIAL_KINDS:
        return False
    if directions is not None and np.isnan(directions[axis]).all():
        return kinds[axis] in ("none", "???", "") and len(kinds) > 3
    return True


def _nrrd_header_to_matrix(header: dict, path: Path) -> tuple[np.ndarray, str]:
    """RAS ijk->world and the header convention; a NRRD without space is LPS with its spacings, like Slicer."""
    space_name = str(header.get("space", "left-posterior-superior")).lower()
    if space_name not in _NRRD_SPACES:
        raise InputError(
            f"{path.name} uses the NRRD space '{space_name}', which has no patient orientation; "
            "save it with space left-posterior-superior or right-anterior-superior."
        )
    space, to_ras = _NRRD_SPACES[space_name]
    directions = header.get("space directions")
    if directions is None:
        spacings = np.asarray(header.get("spacings", [1.0, 1.0, 1.0]), dtype=np.float64)[:3]
        if spacings.shape != (3,) or not np.isfinite(spacings).all() or np.any(spacings <= 0):
            raise InputError(f"{path.name} has invalid 'spacings' {spacings.tolist()}; re-export the file.")
        directions = np.diag(spacings)
    directions = np.asarray(directions, dtype=np.float64)
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    if directions.shape != (3, 3):
        raise InputError(f"{path.name} has 'space directions' of shape {directions.shape}, not 3 x 3; re-export it.")
    if origin.shape != (3,) or not np.isfinite(origin).all():
        raise InputError(f"{path.name} has an invalid 'space origin' {origin.tolist()}; re-export the file.")
    if abs(np.linalg.det(directions)) < 1e-12:
        raise InputError(f"{path.name} has degenerate 'space directions' (zero volume voxels); re-export the file.")
    matrix = np.eye(4)
    matrix[:3, :3] = to_ras @ directions.T  # NRRD rows are the axis vectors: columns of the matrix
    matrix[:3, 3] = to_ras @ origin
    return matrix, space


def nrrd_header(volume: Volume, space: str = "LPS", compress: bool = True) -> dict[str, Any]:
    """NRRD header of ``volume`` in the LPS or RAS convention (directions as rows, as NRRD stores them)."""
    if space not in ("LPS", "RAS"):
        raise ValueError(f"space must be 'LPS' or 'RAS', not {space!r}")
    matrix = RAS_TO_LPS @ volume.ijk_to_ras if space == "LPS" else volume.ijk_to_ras
    return {
        "space": "left-posterior-superior" if space == "LPS" else "right-anterior-superior",
        "space directions": matrix[:3, :3].T.copy(),
        "space origin": matrix[:3, 3].copy(),
        "kinds": ["domain", "domain", "domain"],
        "endian": "little",
        "encoding": "gzip" if compress else "raw",
    }


def write_nrrd(volume: Volume, path: Path, space: str, compress: bool) -> None:
    array = writable(volume.array)
    if array.ndim != 3:
        raise ValueError(f"only 3D volumes can be written, not shape {array.shape}")
    header = nrrd_header(volume, space, compress)
    if compress and nrrd_labels.can_write(array):  # a label map: its zeros are neither reordered nor deflated
        nrrd_labels.write_labels_nrrd(path, array, header, level=1)
        return
    # Level 1: several times faster than 9 on a 300 M voxel scan, files barely bigger.
    nrrd.write(str(path), fortran_ordered(array), header, compression_level=1, index_order="F")


def fortran_ordered(array: np.ndarray) -> np.ndarray:
    """``array`` in Fortran order, the order of NRRD's bytes: pynrrd's ``tobytes(order="F")`` is then a plain
    copy, where on a C-ordered array it is a strided one (1.1 s for a 159 M-voxel head label map). A label
    map is mostly zeros, so only its non-zero box is reordered (0.45 s); other arrays are left to pynrrd."""
    if array.flags.f_contiguous or array.dtype.kind not in "iub":
        return array
    out = np.zeros(array.shape, array.dtype, order="F")
    box = bounding_box(array)
    if box is not None:
        inside = tuple(slice(int(a), int(b)) for a, b in zip(*box, strict=True))
        out[inside] = array[inside]
    return out
