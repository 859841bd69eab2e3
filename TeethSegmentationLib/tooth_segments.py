"""One tooth = one segment: its name, colour, terminology and label value (= FDI number), read and written.

Shared by the scene bridge (``mrml``) and the correction tools (``corrections``). Imports only ``vtk``;
the segments are Slicer's (tested with ``slicer-core``).
"""

from __future__ import annotations

from typing import Any

import vtk

from TeethSegmentationLib.fdi import (
    UNNUMBERED_COLOR,
    UNNUMBERED_LABEL_BASE,
    color,
    is_fdi,
    segment_name,
    terminology_entry,
    unnumbered_name,
)

CONFIDENCE_TAG = "TeethSegmentation.Confidence"
VOLUME_TAG = "TeethSegmentation.VolumeMm3"


def segment_ids(segmentation_node: Any) -> list[str]:
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]


def get_terminology(segment: Any) -> str:
    return segment.GetTerminology() or ""


def _number_tag(segment: Any, tag: str) -> float | None:
    value = vtk.reference("")
    return float(str(value)) if segment.GetTag(tag, value) else None


def segment_confidence(segment: Any) -> float | None:
    """The engine's confidence stored on a segment by :func:`load_fdi_labelmap_as_segments`."""
    return _number_tag(segment, CONFIDENCE_TAG)


def tooth_rows(segmentation_node: Any) -> list[tuple[str, int, str, float | None, float | None]]:
    """(segment ID, label value, name, confidence, volume mm3) per segment, lowest confidence first.

    Read from the segments, so the table follows renumbering and merging.
    """
    segmentation = segmentation_node.GetSegmentation()
    rows = []
    for sid in segment_ids(segmentation_node):
        segment = segmentation.GetSegment(sid)
        rows.append((sid, segment.GetLabelValue(), segment.GetName(), segment_confidence(segment),
                     _number_tag(segment, VOLUME_TAG)))
    return sorted(rows, key=lambda r: (r[3] is None, r[3] or 0.0, r[1]))


def set_terminology(segment: Any, entry: str) -> None:
    segment.SetTerminology(entry)


def describe_tooth(segment: Any, value: int, developing: bool = False) -> None:
    """Name, colour, label value and terminology of tooth ``value`` (an FDI number or an unnumbered label);
    ``developing``: a permanent tooth still in its crypt (a child's scan), named so."""
    segment.SetLabelValue(value)
    if is_fdi(value):
        segment.SetName(segment_name(value, developing))
        segment.SetColor(*color(value))
        set_terminology(segment, terminology_entry(value))
    elif value >= UNNUMBERED_LABEL_BASE:
        segment.SetName(unnumbered_name(value))
        segment.SetColor(*UNNUMBERED_COLOR)
        segment.RemoveTag(segment.GetTerminologyEntryTagName())



def tooth_center(segmentation_node: Any, fdi: int) -> tuple[float, float, float] | None:
    """The world (RAS) centre of the segment with label value ``fdi``; None if there is none or it is empty."""
    segmentation = segmentation_node.GetSegmentation()
    for sid in segment_ids(segmentation_node):
        if segmentation.GetSegment(sid).GetLabelValue() == fdi:
            center = segmentation_node.GetSegmentCenterRAS(sid)  # None for an empty segment
            return None if center is None else (float(center[0]), float(center[1]), float(center[2]))
    return None
