"""Correcting the numbering of a teeth segmentation in the scene: renumber, merge, undo.

Users correct numbers more often than outlines. Every operation keeps a tooth's identity consistent:
name, colour, terminology and label value (= FDI number) change together, so the result exports,
saves and goes to the training cases as it is. A segment's label value is also the voxel value of
its shared labelmap layer, so changing it rewrites those voxels too (Slicer's ``SetLabelValue`` alone
would leave the segment pointing at another tooth's voxels). Imports only ``slicer``, ``vtk`` and
``numpy``; tested with ``slicer-core``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import slicer
from vtk.util import numpy_support

from TeethSegmentationLib.fdi import UNNUMBERED_LABEL_BASE, is_fdi, quadrant, tooth_type
from TeethSegmentationLib.tooth_segments import describe_tooth, segment_ids

UNDO_DEPTH = 10


def _labelmap_name() -> str:
    return slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()


def segment_with_value(segmentation_node: Any, value: int) -> str | None:
    """The ID of the segment whose label value is ``value``, if any."""
    segmentation = segmentation_node.GetSegmentation()
    return next((sid for sid in segment_ids(segmentation_node)
                 if segmentation.GetSegment(sid).GetLabelValue() == value), None)


def _layers(segmentation: Any, ids: list[str]) -> dict[str, tuple[Any, list[str]]]:
    """Shared labelmap layer (by address) -> (image, the given segments in it)."""
    layers: dict[str, tuple[Any, list[str]]] = {}
    for sid in ids:
        image = segmentation.GetSegment(sid).GetRepresentation(_labelmap_name())
        key = image.GetAddressAsString("vtkObject")
        layers.setdefault(key, (image, []))[1].append(sid)
    return layers


def _collides(segmentation: Any, image: Any, moving: list[str], new_values: dict[str, int]) -> bool:
    """Whether a segment that stays in this layer already uses one of the new values."""
    staying = [sid for sid in segment_ids_in_layer(segmentation, image) if sid not in moving]
    used = {segmentation.GetSegment(sid).GetLabelValue() for sid in staying}
    return bool(used & {new_values[sid] for sid in moving})


def segment_ids_in_layer(segmentation: Any, image: Any) -> list[str]:
    """The segments stored in the shared labelmap layer ``image``."""
    name, address = _labelmap_name(), image.GetAddressAsString("vtkObject")
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())
            if segmentation.GetNthSegment(i).GetRepresentation(name).GetAddressAsString("vtkObject") == address]


def _remap_voxels(image: Any, old_to_new: dict[int, int]) -> None:
    scalars = image.GetPointData().GetScalars()
    array = numpy_support.vtk_to_numpy(scalars)
    if max(old_to_new.values()) > np.iinfo(array.dtype).max:
        raise ValueError(f"Label value {max(old_to_new.values())} does not fit the segmentation's voxels.")
    before = array.copy()
    for old, new in old_to_new.items():
        array[before == old] = new
    # The array's modified time reaches the display pipeline; image.Modified() would also make Slicer throw
    # away every segment's surface, though no shape changed.
    scalars.Modified()


def set_label_values(segmentation_node: Any, new_values: dict[str, int]) -> None:
    """Give segments new label values, all at once (swaps included), rewriting their voxels to match."""
    segmentation = segmentation_node.GetSegmentation()
    for image, moving in _layers(segmentation, list(new_values)).values():
        if _collides(segmentation, image, moving, new_values):
            for sid in moving:  # each to a layer of its own, where nothing else can clash
                segmentation.SeparateSegmentLabelmap(sid)
    for image, moving in _layers(segmentation, list(new_values)).values():
        _remap_voxels(image, {segmentation.GetSegment(sid).GetLabelValue(): new_values[sid] for sid in moving})
    for sid, value in new_values.items():
        describe_tooth(segmentation.GetSegment(sid), value)


def _shifted(segmentation_node: Any, segment_id: str, fdi: int, old: int) -> dict[str, int]:
    """Every other tooth of ``fdi``'s quadrant from ``fdi`` on, one number further (away from the old number)."""
    step = -1 if is_fdi(old) and quadrant(old) == quadrant(fdi) and tooth_type(old) > tooth_type(fdi) else 1
    segmentation, moves = segmentation_node.GetSegmentation(), {}
    for sid in segment_ids(segmentation_node):
        value = segmentation.GetSegment(sid).GetLabelValue()
        if sid == segment_id or not is_fdi(value) or quadrant(value) != quadrant(fdi):
            continue
        if (tooth_type(value) - tooth_type(fdi)) * step >= 0:
            moved = value + step
            if not is_fdi(moved):
                raise ValueError(f"Shifting tooth {value} by one leaves the quadrant; renumber it first.")
            moves[sid] = moved
    return moves


