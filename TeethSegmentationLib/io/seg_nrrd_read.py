"""Read a Slicer segmentation file (``.seg.nrrd``) as it is, without Slicer: layers, segments, geometry.

Slicer writes one 3-D labelmap when no segments overlap, else a 4-D array whose first axis lists the
layers; each segment is a label value in one layer and carries a name, an optional terminology entry
and an extent (header keys ``SegmentN_ID``, ``_Name``, ``_LabelValue``, ``_Layer``, ``_Tags``). What a
segment *means* (which tooth) is decided elsewhere (``training/corrected_labels.py``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import nrrd
import numpy as np

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.io.format_checks import short_error
from TeethSegmentationLib.io.nrrd_file import _nrrd_header_to_matrix
from TeethSegmentationLib.io.volume import Volume

SEGMENTATION_SUFFIX = ".seg.nrrd"


@dataclass(frozen=True)
class SegmentRecord:
    segment_id: str
    name: str
    label_value: int
    layer: int
    terminology: str = ""


@dataclass
class SegmentationFile:
    layers: np.ndarray  # [L, X, Y, Z] label values, one 3-D labelmap per layer
    ijk_to_ras: np.ndarray  # geometry of the stored (usually cropped) voxels
    segments: list[SegmentRecord]

    def mask(self, segment: SegmentRecord) -> np.ndarray:
        return self.layers[segment.layer] == segment.label_value

    def as_volume(self, array: np.ndarray) -> Volume:
        """A 3-D array on this file's grid as a Volume."""
        return Volume(array, self.ijk_to_ras.copy(), "LPS")


def is_segmentation_file(path: str | Path) -> bool:
    return str(path).lower().endswith(SEGMENTATION_SUFFIX)


def _terminology(tags: str) -> str:
    """The ``TerminologyEntry`` of a ``_Tags`` field such as ``TerminologyEntry:...|Other:x|``."""
    for tag in tags.split("|"):
        key, _, value = tag.partition(":")
        if key == "TerminologyEntry":
            return value
    return ""


def _segments(header: dict, layers: np.ndarray) -> list[SegmentRecord]:
    records = []
    index = 0
    while f"Segment{index}_ID" in header:
        key = f"Segment{index}_"
        try:
            value = int(header.get(key + "LabelValue", index + 1))
            layer = int(header.get(key + "Layer", 0))
        except ValueError:
            value, layer = -1, -1
        records.append(
            SegmentRecord(
                str(header[key + "ID"]),
                str(header.get(key + "Name", header[key + "ID"])),
                value,
                layer if 0 <= layer < len(layers) else -1,
                _terminology(str(header.get(key + "Tags", ""))),
            )
        )
        index += 1
    if not records:  # a plain label map saved as .seg.nrrd: one nameless segment per value
        values = [int(v) for v in np.unique(layers) if v != 0]
        records = [SegmentRecord(f"label_{v}", "", v, 0) for v in values]
    return records


def read_segmentation(path: str | Path) -> SegmentationFile:
    """The layers, segments and geometry of a ``.seg.nrrd``; InputError (one sentence) when unreadable."""
    path = Path(path)
    try:
        data, header = nrrd.read(str(path))
    except (nrrd.NRRDError, OSError, ValueError, EOFError, zlib.error, KeyError, IndexError, TypeError) as error:
        raise InputError(f"{path.name} could not be read as a segmentation ({short_error(error)}).") from None
    directions = header.get("space directions")
    if data.ndim == 4 and directions is not None:
        directions = np.asarray(directions, dtype=np.float64)
        spatial = np.all(np.isfinite(directions), axis=1)
        if spatial.sum() != 3 or spatial[0]:
            raise InputError(f"{path.name} is not a segmentation with layers on its first axis.")
        directions = directions[1:]
    elif data.ndim == 3:
        data = data[None]
    else:
        raise InputError(f"{path.name} holds {data.ndim}-D voxels; a segmentation has 3 (or 4 with layers).")
    matrix, _space = _nrrd_header_to_matrix({**header, "space directions": directions}, path)
    layers = np.asarray(data)
    if layers.dtype.kind not in "iu":
        layers = np.rint(layers).astype(np.int32)
    return SegmentationFile(layers, matrix, _segments(header, layers))
