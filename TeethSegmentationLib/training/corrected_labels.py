"""A user's corrected segmentation, in whatever state it was left, -> an FDI label map to learn from.

Which tooth a segment is (``segment_number``):

1. A segment named as we name them (``"11 upper right central incisor"``) carries its number three
   times: name, terminology, label value. The one that differs from the other two is the user's
   edit and wins (a name typed in our style, a terminology picked, a label value changed); two
   different edits make the segment ambiguous, and it is left out.
2. Any other name that says a tooth (``"21"``, ``"tooth 21"``, ``"UL1"``, ``"upper left central
   incisor"``) wins: renaming is how a user corrects a number in Segment Editor, and a renamed
   segment keeps its old label value.
3. Else the terminology's SNOMED tooth code, else an FDI-valued label value.

Everything else is left out with a warning: segments that are no tooth (``"implant"``, ``"caries"``,
``"Mandible"``), ambiguous ones, empty ones. Their voxels are *unknown*, not background: the model's
own prediction fills them (``fill_unlabelled``), so a caries segment painted over a tooth does not
teach a hole. Overlapping tooth segments: the later segment (drawn on top in Slicer) keeps the voxel.
Two segments with one number are joined. A case with no numbered tooth at all cannot be used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from TeethSegmentationLib import segment_fdi
from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.fdi import FDI_NUMBERS, is_fdi, segment_name
from TeethSegmentationLib.io.read_write import read_volume
from TeethSegmentationLib.io.resample import resample_to_reference
from TeethSegmentationLib.io.seg_nrrd_read import SegmentationFile, SegmentRecord, read_segmentation
from TeethSegmentationLib.io.volume import Volume
from TeethSegmentationLib.training.dataset import canonical_labels

OUR_NAMES = {segment_name(n): n for n in FDI_NUMBERS}
UNKNOWN = 255  # marks voxels of left-out segments until the model's prediction fills them
FILL_MAX_OVERLAP = 0.1  # a predicted tooth is "not labelled by the user" when this little of it is


@dataclass
class CorrectedLabels:
    fdi: np.ndarray  # uint8 FDI numbers on the image grid; UNKNOWN where a left-out segment lies
    warnings: list[str] = field(default_factory=list)

    @property
    def teeth(self) -> list[int]:
        return [int(v) for v in np.unique(self.fdi) if is_fdi(int(v))]


def segment_number(record: SegmentRecord) -> int | None:
    """The FDI number a user means by this segment (module doc), or None."""
    by_terminology = segment_fdi.fdi_from_terminology(record.terminology)
    by_value = record.label_value if is_fdi(record.label_value) else None
    ours = OUR_NAMES.get(" ".join(record.name.split()))
    if ours is not None:
        if by_terminology is not None and by_terminology == by_value:
            return ours  # terminology and label value agree with each other: the name is the edit
        edits = {v for v in (by_terminology, by_value) if v is not None and v != ours}
        return ours if not edits else (edits.pop() if len(edits) == 1 else None)
    by_name = segment_fdi.fdi_from_name(record.name)
    if by_name is not None:
        return by_name
    if segment_fdi.is_non_tooth(record.name):
        return None
    return by_terminology if by_terminology is not None else by_value


def _left_out_reason(record: SegmentRecord) -> str:
    if segment_fdi.is_non_tooth(record.name):
        return "not a tooth"
    if OUR_NAMES.get(" ".join(record.name.split())) is not None:
        return "its terminology and label value name different teeth"
    return "no FDI number in its name, terminology or label value"


def _paint(segmentation: SegmentationFile, case: str) -> tuple[np.ndarray, list[str]]:
    """uint8 FDI map on the segmentation's own grid (UNKNOWN for left-out segments) and the warnings."""
    out = np.zeros(segmentation.layers.shape[1:], np.uint8)
    warnings, left_out, empty, seen = [], [], [], {}
    overlap = 0
    for record in segmentation.segments:
        mask = segmentation.mask(record) if record.layer >= 0 else np.zeros(out.shape, bool)
        if not mask.any():
            empty.append(record.name or record.segment_id)
            continue
        number = segment_number(record)
        if number is None:
            left_out.append(f"'{record.name or record.segment_id}' ({_left_out_reason(record)})")
            out[mask & (out == 0)] = UNKNOWN
            continue
        seen.setdefault(number, []).append(record.name)
        overlap += int((mask & (out != 0) & (out != UNKNOWN) & (out != number)).sum())
        out[mask] = number
    if left_out:
        warnings.append(f"Case '{case}': left out {', '.join(left_out)}; the model's own result fills their voxels.")
    if empty:
        warnings.append(f"Case '{case}': empty segment(s) {', '.join(repr(n) for n in empty)} ignored.")
    for number, names in sorted(seen.items()):
        if len(names) > 1:
            warnings.append(f"Case '{case}': segments {', '.join(map(repr, names))} are all tooth {number}; joined.")
    if overlap:
        warnings.append(f"Case '{case}': {overlap} voxels lie in two tooth segments; the later segment keeps them.")
    return out, warnings


