"""Volume = voxel array + 4x4 IJK-to-RAS matrix; reading, writing, reorienting and resampling.

World coordinates inside the engine are RAS millimetres. Files may be LPS or RAS: the convention
is converted at the edge (read/write) and remembered in ``Volume.space`` so that a label map
written for an input opens in Slicer exactly on top of it. Arrays are indexed [i, j, k] like NRRD.
"""

from __future__ import annotations

import itertools
import logging
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nrrd
import numpy as np
from scipy import ndimage

from TeethSegmentationLib.atomic import atomic_path
from TeethSegmentationLib.errors import InputError

log = logging.getLogger(__name__)

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse: also LPS -> RAS
SLAB_VOXELS = 8_000_000  # output voxels resampled at a time: bounds the temporaries on a 300 M voxel CBCT


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


def make_matrix(directions: np.ndarray, spacing: Sequence[float], origin: Sequence[float]) -> np.ndarray:
    """4x4 ijk->world from unit column directions (3x3), voxel sizes and the first voxel's centre."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(directions, dtype=np.float64) * np.asarray(spacing, dtype=np.float64)
    matrix[:3, 3] = origin
    return matrix


# --------------------------------------------------------------------------------------------- reading

_NRRD_SPACES = {
    "left-posterior-superior": ("LPS", np.diag([-1.0, -1.0, 1.0])),
    "lps": ("LPS", np.diag([-1.0, -1.0, 1.0])),
    "right-anterior-superior": ("RAS", np.eye(3)),
    "ras": ("RAS", np.eye(3)),
    "left-anterior-superior": ("LPS", np.diag([-1.0, 1.0, 1.0])),  # rare; written back as LPS
    "las": ("LPS", np.diag([-1.0, 1.0, 1.0])),
}
_SPATIAL_KINDS = {"domain", "space", "none", "???", ""}
_NOT_A_VOLUME = "open a 3D scalar CT/CBCT volume (NRRD, NIfTI or a DICOM series) instead"


def read_volume(path: str | os.PathLike, series_uid: str | None = None) -> Volume:
    """Read a NRRD (.nrrd/.nhdr), NIfTI (.nii/.nii.gz) or DICOM (folder, .dcm, multi-frame) volume in RAS."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path} does not exist; check the path and try again.")
    kind = _file_kind(path)
    if kind == "dicom":
        from TeethSegmentationLib.dicom import read_dicom  # pydicom is optional: import only when needed

        return read_dicom(path, series_uid)
    volume = _read_nrrd(path) if kind == "nrrd" else _read_nifti(path)
    volume.meta.setdefault("source", str(path))
    return volume


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir() or name.endswith(".dcm") or _has_dicom_magic(path):
        return "dicom"
    if name.endswith((".nrrd", ".nhdr")):
        return "nrrd"
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    raise InputError(
        f"{path.name} has an unsupported file type; use NRRD (.nrrd/.nhdr), NIfTI (.nii/.nii.gz) or a DICOM folder."
    )


def _has_dicom_magic(path: Path) -> bool:
    """DICOM files from scanners often have no extension: recognise the 'DICM' after the 128-byte preamble."""
    if path.suffix.lower() in (".nrrd", ".nhdr", ".nii", ".gz"):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _read_nrrd(path: Path) -> Volume:
    try:
        data, header = nrrd.read(str(path))
    except (nrrd.NRRDError, OSError, ValueError, EOFError, zlib.error, KeyError, IndexError, TypeError) as e:
        raise InputError(
            f"{path.name} could not be read as NRRD ({_short(e)}); check that the file is complete."
        ) from e
    data, header = _nrrd_scalar_axes(data, header, path)
    matrix, space = _nrrd_header_to_matrix(header, path)
    meta = {"format": "nrrd", "source": str(path), "header_space": header.get("space", "")}
    return Volume(_native(data), matrix, space, meta)


