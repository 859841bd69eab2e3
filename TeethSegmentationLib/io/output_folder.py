"""The output folder of a run, checked before any work (a bad folder is one sentence, never a lost computation),
and the name a scan's outputs take in it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from TeethSegmentationLib.errors import InputError

MIN_FREE_BYTES = 16 * 1024 * 1024
NAME_SUFFIXES = (".nii.gz", ".nrrd", ".nhdr", ".nii", ".dcm")


def check_output_folder(folder: str | os.PathLike) -> Path:
    """The output folder, refused before any work if it cannot take the outputs (nothing is created here)."""
    if not str(folder).strip():
        raise InputError("The output folder is an empty string; give a folder with --output.")
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"The output {folder} is an existing file, not a folder; give a folder with --output.")
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"The output folder {folder} cannot be written ({existing} is read-only); pick another one.")
    if shutil.disk_usage(existing).free < MIN_FREE_BYTES:
        raise InputError(f"The disk holding {folder} is full; free some space or pick another output folder.")
    if existing == folder:
        try:
            tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-").close()
        except OSError as error:
            raise InputError(f"The output folder {folder} cannot be written ({error.strerror}); use another.") from None
    return folder


def output_name(path: str | os.PathLike) -> str:
    """``DIR/NAME.nrrd`` (or .nii.gz, .nii, .nhdr) -> NAME; a DICOM folder -> the folder's name."""
    name = Path(path).name
    for suffix in NAME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name
