"""DICOM CT/CBCT series as users have them: a folder of slices (any depth) or one multi-frame file.

Slices are grouped by SeriesInstanceUID, sorted along the slice normal, rescaled to stored units
(RescaleSlope/Intercept) and placed with ImagePositionPatient/ImageOrientationPatient (LPS, converted
to RAS here). Outputs for a DICOM input are written as NRRD in LPS, so ``Volume.space`` is "LPS".
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.io.dicom_slices import (
    checked_orientation,
    checked_pixel_spacing,
    checked_positions,
    even_slices,
    sort_slices,
)
from TeethSegmentationLib.io.format_checks import check_plausible_geometry, check_plausible_size
from TeethSegmentationLib.io.volume import RAS_TO_LPS, Volume

log = logging.getLogger(__name__)

# CBCT scanners export as CT, and some as secondary capture (OT) or dental/intra-oral (PX, IO, DX).
CT_LIKE_MODALITIES = {"CT", "OT", "PX", "IO", "DX", ""}
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError as e:
        raise InputError("Reading DICOM needs pydicom; install it with `pip install pydicom`.") from e
    return pydicom


# --------------------------------------------------------------------------------------------- reading


def read_dicom(path: str | os.PathLike, series_uid: str | None = None) -> Volume:
    """A DICOM folder (searched recursively), one of its files, or a multi-frame file -> Volume in RAS."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path} does not exist; check the path and try again.")
    pydicom = _pydicom()
    multiframe, files, folder = _pick_series(pydicom, path, series_uid)
    if multiframe is not None:
        return _multiframe_volume(*_read_pixels(pydicom, multiframe), multiframe)
    return _slices_volume(pydicom, files, folder)


def _pick_series(
    pydicom: Any, path: Path, series_uid: str | None
) -> tuple[Path | None, list[tuple[Path, Any]], Path]:
    """(a multi-frame file or None, the chosen series' (file, header) pairs, its folder), headers checked.

    A single slice picked by the user stands for its whole series."""
    if path.is_file():
        first = _read_header(pydicom, path)
        if first is None:
            raise InputError(f"{path.name} is not a readable DICOM file; pick a DICOM image file or folder.")
        if int(first.get("NumberOfFrames", 1) or 1) > 1:
            _check_modality(first, path)
            _check_frames_size(first, path)
            return path, [], path.parent
        series_uid, path = series_uid or first.get("SeriesInstanceUID"), path.parent
    series = _scan_folder(pydicom, path)
    files = series[_choose_series(series, series_uid, path)]
    if len(files) == 1 and int(files[0][1].get("NumberOfFrames", 1) or 1) > 1:
        _check_frames_size(files[0][1], files[0][0])
        return files[0][0], [], path
    return None, files, path


def _check_frames_size(header: Any, path: Path) -> None:
    """A multi-frame file's voxel count from its header, checked before its pixels are decoded."""
    shape = (int(header.get("Columns", 0) or 0), int(header.get("Rows", 0) or 0), int(header.NumberOfFrames))
    check_plausible_size(shape, path)


def _read_header(pydicom: Any, path: Path) -> Any | None:
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError, AttributeError, KeyError, TypeError):
        return None


def _scan_folder(pydicom: Any, folder: Path) -> dict[str, list[tuple[Path, Any]]]:
    """SeriesInstanceUID -> [(file, header)] of every image file under ``folder``."""
    series: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name.upper() != "DICOMDIR"):
        header = _read_header(pydicom, file)
        if header is not None and "Rows" in header:  # images only: skip reports, DICOMDIR-like files
            series[str(header.get("SeriesInstanceUID", "unknown"))].append((file, header))
    if not series:
        raise InputError(f"No DICOM images were found in {folder}; pick the folder that holds the CT/CBCT slices.")
    return dict(series)