def _short(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__


def _nrrd_scalar_axes(data: np.ndarray, header: dict, path: Path) -> tuple[np.ndarray, dict]:
    """Drop singleton non-spatial axes; refuse vector/colour/time axes with a clear message."""
    directions = header.get("space directions")
    kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * data.ndim)]
    spatial = [_nrrd_axis_is_spatial(a, kinds, directions) for a in range(data.ndim)]
    for axis in reversed(range(data.ndim)):
        if not spatial[axis] and data.shape[axis] == 1:
            data = np.squeeze(data, axis=axis)
            kinds.pop(axis)
            spatial.pop(axis)
            if directions is not None:
                directions = np.delete(np.asarray(directions, dtype=np.float64), axis, axis=0)
    for axis, is_spatial in enumerate(spatial):
        if not is_spatial and kinds[axis] not in ("time", "list"):
            raise InputError(
                f"{path.name} holds vector or colour voxels ({data.shape[axis]} components of kind "
                f"'{kinds[axis]}'); {_NOT_A_VOLUME}."
            )
    data = _check_scalar_3d(data, path)
    return data, {**header, "space directions": directions}


def _nrrd_axis_is_spatial(axis: int, kinds: list[str], directions: Any) -> bool:
    if directions is not None:
        return bool(np.all(np.isfinite(np.asarray(directions, dtype=np.float64)[axis])))
    return kinds[axis] in _SPATIAL_KINDS


def _check_scalar_3d(data: np.ndarray, path: Path) -> np.ndarray:
    """The checks every format shares: structured (RGB) voxels, 2D, 4D, empty, complex."""
    if data.dtype.fields is not None or data.dtype.kind == "c":
        raise InputError(f"{path.name} holds colour or complex voxels ({data.dtype}); {_NOT_A_VOLUME}.")
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim < 3:
        raise InputError(f"{path.name} is a {data.ndim}D image {data.shape}, not a 3D volume; {_NOT_A_VOLUME}.")
    if data.ndim > 3:
        raise InputError(f"{path.name} is {data.ndim}D {data.shape} (a time series or vector image); {_NOT_A_VOLUME}.")
    if 0 in data.shape:
        raise InputError(f"{path.name} is empty (shape {data.shape}); {_NOT_A_VOLUME}.")
    if data.dtype == bool:
        data = data.astype(np.uint8)
    return data


def _native(data: np.ndarray) -> np.ndarray:
    """Big-endian files give '>i2' arrays: torch and friends want native byte order."""
    return data if data.dtype.isnative else data.astype(data.dtype.newbyteorder("="))


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
        directions = np.diag(np.where(np.isfinite(spacings) & (spacings != 0), spacings, 1.0))
    directions = np.asarray(directions, dtype=np.float64)
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    if directions.shape != (3, 3) or origin.shape != (3,) or not np.isfinite(origin).all():
        raise InputError(f"{path.name} has a malformed NRRD geometry (space directions/origin); re-export the file.")
    if abs(np.linalg.det(directions)) < 1e-12:
        raise InputError(f"{path.name} has degenerate space directions (zero volume voxels); re-export the file.")
    matrix = np.eye(4)
    matrix[:3, :3] = to_ras @ directions.T  # NRRD rows are the axis vectors: columns of the matrix
    matrix[:3, 3] = to_ras @ origin
    return matrix, space


def _read_nifti(path: Path) -> Volume:
    nib = _import_nibabel()
    try:
        image = nib.load(str(path))
        data = _nifti_data(image)
    except Exception as e:  # nibabel raises many kinds (ImageFileError, EOFError, zlib.error, ...)
        raise InputError(
            f"{path.name} could not be read as NIfTI ({_short(e)}); check that the file is complete."
        ) from e
    data = _check_scalar_3d(np.asarray(data), path)
    unit = image.header.get_xyzt_units()[0] if hasattr(image.header, "get_xyzt_units") else "mm"
    matrix = np.array(image.affine, dtype=np.float64)
    matrix[:3] *= {"meter": 1000.0, "micron": 0.001}.get(unit, 1.0)  # engine works in mm, as Slicer
    meta = {"format": "nifti", "source": str(path), "header_space": "RAS"}
    return Volume(_native(data), matrix, "RAS", meta)


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


# --------------------------------------------------------------------------------------------- writing


def write_volume(
    volume: Volume, path: str | os.PathLike, *, compress: bool = True, reference: Volume | None = None
) -> Path:
    """Write NRRD (.nrrd) or NIfTI (.nii/.nii.gz) atomically, in ``reference``'s (else the volume's) convention."""
    path = Path(path).expanduser()
    name = path.name.lower()
    if not name.endswith((".nrrd", ".nii", ".nii.gz")):
        raise InputError(f"{path.name} has an unsupported output type; name it .nrrd, .nii or .nii.gz.")
    space = (reference or volume).space
    with atomic_path(path) as tmp:
        if name.endswith(".nrrd"):
            _write_nrrd(volume, tmp, space, compress)
        else:
            _write_nifti(volume, tmp)
    return path


