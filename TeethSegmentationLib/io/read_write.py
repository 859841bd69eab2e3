"""Reading and writing volumes in any supported format: the one entry point above ``Volume`` and DICOM."""

from __future__ import annotations

import os
from pathlib import Path

from TeethSegmentationLib.atomic import atomic_path
from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.io.nifti_file import inspect_nifti, read_nifti, write_nifti
from TeethSegmentationLib.io.nrrd_file import inspect_nrrd, read_nrrd, write_nrrd
from TeethSegmentationLib.io.volume import Volume


def read_volume(path: str | os.PathLike, series_uid: str | None = None) -> Volume:
    """Read a NRRD (.nrrd/.nhdr), NIfTI (.nii/.nii.gz) or DICOM (folder, .dcm, multi-frame) volume in RAS."""
    path, kind = _checked_kind(path, series_uid)
    if kind == "dicom":
        from TeethSegmentationLib.io.dicom import read_dicom  # pydicom is optional: import only when needed

        return read_dicom(path, series_uid)
    volume = read_nrrd(path) if kind == "nrrd" else read_nifti(path)
    volume.meta.setdefault("source", str(path))
    return volume


def inspect_volume(path: str | os.PathLike, series_uid: str | None = None) -> None:
    """Every check ``read_volume`` can make without reading the voxels: a batch is checked before any work."""
    path, kind = _checked_kind(path, series_uid)
    if kind == "dicom":
        from TeethSegmentationLib.io.dicom import inspect_dicom

        inspect_dicom(path, series_uid)
    else:
        (inspect_nrrd if kind == "nrrd" else inspect_nifti)(path)


def _checked_kind(path: str | os.PathLike, series_uid: str | None) -> tuple[Path, str]:
    """The path and its kind ("dicom", "nrrd", "nifti"), refused when missing or when --series cannot apply."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path} does not exist; check the path and try again.")
    kind = _file_kind(path)
    if series_uid is not None and kind != "dicom":
        raise InputError(f"--series picks a DICOM series, but {path.name} is not DICOM; leave --series out.")
    return path, kind


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir():
        return "dicom"
    if not path.is_file():  # a FIFO or a device: opening it could block or never end
        raise InputError(f"{path.name} is not a regular file (a device or FIFO); pick a volume file or DICOM folder.")
    if name.endswith(".dcm") or _has_dicom_magic(path):
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
            write_nrrd(volume, tmp, space, compress)
        else:
            write_nifti(volume, tmp)
    return path