def _describe(uid: str, files: list[tuple[Path, Any]]) -> str:
    header = files[0][1]
    frames = sum(int(h.get("NumberOfFrames", 1) or 1) for _, h in files)
    description = str(header.get("SeriesDescription", "") or "no description")
    return f"{uid} ({header.get('Modality', '?')}, '{description}', {frames} slices)"


def _choose_series(series: dict, series_uid: str | None, folder: Path) -> str:
    """The requested series, the only one, or the only CT-like one; otherwise say which to pick."""
    if series_uid is not None:
        if series_uid not in series:
            listing = "; ".join(_describe(uid, files) for uid, files in series.items())
            raise InputError(f"Series {series_uid} is not in {folder} (found: {listing}); pick one of these UIDs.")
        _check_modality(series[series_uid][0][1], folder)
        return series_uid
    candidates = [uid for uid, files in series.items() if _is_ct_like(files[0][1])]
    if len(series) == 1 or len(candidates) == 1:
        uid = candidates[0] if candidates else next(iter(series))
        _check_modality(series[uid][0][1], folder)
        if len(series) > 1:
            log.info("Using the only CT-like DICOM series %s; ignoring %d other series.", uid, len(series) - 1)
        return uid
    listing = "; ".join(_describe(uid, files) for uid, files in series.items())
    raise InputError(f"{folder} holds {len(series)} DICOM series ({listing}); pick one with --series UID.")


def _is_ct_like(header: Any) -> bool:
    return str(header.get("Modality", "")).upper() in CT_LIKE_MODALITIES


def _check_modality(header: Any, where: Path) -> None:
    if not _is_ct_like(header):
        raise InputError(
            f"The DICOM series in {where.name} is {header.get('Modality')}, not CT/CBCT; "
            "TeethSegmentation needs a CT or cone-beam CT series."
        )


def _orientation(header: Any) -> tuple[np.ndarray, np.ndarray]:
    """Row and column direction cosines (LPS); identity when the file has no ImageOrientationPatient."""
    iop = header.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    return np.array(iop[:3], dtype=np.float64), np.array(iop[3:], dtype=np.float64)


def _pixel_spacing(header: Any) -> tuple[float, float]:
    """(between columns, between rows) in mm: PixelSpacing lists the row spacing first."""
    spacing = header.get("PixelSpacing") or header.get("ImagerPixelSpacing") or [1.0, 1.0]
    return float(spacing[1]), float(spacing[0])


def _slice_thickness(header: Any) -> float:
    return float(header.get("SpacingBetweenSlices") or header.get("SliceThickness") or 1.0)


def _lps_matrix(row: np.ndarray, col: np.ndarray, spacing: tuple[float, float], positions: np.ndarray) -> np.ndarray:
    """ijk->LPS: i along the row (columns), j along the column (rows), k from the first to the last slice."""
    normal = np.cross(row, col)
    matrix = np.eye(4)
    matrix[:3, 0] = row * spacing[0]
    matrix[:3, 1] = col * spacing[1]
    # The step between first and last slice also captures gantry tilt (a sheared but exact grid).
    matrix[:3, 2] = (positions[-1] - positions[0]) / (len(positions) - 1) if len(positions) > 1 else normal
    matrix[:3, 3] = positions[0]
    return matrix


def _rescale(frames: list[np.ndarray], params: list[tuple[float, float]]) -> np.ndarray:
    """Stored values -> units, filled slice by slice (no whole-volume temporaries: CBCTs reach 300 M voxels).

    The integer type is kept when every slope is 1 and every intercept integral; else float32.
    """
    dtype = _integer_dtype(frames, params)
    stack = np.empty((*frames[0].shape, len(frames)), dtype=dtype)
    for k, (frame, (slope, intercept)) in enumerate(zip(frames, params, strict=True)):
        if dtype == np.float32:
            stack[..., k] = frame.astype(np.float32) * np.float32(slope) + np.float32(intercept)
        else:
            stack[..., k] = frame.astype(np.int64) + int(intercept)
    return stack