def _writable(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return _native(array)


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


def _write_nrrd(volume: Volume, path: Path, space: str, compress: bool) -> None:
    array = _writable(volume.array)
    if array.ndim != 3:
        raise ValueError(f"only 3D volumes can be written, not shape {array.shape}")
    # Level 1: several times faster than 9 on a 300 M voxel scan, files barely bigger.
    nrrd.write(str(path), array, nrrd_header(volume, space, compress), compression_level=1, index_order="F")


def _write_nifti(volume: Volume, path: Path) -> None:
    nib = _import_nibabel()
    array = _writable(volume.array)
    image = nib.Nifti1Image(array, volume.ijk_to_ras, dtype=array.dtype)
    image.set_qform(volume.ijk_to_ras, code=1)  # both forms: readers differ in which one they trust
    image.set_sform(volume.ijk_to_ras, code=1)
    image.header.set_xyzt_units("mm")
    image.header.set_slope_inter(1.0, 0.0)  # integers stay integers: label maps round-trip exactly
    nib.save(image, str(path))


# --------------------------------------------------------------------------------------------- reorienting


@dataclass(frozen=True)
class Reorientation:
    """Result axis ``a`` is source axis ``permutation[a]``, reversed where ``flips[a]``; exact and invertible."""

    permutation: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    source_shape: tuple[int, int, int]

    @property
    def is_identity(self) -> bool:
        return self.permutation == (0, 1, 2) and not any(self.flips)


def ras_reorientation(ijk_to_ras: np.ndarray, shape: Sequence[int]) -> Reorientation:
    """The axis permutation and flips that bring the array axes closest to +R, +A, +S."""
    directions = np.asarray(ijk_to_ras, dtype=np.float64)[:3, :3]
    directions = directions / np.linalg.norm(directions, axis=0)
    best = max(itertools.permutations(range(3)), key=lambda p: sum(abs(directions[a, p[a]]) for a in range(3)))
    flips = tuple(bool(directions[a, best[a]] < 0) for a in range(3))
    return Reorientation(tuple(best), flips, tuple(int(n) for n in shape))  # type: ignore[arg-type]


def apply_reorientation(volume: Volume, r: Reorientation, copy: bool = True) -> Volume:
    """Permute/flip the array (a contiguous copy, or a view when not ``copy``; no interpolation) and adjust
    the matrix to match. A view writes through: a label map pasted into it lands in the source array."""
    if volume.shape != r.source_shape:
        raise ValueError(f"volume shape {volume.shape} is not the reorientation's source shape {r.source_shape}")
    array = np.transpose(volume.array, r.permutation)
    matrix = np.eye(4)
    matrix[:, 3] = volume.ijk_to_ras[:, 3]
    for a, (src, flip) in enumerate(zip(r.permutation, r.flips, strict=True)):
        column = volume.ijk_to_ras[:3, src]
        matrix[:3, a] = -column if flip else column
        if flip:
            array = np.flip(array, axis=a)
            matrix[:3, 3] += column * (r.source_shape[src] - 1)
    meta = {**volume.meta, "reorientation": r}
    return Volume(np.ascontiguousarray(array) if copy else array, matrix, volume.space, meta)


def undo_reorientation(volume: Volume, r: Reorientation) -> np.ndarray:
    """The array of a volume on the reoriented grid, put back in the source's axis order (exact)."""
    array = volume.array
    for a, flip in enumerate(r.flips):
        if flip:
            array = np.flip(array, axis=a)
    array = np.transpose(array, np.argsort(r.permutation))
    if array.shape[:3] != r.source_shape:
        raise ValueError(f"array shape {array.shape} does not undo to the source shape {r.source_shape}")
    return np.ascontiguousarray(array)


def reorient_to_ras(volume: Volume, copy: bool = True) -> Volume:
    """Axes along +R, +A, +S as closely as possible; ``meta['reorientation']`` says how to go back.
    ``copy=False``: a view of the same voxels (no memory for a whole-head scan)."""
    return apply_reorientation(volume, ras_reorientation(volume.ijk_to_ras, volume.shape), copy)


def reorient_like(volume_ras: Volume, original: Volume) -> Volume:
    """Bring a volume on ``reorient_to_ras(original)``'s grid back onto ``original``'s grid exactly."""
    r = ras_reorientation(original.ijk_to_ras, original.shape)
    return Volume(undo_reorientation(volume_ras, r), original.ijk_to_ras.copy(), original.space, dict(original.meta))


# --------------------------------------------------------------------------------------------- resampling


def resample_to_spacing(volume: Volume, spacing_mm: float | Sequence[float], order: int = 1) -> Volume:
    """Same directions and physical extent (centred), new voxel size; float32 for order >= 1, same dtype for 0."""
    new_spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,))
    if np.any(new_spacing <= 0):
        raise ValueError(f"spacing must be positive, not {spacing_mm}")
    old_spacing = volume.spacing
    old_shape = np.asarray(volume.shape)
    new_shape = np.maximum(1, np.round(old_shape * old_spacing / new_spacing)).astype(int)
    scale = new_spacing / old_spacing  # source voxels per output voxel
    start = (old_shape - 1) / 2 - (new_shape - 1) / 2 * scale  # keeps the centre of the extent fixed
    out_to_src = np.eye(4)
    out_to_src[:3, :3] = np.diag(scale)
    out_to_src[:3, 3] = start
    matrix = volume.ijk_to_ras @ out_to_src
    array = _resample_array(volume.array, out_to_src, tuple(new_shape), order, mask_outside=False)
    return Volume(array, matrix, volume.space, dict(volume.meta))