def renumber(segmentation_node: Any, segment_id: str, fdi: int, shift_rest: bool = False) -> dict[str, int]:
    """Make a segment tooth ``fdi``: name, colour, terminology and label value. Returns segment ID -> new value.

    If another tooth already has that number the two swap (the other takes this segment's old value), or
    with ``shift_rest`` every other tooth of the quadrant from ``fdi`` on moves one number further. Numbering
    an unnumbered tooth is the same call.
    """
    if not is_fdi(fdi):
        raise ValueError(f"{fdi} is not an FDI tooth number (11-18, 21-28, 31-38, 41-48; primary 51-85).")
    old = segmentation_node.GetSegmentation().GetSegment(segment_id).GetLabelValue()
    if old == fdi:
        return {}
    holder = segment_with_value(segmentation_node, fdi)
    changes = {segment_id: fdi}
    if holder is not None and shift_rest:
        changes.update(_shifted(segmentation_node, segment_id, fdi, old))
    elif holder is not None:
        changes[holder] = old if (is_fdi(old) or old >= UNNUMBERED_LABEL_BASE) else _free_unnumbered(segmentation_node)
    set_label_values(segmentation_node, changes)
    return changes


def _free_unnumbered(segmentation_node: Any) -> int:
    segmentation = segmentation_node.GetSegmentation()
    used = {segmentation.GetSegment(sid).GetLabelValue() for sid in segment_ids(segmentation_node)}
    return next(v for v in range(UNNUMBERED_LABEL_BASE, 256) if v not in used)


def merge_into(segmentation_node: Any, source_id: str, target_id: str) -> None:
    """Add the source segment's voxels to the target tooth and remove the source (e.g. two halves of a molar)."""
    if source_id == target_id:
        raise ValueError("Choose two different segments to merge.")
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    mask = slicer.vtkOrientedImageData()
    if not logic.GetSegmentBinaryLabelmapRepresentation(segmentation_node, source_id, mask, False):
        raise RuntimeError("Slicer could not read the segment to merge.")
    # That is the segment's whole shared layer: keep only its own voxels, as 0/1.
    voxels = numpy_support.vtk_to_numpy(mask.GetPointData().GetScalars())
    segmentation = segmentation_node.GetSegmentation()
    voxels[:] = voxels == segmentation.GetSegment(source_id).GetLabelValue()
    value = segmentation.GetSegment(target_id).GetLabelValue()
    if not logic.SetBinaryLabelmapToSegment(mask, segmentation_node, target_id, logic.MODE_MERGE_MAX):
        raise RuntimeError("Slicer could not merge the segments.")
    segmentation.RemoveSegment(source_id)
    set_label_values(segmentation_node, {target_id: value})  # Slicer may have moved the target to a new layer


class UndoCopies:
    """Copies of a segmentation taken before each correction, newest last (at most ``depth``)."""

    def __init__(self, depth: int = UNDO_DEPTH) -> None:
        self.depth = depth
        self._copies: list[tuple[str, str, Any]] = []  # (node ID, what was done, vtkSegmentation copy)

    def keep(self, segmentation_node: Any, description: str) -> None:
        copy = slicer.vtkSegmentation()
        copy.DeepCopy(segmentation_node.GetSegmentation())
        copy.InvalidateNonSourceRepresentations()  # the labelmaps only: surfaces are rebuilt at undo
        self._copies.append((segmentation_node.GetID(), description, copy))
        del self._copies[:-self.depth]

    def last(self, segmentation_node: Any) -> str | None:
        """What the next undo of this node would revert, if anything."""
        found = [d for node_id, d, _c in self._copies if node_id == segmentation_node.GetID()]
        return found[-1] if found else None

    def undo(self, segmentation_node: Any) -> str | None:
        """Restore the node as it was before its last correction; what was undone, or None."""
        for index in range(len(self._copies) - 1, -1, -1):
            node_id, description, copy = self._copies[index]
            if node_id == segmentation_node.GetID():
                surface = slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
                shown_3d = segmentation_node.GetSegmentation().ContainsRepresentation(surface)
                segmentation_node.GetSegmentation().DeepCopy(copy)
                if shown_3d:
                    segmentation_node.CreateClosedSurfaceRepresentation()
                del self._copies[index]
                return description
        return None