def _integer_dtype(frames: list[np.ndarray], params: list[tuple[float, float]]) -> np.dtype:
    """The smallest of int16/uint16/int32 holding every rescaled value, or float32."""
    if not all(slope == 1 and float(intercept).is_integer() for slope, intercept in params):
        return np.dtype(np.float32)
    low = min(int(f.min()) + int(b) for f, (_, b) in zip(frames, params, strict=True))
    high = max(int(f.max()) + int(b) for f, (_, b) in zip(frames, params, strict=True))
    for dtype in (np.int16, np.uint16, np.int32):
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.float32)


def _rescale_params(header: Any) -> tuple[float, float]:
    return float(header.get("RescaleSlope", 1) or 1), float(header.get("RescaleIntercept", 0) or 0)


def _finish(array: np.ndarray, lps: np.ndarray, header: Any, source: Path) -> Volume:
    if array.ndim != 3 or 0 in array.shape:
        raise InputError(f"{source.name} does not hold a 3D grey-value volume; pick a CT/CBCT image series.")
    meta = {
        "format": "dicom",
        "source": str(source),
        "header_space": "LPS",
        "series_uid": str(header.get("SeriesInstanceUID", "")),
        "modality": str(header.get("Modality", "")),
        "description": str(header.get("SeriesDescription", "")),
    }
    return Volume(array, RAS_TO_LPS @ lps, "LPS", meta)


def _check_pixels(header: Any, where: Path) -> None:
    if int(header.get("SamplesPerPixel", 1) or 1) != 1:
        raise InputError(f"The DICOM series in {where.name} holds colour images; pick a grey-value CT/CBCT series.")


def _slices_volume(pydicom: Any, files: list[tuple[Path, Any]], where: Path) -> Volume:
    header = files[0][1]
    row, col, spacing, files, positions = _series_geometry(files, where)
    frames, params = [], []
    for file, _ in files:
        dataset, pixels = _read_pixels(pydicom, file)
        frames.append(pixels.T)  # (rows, columns) = [j, i] -> [i, j]
        params.append(_rescale_params(dataset))
    if len({f.shape for f in frames}) > 1:
        raise InputError(f"The DICOM slices in {where.name} differ in size; pick a single CT/CBCT series.")
    return _placed(_rescale(frames, params), row, col, spacing, positions, header, where)


def _series_geometry(files: list[tuple[Path, Any]], where: Path) -> tuple:
    """(row, col, pixel spacing, files sorted along the normal, their positions), every field checked."""
    header = files[0][1]
    _check_pixels(header, where)
    row, col = checked_orientation(*_orientation(header), where)
    spacing = checked_pixel_spacing(_pixel_spacing(header), where)
    positions = np.array([_position(h, n) for n, (_, h) in enumerate(files)], dtype=np.float64)
    order = sort_slices(checked_positions(positions, where), np.cross(row, col), where)
    check_plausible_size((int(header.get("Columns", 0) or 0), int(header.get("Rows", 0) or 0), len(files)), where)
    return row, col, spacing, [files[n] for n in order], positions[order]


def inspect_dicom(path: str | os.PathLike, series_uid: str | None = None) -> None:
    """Every check ``read_dicom`` makes on the headers, without decoding pixels (for checking a batch first)."""
    path = Path(path).expanduser()
    multiframe, files, folder = _pick_series(_pydicom(), path, series_uid)
    if multiframe is not None:
        return
    row, col, spacing, files, positions = _series_geometry(files, folder)
    columns, rows = int(files[0][1].get("Columns", 1) or 1), int(files[0][1].get("Rows", 1) or 1)
    _placed(np.empty((0, 0, len(files)), np.int16), row, col, spacing, positions, files[0][1], folder, (columns, rows))


