"""Writing DICOM CT series (single-frame slices or one Enhanced CT multi-frame file) for the tests: only tests
write DICOM, so this lives beside them, not in the engine."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from TeethSegmentationLib.atomic import atomic_path
from TeethSegmentationLib.io.dicom import CT_IMAGE_STORAGE, ENHANCED_CT_IMAGE_STORAGE, _pydicom
from TeethSegmentationLib.io.volume import RAS_TO_LPS, Volume


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