def resample_to_reference(volume: Volume, reference: Volume, order: int = 0, cval: float = 0) -> Volume:
    """``volume`` on ``reference``'s grid (any geometry); outside ``volume``'s extent is ``cval``."""
    out_to_src = np.linalg.inv(volume.ijk_to_ras) @ reference.ijk_to_ras
    array = _resample_array(volume.array, out_to_src, reference.shape, order, mask_outside=True, cval=cval)
    return Volume(array, reference.ijk_to_ras.copy(), reference.space, dict(reference.meta))


def _output_dtype(dtype: np.dtype, order: int) -> np.dtype:
    return np.dtype(dtype) if order == 0 else np.dtype(np.float32)


def _resample_array(
    src: np.ndarray,
    out_to_src: np.ndarray,
    out_shape: Sequence[int],
    order: int,
    mask_outside: bool,
    cval: float = 0,
) -> np.ndarray:
    """Resample slab by slab along the output's first axis, reading only the source box each slab needs."""
    out = np.empty(tuple(out_shape), dtype=_output_dtype(src.dtype, order))
    for lo, hi in _slabs(out.shape):
        out[lo:hi] = _resample_box(src, out_to_src, (lo, 0, 0), (hi - lo, *out.shape[1:]), order, cval, out.dtype)
        if mask_outside:
            out[lo:hi][_outside(src.shape, out_to_src, (lo, 0, 0), out[lo:hi].shape)] = cval
    return out