def _placed(
    stack: np.ndarray, row: np.ndarray, col: np.ndarray, spacing: tuple[float, float], positions: np.ndarray,
    header: Any, where: Path, slice_shape: tuple[int, int] | None = None,
) -> Volume:
    """The sorted slices on an even grid at their true positions, with the checked geometry."""
    stack, count = even_slices(stack, positions, np.cross(row, col), where)
    lps = _lps_matrix(row, col, spacing, np.linspace(positions[0], positions[-1], count))
    if count == 1:
        lps[:3, 2] *= _slice_thickness(header)
    shape = (*(slice_shape or stack.shape[:2]), count)
    check_plausible_geometry(RAS_TO_LPS @ lps, shape, where, "DICOM geometry (PixelSpacing, positions)")
    if slice_shape is not None:  # only inspecting the headers
        return Volume(stack, RAS_TO_LPS @ lps)
    return _finish(stack, lps, header, where)


def _read_pixels(pydicom: Any, file: Path) -> tuple[Any, np.ndarray]:
    """The dataset and its stored pixel values; compressed data needs a decoder plugin."""
    try:
        dataset = pydicom.dcmread(str(file))
        return dataset, np.asarray(dataset.pixel_array)
    except Exception as e:  # pydicom raises RuntimeError/NotImplementedError/ValueError for missing decoders
        raise InputError(
            f"The pixels of {file.name} could not be decoded ({_short(e)}); install a decoder "
            "(`pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg`) or export the series uncompressed."
        ) from e


def _short(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:120] if text else type(error).__name__


def _position(header: Any, index: int) -> list[float]:
    """ImagePositionPatient, or a stack along z by InstanceNumber for files without geometry."""
    ipp = header.get("ImagePositionPatient")
    if ipp is not None and len(ipp) == 3:
        return [float(v) for v in ipp]
    number = int(header.get("InstanceNumber", index) or index)
    return [0.0, 0.0, number * _slice_thickness(header)]


# --------------------------------------------------------------------------------------------- multi-frame


def _frame_item(dataset: Any, frame: int, sequence: str) -> Any | None:
    """A functional-group item for one frame: per-frame if present, else shared."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        items = dataset.get(groups)
        found = getattr(items[index], sequence, None) if items and len(items) > index else None
        if found:
            return found[0]
    return None


def _either(item: Any | None, fallback: Any) -> Any:
    return fallback if item is None else item


def _multiframe_geometry(dataset: Any, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """(row, col, positions, spacing) from functional groups, else from top-level (legacy) attributes."""
    orientation = _either(_frame_item(dataset, 0, "PlaneOrientationSequence"), dataset)
    measures = _either(_frame_item(dataset, 0, "PixelMeasuresSequence"), dataset)
    row, col = _orientation(orientation)
    positions = []
    for f in range(frames):
        plane = _frame_item(dataset, f, "PlanePositionSequence")
        if plane is None:  # legacy multi-frame: equally spaced along the normal from the top-level position
            start = np.array(_position(dataset, 0))
            plane_pos = start + f * _slice_thickness(measures) * np.cross(row, col)
            positions.append(plane_pos)
        else:
            positions.append(np.array(plane.ImagePositionPatient, dtype=np.float64))
    return row, col, np.array(positions), _pixel_spacing(measures)


def _multiframe_volume(dataset: Any, pixels: np.ndarray, source: Path) -> Volume:
    _check_pixels(dataset, source)
    frames = int(dataset.NumberOfFrames)
    row, col, positions, spacing = _multiframe_geometry(dataset, frames)
    row, col = checked_orientation(row, col, source)
    order = sort_slices(checked_positions(positions, source), np.cross(row, col), source)
    pixels = pixels.reshape(frames, int(dataset.Rows), int(dataset.Columns))
    params = [
        _rescale_params(_either(_frame_item(dataset, f, "PixelValueTransformationSequence"), dataset)) for f in order
    ]
    array = _rescale([pixels[f].T for f in order], params)
    return _placed(array, row, col, checked_pixel_spacing(spacing, source), positions[order], dataset, source)