def _on_grid(array: np.ndarray, ijk_to_ras: np.ndarray, image: Volume) -> np.ndarray:
    """A label array of another grid on the image's grid: pasted when it is a shifted sub-grid, else resampled."""
    to_image = np.linalg.inv(image.ijk_to_ras) @ ijk_to_ras
    offset = np.rint(to_image[:3, 3]).astype(int)
    if np.allclose(to_image[:3, :3], np.eye(3), atol=1e-4) and np.allclose(to_image[:3, 3], offset, atol=1e-3):
        out = np.zeros(image.shape, np.uint8)
        lo, hi = np.maximum(offset, 0), np.minimum(offset + np.asarray(array.shape), image.shape)
        if np.all(hi > lo):
            src = tuple(slice(int(a - o), int(b - o)) for a, b, o in zip(lo, hi, offset, strict=True))
            out[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))] = array[src]
        return out
    moved = resample_to_reference(Volume(array, ijk_to_ras, "RAS"), image, order=0)
    return np.asarray(moved.array, np.uint8)


def read_corrected_labels(path: Path, image: Volume, case: str, label_table: str | None = None) -> CorrectedLabels:
    """The user's labels of ``image`` from a ``.seg.nrrd`` (segments as above) or an FDI label map."""
    if str(path).lower().endswith(".seg.nrrd"):
        segmentation = read_segmentation(path)
        painted, warnings = _paint(segmentation, case)
        labels = CorrectedLabels(_on_grid(painted, segmentation.ijk_to_ras, image), warnings)
    else:
        volume = read_volume(path)
        array, kind = canonical_labels(volume.array, "auto" if label_table else "fdi", label_table)
        if kind != "fdi":
            raise InputError(f"Case '{case}': its labels are not FDI tooth numbers; fine-tuning needs them.")
        labels = CorrectedLabels(_on_grid(array, volume.ijk_to_ras, image))
    if not labels.teeth:
        raise InputError(
            f"Case '{case}' has no segment that names an FDI tooth; rename each tooth segment to start with its "
            "number (e.g. '11 upper right central incisor' or 'tooth 11')."
        )
    return labels


def fill_unlabelled(labels: CorrectedLabels, predicted: np.ndarray, case: str) -> CorrectedLabels:
    """Where the user said nothing, use the model's own prediction instead of teaching background.

    Unknown voxels (left-out segments) take the predicted label. A predicted tooth whose number the
    user did not use and that lies (almost) outside the user's teeth is added where the user's map is
    empty: a partly corrected case then teaches only what the user changed. The user's own voxels are
    never overwritten.
    """
    out = labels.fdi.copy()
    unknown = out == UNKNOWN
    out[unknown] = predicted[unknown]
    user_teeth = np.isin(labels.fdi, FDI_NUMBERS)
    added = []
    for number in (int(v) for v in np.unique(predicted)):
        if not is_fdi(number) or number in labels.teeth:
            continue
        mask = predicted == number
        if user_teeth[mask].mean() < FILL_MAX_OVERLAP:
            out[mask & (out == 0)] = number
            added.append(number)
    warnings = list(labels.warnings)
    if added:
        warnings.append(
            f"Case '{case}': teeth {', '.join(map(str, added))} are not in your segmentation; the model's own "
            "result is used for them instead of teaching background."
        )
    return CorrectedLabels(out, warnings)


def user_teeth_only(labels: CorrectedLabels) -> np.ndarray:
    """The user's teeth alone (unknown voxels to 0): the truth of the held-back figure."""
    return np.where(labels.fdi == UNKNOWN, 0, labels.fdi).astype(np.uint8)