def _slabs(shape: Sequence[int]) -> Iterator[tuple[int, int]]:
    step = max(1, SLAB_VOXELS // max(1, int(np.prod(shape[1:]))))  # read at call time: tests shrink it
    for lo in range(0, shape[0], step):
        yield lo, min(shape[0], lo + step)


def _resample_box(
    src: np.ndarray,
    out_to_src: np.ndarray,
    out_lo: Sequence[int],
    out_shape: Sequence[int],
    order: int,
    cval: float,
    dtype: np.dtype,
) -> np.ndarray:
    """Output voxels ``out_lo + [0, out_shape)`` from the source box they fall in; 'nearest' at the source edges."""
    box = _source_box(out_to_src, out_lo, out_shape, src.shape, margin=order + 1)
    if box is None:
        return np.full(tuple(out_shape), cval, dtype=dtype)
    src_lo, src_hi = box
    matrix = _translate(-np.asarray(src_lo)) @ out_to_src @ _translate(out_lo)
    linear = matrix[:3, :3]
    if np.allclose(linear, np.diag(np.diag(linear)), rtol=0, atol=1e-12):
        linear = np.diag(linear)  # a 1-D matrix takes scipy's fast zoom/shift path
    sub = src[src_lo[0] : src_hi[0], src_lo[1] : src_hi[1], src_lo[2] : src_hi[2]]
    out = np.empty(tuple(out_shape), dtype=dtype)
    ndimage.affine_transform(sub, linear, matrix[:3, 3], output=out, order=order, mode="nearest", prefilter=False)
    return out


def _translate(offset: Sequence[float]) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = offset
    return matrix


def _box_corners(lo: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """The 8 corner voxels (homogeneous rows) of the box ``lo + [0, shape)``."""
    ranges = [(lo[d], lo[d] + shape[d] - 1) for d in range(3)]
    return np.array([[*c, 1.0] for c in itertools.product(*ranges)], dtype=np.float64)


def _source_box(
    out_to_src: np.ndarray, out_lo: Sequence[int], out_shape: Sequence[int], src_shape: Sequence[int], margin: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Source voxels needed for an output box: bounds of its mapped corners plus ``margin``, clipped."""
    points = (_box_corners(out_lo, out_shape) @ out_to_src.T)[:, :3]
    lo = np.floor(points.min(axis=0)).astype(int) - margin
    hi = np.ceil(points.max(axis=0)).astype(int) + margin + 1
    if np.any(hi <= 0) or np.any(lo >= np.asarray(src_shape)):
        return None
    return np.maximum(lo, 0), np.minimum(hi, src_shape)


def _outside(
    src_shape: Sequence[int], out_to_src: np.ndarray, out_lo: Sequence[int], out_shape: Sequence[int]
) -> np.ndarray:
    """Output voxels whose centre falls outside the source's extent (half a voxel beyond the edge centres)."""
    grids = [np.arange(out_lo[d], out_lo[d] + out_shape[d], dtype=np.float64) for d in range(3)]
    linear = out_to_src[:3, :3]
    if np.array_equal(linear, np.diag(np.diag(linear))):  # axis-aligned: one test per axis, broadcast
        coords = [out_to_src[d, 3] + linear[d, d] * grids[d] for d in range(3)]
        out = [(c < -0.5) | (c >= src_shape[d] - 0.5) for d, c in enumerate(coords)]
        return out[0][:, None, None] | out[1][None, :, None] | out[2][None, None, :]
    outside = np.zeros(tuple(out_shape), dtype=bool)
    for d in range(3):
        coord = out_to_src[d, 3] + sum(
            out_to_src[d, e] * grids[e].reshape([-1 if a == e else 1 for a in range(3)]) for e in range(3)
        )
        outside |= (coord < -0.5) | (coord >= src_shape[d] - 0.5)
    return outside


def resample_labels_to_reference(
    labels: Volume, reference: Volume, mode: Literal["nearest", "onehot"] = "nearest"
) -> Volume:
    """A label map on ``reference``'s grid: nearest neighbour, or the argmax of each label's linearly
    interpolated indicator (smoother edges when the reference grid is finer)."""
    if mode == "nearest":
        return resample_to_reference(labels, reference, order=0, cval=0)
    if mode != "onehot":
        raise ValueError(f"mode must be 'nearest' or 'onehot', not {mode!r}")
    out_to_src = np.linalg.inv(labels.ijk_to_ras) @ reference.ijk_to_ras
    out = np.zeros(reference.shape, dtype=labels.array.dtype)
    boxes = _label_output_boxes(labels.array, out_to_src, reference.shape)
    for lo, hi in _slabs(reference.shape):
        _onehot_slab(labels.array, out_to_src, boxes, out, lo, hi)
    return Volume(out, reference.ijk_to_ras.copy(), reference.space, dict(reference.meta))


def _label_output_boxes(array: np.ndarray, out_to_src: np.ndarray, out_shape: Sequence[int]) -> dict[int, tuple]:
    """Each label value -> (source box with a 1-voxel margin, the output box it can reach)."""
    if array.dtype.kind not in "iu" or (array.dtype.kind == "i" and array.size and array.min() < 0):
        raise ValueError(f"label maps must hold non-negative integers, not {array.dtype}")
    src_to_out = np.linalg.inv(out_to_src)
    boxes = {}
    for value, slices in enumerate(ndimage.find_objects(array), start=1):
        if slices is None:
            continue
        src_lo = np.array([max(0, s.start - 1) for s in slices])
        src_hi = np.minimum([s.stop + 1 for s in slices], array.shape)
        out_box = _source_box(src_to_out, src_lo, src_hi - src_lo, out_shape, margin=1)
        if out_box is not None:
            boxes[value] = (src_lo, src_hi, *out_box)
    return boxes


def _onehot_slab(src: np.ndarray, out_to_src: np.ndarray, boxes: dict, out: np.ndarray, lo: int, hi: int) -> None:
    """Fill ``out[lo:hi]`` with the label whose interpolated indicator wins over the others and background."""
    shape = (hi - lo, *out.shape[1:])
    best = np.zeros(shape, dtype=np.float32)
    total = np.zeros(shape, dtype=np.float32)  # background probability is 1 - total (partition of unity)
    winner = np.zeros(shape, dtype=out.dtype)
    for value, (src_lo, src_hi, out_lo, out_hi) in boxes.items():
        a, b = max(int(out_lo[0]), lo), min(int(out_hi[0]), hi)
        if a >= b:
            continue
        box_lo, box_shape = (a, int(out_lo[1]), int(out_lo[2])), (b - a, *(out_hi[1:] - out_lo[1:]))
        prob = _indicator_on_box(src, value, src_lo, src_hi, out_to_src, box_lo, box_shape)
        if prob is None:
            continue
        region = (slice(a - lo, b - lo), slice(out_lo[1], out_hi[1]), slice(out_lo[2], out_hi[2]))
        wins = prob > best[region]
        best[region][wins] = prob[wins]
        winner[region][wins] = value
        total[region] += prob
    winner[best <= 1 - total] = 0
    winner[_outside(src.shape, out_to_src, (lo, 0, 0), shape)] = 0
    out[lo:hi] = winner


def _indicator_on_box(src, value, src_lo, src_hi, out_to_src, box_lo, box_shape) -> np.ndarray | None:
    """Linear interpolation of ``src == value`` on an output box, reading only the source voxels it needs."""
    need = _source_box(out_to_src, box_lo, box_shape, src.shape, margin=2)
    if need is None:
        return None
    lo, hi = np.maximum(need[0], src_lo), np.minimum(need[1], src_hi)
    if np.any(hi <= lo):
        return None
    indicator = (src[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] == value).view(np.uint8)
    return _resample_box(indicator, _translate(-lo) @ out_to_src, box_lo, box_shape, 1, 0.0, np.dtype(np.float32))


# --------------------------------------------------------------------------------------------- boxes


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """(lo, hi) bounds of the non-zero voxels, ``hi`` exclusive, grown by ``margin`` and clipped; None if empty."""
    mask = np.asarray(mask)
    lo, hi = [], []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=others))
        if hits.size == 0:
            return None
        lo.append(max(0, int(hits[0]) - margin))
        hi.append(min(mask.shape[axis], int(hits[-1]) + 1 + margin))
    return np.array(lo), np.array(hi)


def crop(volume: Volume, lo_ijk: Sequence[int], hi_ijk: Sequence[int]) -> Volume:
    """Sub-volume ``[lo, hi)`` (a copy) whose origin is the RAS centre of voxel ``lo``."""
    lo = np.clip(np.asarray(lo_ijk, dtype=int), 0, volume.shape)
    hi = np.clip(np.asarray(hi_ijk, dtype=int), lo, volume.shape)
    if np.any(hi <= lo):
        raise ValueError(f"empty crop box {lo.tolist()}..{hi.tolist()} of a volume of shape {volume.shape}")
    array = volume.array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].copy()
    return Volume(array, volume.ijk_to_ras @ _translate(lo), volume.space, dict(volume.meta))


