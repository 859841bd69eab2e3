"""DICOM CT/CBCT series as users have them: a folder of slices (any depth) or one multi-frame file.

Slices are grouped by SeriesInstanceUID, sorted along the slice normal, rescaled to stored units
(RescaleSlope/Intercept) and placed with ImagePositionPatient/ImageOrientationPatient (LPS, converted
to RAS here). Outputs for a DICOM input are written as NRRD in LPS, so ``Volume.space`` is "LPS".
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from TeethSegmentationLib.atomic import atomic_path
from TeethSegmentationLib.errors import InputError
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
    if path.is_file():
        first = _read_header(pydicom, path)
        if first is None:
            raise InputError(f"{path.name} is not a readable DICOM file; pick a DICOM image file or folder.")
        if int(first.get("NumberOfFrames", 1) or 1) > 1:
            _check_modality(first, path)
            return _multiframe_volume(*_read_pixels(pydicom, path), path)
        series_uid = series_uid or first.get("SeriesInstanceUID")  # one slice picked: load its whole series
        path = path.parent
    series = _scan_folder(pydicom, path)
    uid = _choose_series(series, series_uid, path)
    files = series[uid]
    if len(files) == 1 and int(files[0][1].get("NumberOfFrames", 1) or 1) > 1:
        return _multiframe_volume(*_read_pixels(pydicom, files[0][0]), files[0][0])
    return _slices_volume(pydicom, files, path)


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


def _sort_slices(positions: np.ndarray, normal: np.ndarray, where: Path) -> np.ndarray:
    """Order along the slice normal; two slices at one position mean several acquisitions mixed up."""
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    steps = np.diff(distance[order])
    if steps.size and np.min(steps) < 1e-4:
        raise InputError(
            f"The DICOM series in {where.name} has several slices at the same position; "
            "export one acquisition per series (or pick a single series with --series UID)."
        )
    if steps.size > 1 and np.ptp(steps) > 0.1 * np.median(steps):
        log.warning("DICOM slice spacing varies from %.3g to %.3g mm; using the mean.", steps.min(), steps.max())
    return order


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
    _check_pixels(header, where)
    row, col = _orientation(header)
    positions = np.array([_position(h, n) for n, (_, h) in enumerate(files)], dtype=np.float64)
    order = _sort_slices(positions, np.cross(row, col), where)
    files, positions = [files[n] for n in order], positions[order]
    frames, params = [], []
    for file, _ in files:
        dataset, pixels = _read_pixels(pydicom, file)
        frames.append(pixels.T)  # (rows, columns) = [j, i] -> [i, j]
        params.append(_rescale_params(dataset))
    if len({f.shape for f in frames}) > 1:
        raise InputError(f"The DICOM slices in {where.name} differ in size; pick a single CT/CBCT series.")
    lps = _lps_matrix(row, col, _pixel_spacing(header), positions)
    if len(files) == 1:
        lps[:3, 2] *= _slice_thickness(header)
    return _finish(_rescale(frames, params), lps, header, where)


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
    order = _sort_slices(positions, np.cross(row, col), source)
    pixels = pixels.reshape(frames, int(dataset.Rows), int(dataset.Columns))
    params = [
        _rescale_params(_either(_frame_item(dataset, f, "PixelValueTransformationSequence"), dataset)) for f in order
    ]
    array = _rescale([pixels[f].T for f in order], params)
    return _finish(array, _lps_matrix(row, col, spacing, positions[order]), dataset, source)


# --------------------------------------------------------------------------------------------- writing


def _new_dataset(pydicom: Any, sop_class: str, volume: Volume, series_uid: str, modality: str, description: str):
    """A minimal but valid CT/Enhanced CT dataset with the patient/study/series modules filled in."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality = "Phantom", "PHANTOM", modality
    ds.StudyInstanceUID = volume.meta.get("study_uid") or generate_uid()
    ds.SeriesInstanceUID, ds.SeriesDescription, ds.SeriesNumber = series_uid, description, 1
    ds.FrameOfReferenceUID = generate_uid()
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def _int16_slices(volume: Volume) -> np.ndarray:
    array = np.rint(np.asarray(volume.array, dtype=np.float64))
    if array.min() < -32768 or array.max() > 32767:
        raise ValueError("write_dicom_series stores int16 voxels; rescale the volume into -32768..32767 first")
    return array.astype(np.int16)


