"""Small hostile or unlucky input files, and ``teethseg`` run in-process, for the hostile-input tests.

Every file is tiny on disk: the hostile part is in the header (sizes, geometry, units, paths), or
in a few voxels.
"""

from __future__ import annotations

import gzip
import json
import signal
import struct
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
import torch

from TeethSegmentationLib import cli
from TeethSegmentationLib.io.volume import Volume, make_matrix
from TeethSegmentationLib.nets.model_file import new_model, save_model


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, list[str]]:
    """``teethseg ARGV --events`` in this process: (exit code, the non-empty stderr lines); stdout is JSON
    lines, and a failure's last event is the error with its code."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        code = cli.main(argv)
    finally:
        signal.signal(signal.SIGTERM, handler)
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    if code:
        assert events[-1]["event"] == "error" and events[-1]["code"] == code, events[-1]
    return code, [line for line in err.splitlines() if line.strip()]


def segment(inputs: list[Path | str], out: Path | str, model: Path, *extra: str) -> list[str]:
    return ["segment", *map(str, inputs), "-o", str(out), "--model", str(model), "--device", "cpu", "--events", *extra]


def scan(shape: tuple[int, int, int] = (24, 24, 20), dtype: type = np.int16) -> np.ndarray:
    """Soft tissue with a bright block: real image content on a tiny grid."""
    array = np.full(shape, 200, dtype=dtype)
    array[8:16, 8:16, 6:14] = 2000
    return array


def write_nrrd(path: Path, array: np.ndarray, spacing: float = 0.5, **header: object) -> Path:
    fields = {"space": "left-posterior-superior", "space directions": np.eye(3) * spacing,
              "space origin": np.zeros(3), **header}
    nrrd.write(str(path), array, fields, index_order="F")
    return path


def write_header(path: Path, lines: list[str]) -> Path:
    """A NRRD header written by hand (detached or with a hand-made payload appended by the caller)."""
    path.write_text("NRRD0004\n" + "\n".join(lines) + "\n\n")
    return path


def gzip_bomb(path: Path, side: int) -> Path:
    """A NRRD whose header claims ``side``^3 int16 voxels, with a short gzip stream of zeros."""
    write_header(path, ["type: short", "dimension: 3", "space: left-posterior-superior", f"sizes: {side} {side} {side}",
                        "space directions: (0.2,0,0) (0,0.2,0) (0,0,0.2)", "encoding: gzip",
                        "endian: little"])
    with open(path, "ab") as f:
        f.write(gzip.compress(bytes(1 << 20)))
    return path


def overfull_gzip(path: Path) -> Path:
    """A NRRD whose header says 8^3 voxels while its gzip stream inflates to 64 MB."""
    write_header(path, ["type: short", "dimension: 3", "sizes: 8 8 8", "encoding: gzip", "endian: little"])
    with open(path, "ab") as f:
        f.write(gzip.compress(bytes(64 << 20), compresslevel=9))
    return path


# NIfTI-1 header offsets (bytes): the fields a hostile header bends.
_PIXDIM, _XYZT_UNITS, _QFORM_CODE, _SFORM_CODE, _SROW_X = 76, 123, 252, 254, 280


def write_nifti(path: Path, array: np.ndarray, spacing: float = 0.5) -> Path:
    image = nib.Nifti1Image(array, np.diag([spacing, spacing, spacing, 1.0]))
    image.header.set_xyzt_units("mm")
    nib.save(image, str(path))
    return path


def patch_nifti(path: Path, *, nan_sform: bool = False, singular_qform: bool = False, metres: bool = False) -> Path:
    data = bytearray(path.read_bytes())
    if nan_sform:
        struct.pack_into("<h", data, _SFORM_CODE, 1)
        struct.pack_into("<4f", data, _SROW_X, float("nan"), 0.0, 0.0, 0.0)
    if singular_qform:
        struct.pack_into("<hh", data, _QFORM_CODE, 1, 0)
        struct.pack_into("<f", data, _PIXDIM + 4, 0.0)  # pixdim[1]: the i axis has no length
    if metres:
        data[_XYZT_UNITS] = 1  # NIFTI_UNITS_METER: 0.5 "mm" voxels become 0.5 m
    path.write_bytes(bytes(data))
    return path


def dicom_series(folder: Path, slices: int = 6) -> list[Path]:
    from dicom_writers import write_dicom_series

    volume = Volume(scan((12, 10, slices)), make_matrix(np.eye(3), [0.5, 0.5, 0.5], [0, 0, 0]), space="LPS")
    return write_dicom_series(volume, folder)


def modify_dicom(files: list[Path], **attributes: object) -> None:
    import pydicom

    for file in files:
        dataset = pydicom.dcmread(str(file))
        for name, value in attributes.items():
            setattr(dataset, name, value)
        dataset.save_as(str(file))


def tiny_model(path: Path) -> Path:
    torch.manual_seed(0)
    save_model(new_model(teeth_arch={"start_filters": 2}, types_arch={"start_filters": 2}, patch_size=16), path)
    return path


def model_dict(path: Path, **changes: object) -> Path:
    """A copy of a model file's dict with fields changed ("a.b" reaches into a table), saved as-is."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in changes.items():
        *parents, last = key.split(".")
        target = data
        for parent in parents:
            target = target[parent]
        target[last] = value
    out = path.with_name(f"changed-{len(list(path.parent.iterdir()))}.pt")
    torch.save(data, out)
    return out


def flip_weight_byte(path: Path) -> Path:
    """The model file with one byte flipped inside a stored weight tensor (as on a bad disk or download)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    tensor = data["types"]["state_dict"][sorted(data["types"]["state_dict"])[0]]
    raw = path.read_bytes()
    where = raw.find(tensor.contiguous().numpy().tobytes())
    assert where > 0
    damaged = bytearray(raw)
    damaged[where + 3] ^= 0x40
    out = path.with_name("flipped.pt")
    out.write_bytes(bytes(damaged))
    return out