def pad(volume: Volume, before: Sequence[int] | int, after: Sequence[int] | int, value: float = 0) -> Volume:
    """Grow the grid by constant voxels on each side; the origin moves so voxels stay in place."""
    before_ = np.broadcast_to(np.asarray(before, dtype=int), (3,))
    after_ = np.broadcast_to(np.asarray(after, dtype=int), (3,))
    array = np.pad(volume.array, list(zip(before_, after_, strict=True)), mode="constant", constant_values=value)
    return Volume(array, volume.ijk_to_ras @ _translate(-before_), volume.space, dict(volume.meta))


def paste(part: Volume, reference: Volume, lo_ijk: Sequence[int], fill: float = 0) -> Volume:
    """``part`` (cropped at ``lo_ijk`` from ``reference``'s grid) placed back into a full grid filled with ``fill``."""
    lo = np.asarray(lo_ijk, dtype=int)
    hi = lo + np.asarray(part.shape)
    if np.any(lo < 0) or np.any(hi > np.asarray(reference.shape)):
        raise ValueError(f"part of shape {part.shape} at {lo.tolist()} does not fit in {reference.shape}")
    array = np.full(reference.shape, fill, dtype=part.array.dtype)
    array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = part.array
    return Volume(array, reference.ijk_to_ras.copy(), reference.space, dict(reference.meta))