def _save(ds: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        ds.save_as(str(tmp), enforce_file_format=True)


def _geometry_tags(volume: Volume) -> tuple[list[float], list[float], np.ndarray]:
    """ImageOrientationPatient, PixelSpacing (row spacing first) and the ijk->LPS matrix."""
    lps = RAS_TO_LPS @ volume.ijk_to_ras
    spacing = volume.spacing
    iop = [*(lps[:3, 0] / spacing[0]), *(lps[:3, 1] / spacing[1])]
    return _ds(iop), _ds([spacing[1], spacing[0]]), lps


def _ds(values: Sequence[float]) -> list[Any]:
    """Decimal strings fit in 16 characters: let pydicom round them as precisely as that allows."""
    from pydicom.valuerep import DSfloat

    return [DSfloat(float(v), auto_format=True) for v in values]


def write_dicom_series(
    volume: Volume,
    folder: str | os.PathLike,
    series_uid: str | None = None,
    modality: str = "CT",
    description: str = "TeethSegmentation phantom",
) -> list[Path]:
    """One single-frame CT Image Storage file per k slice (int16, slope 1, intercept 0); returns the files."""
    pydicom = _pydicom()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or pydicom.uid.generate_uid()
    iop, pixel_spacing, lps = _geometry_tags(volume)
    slices = _int16_slices(volume)
    files = []
    for k in range(volume.shape[2]):
        ds = _new_dataset(pydicom, CT_IMAGE_STORAGE, volume, series_uid, modality, description)
        ds.ImageOrientationPatient, ds.PixelSpacing = iop, pixel_spacing
        ds.ImagePositionPatient = _ds(lps[:3, :3] @ [0, 0, k] + lps[:3, 3])
        ds.SliceThickness, ds.InstanceNumber = _ds([volume.spacing[2]])[0], k + 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.ascontiguousarray(slices[:, :, k].T).tobytes()
        files.append(folder / f"slice{k:04d}.dcm")
        _save(ds, files[-1])
    return files


def write_dicom_multiframe(
    volume: Volume,
    path: str | os.PathLike,
    series_uid: str | None = None,
    modality: str = "CT",
    frame_order: Sequence[int] | None = None,
) -> Path:
    """One Enhanced CT file with per-frame positions (``frame_order`` shuffles frames to test sorting)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    pydicom = _pydicom()
    series_uid = series_uid or pydicom.uid.generate_uid()
    ds = _new_dataset(pydicom, ENHANCED_CT_IMAGE_STORAGE, volume, series_uid, modality, "multi-frame phantom")
    iop, pixel_spacing, lps = _geometry_tags(volume)
    order = list(frame_order) if frame_order is not None else list(range(volume.shape[2]))
    shared = Dataset()
    shared.PlaneOrientationSequence = DicomSequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = iop
    shared.PixelMeasuresSequence = DicomSequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = pixel_spacing
    shared.PixelMeasuresSequence[0].SliceThickness = _ds([volume.spacing[2]])[0]
    shared.PixelValueTransformationSequence = DicomSequence([Dataset()])
    shared.PixelValueTransformationSequence[0].RescaleSlope = 1
    shared.PixelValueTransformationSequence[0].RescaleIntercept = 0
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence([_frame_group(lps, k) for k in order])
    ds.NumberOfFrames = len(order)
    slices = _int16_slices(volume)
    ds.PixelData = np.ascontiguousarray(np.stack([slices[:, :, k].T for k in order])).tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(ds, path)
    return path


def _frame_group(lps: np.ndarray, k: int) -> Any:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    position = Dataset()
    position.ImagePositionPatient = _ds(lps[:3, :3] @ [0, 0, k] + lps[:3, 3])
    group = Dataset()
    group.PlanePositionSequence = DicomSequence([position])
    return group
