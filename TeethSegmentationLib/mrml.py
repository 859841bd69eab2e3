"""The Slicer scene <-> files: everything the module does with MRML nodes lives here.

Volume nodes go to NRRD for the engine (geometry intact); the engine's FDI label map comes back as a
segmentation node with one named, coloured, terminology-coded segment per tooth (label value = FDI
number); segments go out as STL per tooth or as an FDI label map; (volume, segmentation) pairs go
out as training cases. Imports only ``slicer``, ``vtk`` and ``numpy``, so it runs both inside Slicer
and with the ``slicer-core`` wheel in the test suite. Files are written under a temporary name and
renamed when complete.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from TeethSegmentationLib import segment_fdi as training_cases
from TeethSegmentationLib.atomic import atomic_path
from TeethSegmentationLib.fdi import (
    DEVELOPING_SUFFIX,
    TYPES,
    color,
    fdi_map_to_classes,
    is_fdi,
    segment_name,
    terminology_entry,
    tooth_name,
    type_name,
)

CONFIDENCE_TAG = "TeethSegmentation.Confidence"
DENTAL_MAX_SPACING_MM = 1.0
DENTAL_MAX_FOV_MM = 200.0


# --- small helpers


def _segmentations_logic() -> Any:
    return slicer.modules.segmentations.logic()


def _write_node(node: Any, path: str | os.PathLike, storage: Any | None = None) -> Path:
    """Write a storable node with a fresh storage node, atomically."""
    storage = storage or slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetUseCompression(True)
    with atomic_path(path) as partial:
        storage.SetFileName(str(partial))
        if not storage.WriteData(node):
            raise OSError(f"Could not write {Path(path).name}: {storage.GetWriteStateAsString()}.")
    return Path(path)


@contextlib.contextmanager
def _temporary_nodes(scene: Any) -> Iterator[list[Any]]:
    """Nodes appended to the yielded list are removed from ``scene`` afterwards."""
    nodes: list[Any] = []
    try:
        yield nodes
    finally:
        for node in nodes:
            if node is not None and scene.IsNodePresent(node):
                scene.RemoveNode(node)


def _safe_file_stem(text: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")
    return stem or "segment"


def segment_ids(segmentation_node: Any) -> list[str]:
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]


def segment_names(segmentation_node: Any) -> list[str]:
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetSegment(sid).GetName() for sid in segment_ids(segmentation_node)]


def get_terminology(segment: Any) -> str:
    if hasattr(segment, "GetTerminology"):
        return segment.GetTerminology() or ""
    value = vtk.reference("")
    return str(value) if segment.GetTag(segment.GetTerminologyEntryTagName(), value) else ""


def segment_confidence(segment: Any) -> float | None:
    """The engine's confidence stored on a segment by :func:`load_fdi_labelmap_as_segments`."""
    value = vtk.reference("")
    return float(str(value)) if segment.GetTag(CONFIDENCE_TAG, value) else None


def set_terminology(segment: Any, entry: str) -> None:
    """``SetTerminology`` where this Slicer has it, else the tag Slicer 5.6-5.8 read."""
    if hasattr(segment, "SetTerminology"):
        segment.SetTerminology(entry)
    else:
        segment.SetTag(segment.GetTerminologyEntryTagName(), entry)


# --- volumes


def export_volume_to_nrrd(volume_node: Any, path: str | os.PathLike) -> Path:
    """Write a scalar volume node as NRRD with its IJK-to-RAS geometry (not its parent transform)."""
    if volume_node is None or volume_node.GetImageData() is None:
        raise ValueError("The input volume has no image data; load a scan first.")
    return _write_node(volume_node, path)


def volume_warning(volume_node: Any) -> str | None:
    """A sentence when the volume does not look like a dental CBCT (coarse voxels or a large field of view)."""
    spacing = np.array(volume_node.GetSpacing(), dtype=float)
    dims = np.array(volume_node.GetImageData().GetDimensions(), dtype=float)
    fov = spacing * dims
    if spacing.max() > DENTAL_MAX_SPACING_MM:
        return (
            f"The voxels are {spacing.max():.2f} mm; dental CBCT usually has 0.1-0.4 mm voxels, so the result may be "
            "poor. Segmenting anyway."
        )
    if fov.max() > DENTAL_MAX_FOV_MM:
        return (
            f"The scan is {fov.max():.0f} mm across; cropping it to the jaws with the Crop Volume module makes "
            "segmentation faster and more reliable."
        )
    return None


# --- engine results -> segments


def _read_labelmap(path: str | os.PathLike) -> Any:
    node = slicer.vtkMRMLLabelMapVolumeNode()
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    if not Path(path).exists() or not storage.ReadData(node):
        raise OSError(f"Could not read the label map {Path(path).name}.")
    return node


def _to_types(labelmap_node: Any) -> None:
    """FDI values -> tooth types 1..8 in place (anything not a tooth becomes 0)."""
    image = labelmap_node.GetImageData()
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    array[:] = fdi_map_to_classes(array).astype(array.dtype)
    image.Modified()


def _teeth_records(report: dict | None) -> dict[int, dict]:
    """Per-tooth records of a report, keyed by FDI number (``teeth`` as a list or a dict)."""
    teeth = (report or {}).get("teeth", [])
    items = teeth.values() if isinstance(teeth, dict) else teeth
    return {int(t["fdi"]): t for t in items if isinstance(t, dict) and "fdi" in t}


def _describe_segment(segment: Any, value: int, types_only: bool, record: dict | None) -> None:
    if types_only and value in TYPES:
        segment.SetName(type_name(value))
        segment.SetColor(*color(value))
    elif is_fdi(value):
        segment.SetName(segment_name(value, bool((record or {}).get("developing"))))
        segment.SetColor(*color(value))
        set_terminology(segment, terminology_entry(value))
    confidence = (record or {}).get("confidence")
    if confidence is not None:
        segment.SetTag(CONFIDENCE_TAG, f"{float(confidence):.4f}")


def load_fdi_labelmap_as_segments(
    labelmap_path: str | os.PathLike,
    segmentation_node: Any,
    reference_volume_node: Any,
    report: dict | None = None,
    types_only: bool = False,
    show_3d: bool = True,
) -> list[str]:
    """Replace the segments of ``segmentation_node`` by one segment per tooth of an FDI label map.

    Names ``"11 upper right central incisor"``, colours by type, label value = FDI number, the tooth's
    SNOMED terminology; ``types_only`` gives one segment per tooth type (1..8) instead. Returns the
    new segment IDs in label order.
    """
    labelmap = _read_labelmap(labelmap_path)
    if types_only:
        _to_types(labelmap)
    segmentation_node.GetSegmentation().RemoveAllSegments()
    if reference_volume_node is not None:
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
        segmentation_node.SetAndObserveTransformNodeID(reference_volume_node.GetTransformNodeID())
    segmentation_node.CreateDefaultDisplayNodes()
    if not _segmentations_logic().ImportLabelmapToSegmentationNode(labelmap, segmentation_node):
        raise RuntimeError(f"Could not import {Path(labelmap_path).name} into the segmentation.")
    records = _teeth_records(report)
    ids = segment_ids(segmentation_node)
    for sid in ids:
        segment = segmentation_node.GetSegmentation().GetSegment(sid)
        _describe_segment(segment, segment.GetLabelValue(), types_only, records.get(segment.GetLabelValue()))
    if show_3d and ids:
        segmentation_node.CreateClosedSurfaceRepresentation()
    return ids


def confidence_rows(report: dict | None) -> list[tuple[int, str, float | None, float | None]]:
    """(FDI, name, confidence, volume mm3) per tooth, lowest confidence first (unknown confidence last)."""
    rows = []
    for fdi, record in _teeth_records(report).items():
        name = tooth_name(fdi) if is_fdi(fdi) else str(record.get("name", fdi))
        name += DEVELOPING_SUFFIX if record.get("developing") else ""
        confidence, volume = record.get("confidence"), record.get("volume_mm3")
        rows.append((fdi, name, None if confidence is None else float(confidence), volume))
    return sorted(rows, key=lambda r: (r[2] is None, r[2] if r[2] is not None else 0.0, r[0]))


def load_terminology(path: str | os.PathLike) -> str:
    """Load a ``.term.json`` into Slicer's terminology logic; its context name."""
    name = slicer.modules.terminologies.logic().LoadTerminologyFromFile(str(path))
    if not name:
        raise ValueError(f"Could not load the terminology file {Path(path).name}.")
    return name


# --- segments -> files


def _stl_file_name(segment: Any) -> str:
    value = segment.GetLabelValue()
    if is_fdi(value):
        return f"tooth_{value}.stl"
    return f"{_safe_file_stem(segment.GetName())}.stl"


def _has_surface(segment: Any) -> bool:
    name = slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
    surface = segment.GetRepresentation(name)
    return surface is not None and surface.GetNumberOfPoints() > 0


def _export_one_stl(segmentation_node: Any, segment_id: str, work: Path, lps: bool) -> Path:
    folder = work / _safe_file_stem(segment_id)
    folder.mkdir()
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment_id)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    ok = logic.ExportSegmentsClosedSurfaceRepresentationToFiles(str(folder), segmentation_node, ids, "STL", lps, 1.0,
                                                               False)
    files = sorted(folder.glob("*.stl"))
    if not ok or len(files) != 1:
        raise OSError(f"Slicer could not export segment {segment_id} as STL.")
    return files[0]


def export_stl_per_tooth(segmentation_node: Any, folder: str | os.PathLike, space: str = "LPS") -> list[Path]:
    """One STL per non-empty segment, named ``tooth_<FDI>.stl`` (Slicer's exporter; LPS like most CAD tools)."""
    if space.upper() not in ("LPS", "RAS"):
        raise ValueError(f"Unknown coordinate system {space!r}; use LPS or RAS.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    segmentation_node.CreateClosedSurfaceRepresentation()
    segmentation = segmentation_node.GetSegmentation()
    work = Path(tempfile.mkdtemp(prefix=".stl-export-", dir=folder))
    written: list[Path] = []
    try:
        for sid in segment_ids(segmentation_node):
            segment = segmentation.GetSegment(sid)
            if not _has_surface(segment):
                continue
            exported = _export_one_stl(segmentation_node, sid, work, space.upper() == "LPS")
            target = folder / _stl_file_name(segment)
            os.replace(exported, target)
            written.append(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return written


def _label_color_table(segmentation_node: Any, values: dict[str, int]) -> Any:
    """A colour table naming each label value after its segment: the exporter then keeps the values."""
    table = slicer.vtkMRMLColorTableNode()
    table.SetTypeToUser()
    table.SetNumberOfColors(max(values.values(), default=0) + 1)
    table.SetColor(0, "Background", 0.0, 0.0, 0.0, 0.0)
    for sid, value in values.items():
        segment = segmentation_node.GetSegmentation().GetSegment(sid)
        table.SetColor(value, segment.GetName(), *segment.GetColor(), 1.0)
    return table


def export_labelmap_nrrd(segmentation_node: Any, reference_volume_node: Any, path: str | os.PathLike) -> Path:
    """All segments as one label map on the reference volume's grid, keeping their label values (FDI)."""
    scene = segmentation_node.GetScene()
    values = {sid: segmentation_node.GetSegmentation().GetSegment(sid).GetLabelValue()
              for sid in segment_ids(segmentation_node)}
    ids = vtk.vtkStringArray()
    for sid in values:
        ids.InsertNextValue(sid)
    with _temporary_nodes(scene) as temporary:
        table = scene.AddNode(_label_color_table(segmentation_node, values))
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        temporary += [table, labelmap]
        extent = slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
        if not _segmentations_logic().ExportSegmentsToLabelmapNode(
            segmentation_node, ids, labelmap, reference_volume_node, extent, table
        ):
            raise RuntimeError("Slicer could not export the segments as a label map.")
        return _write_node(labelmap, path)


def write_segmentation(segmentation_node: Any, path: str | os.PathLike) -> Path:
    """Save a segmentation node as ``.seg.nrrd`` (names, label values, colours and terminology kept)."""
    return _write_node(segmentation_node, path, slicer.vtkMRMLSegmentationStorageNode())


# --- training cases


def segment_infos(segmentation_node: Any) -> list[training_cases.SegmentInfo]:
    segmentation = segmentation_node.GetSegmentation()
    infos = []
    for sid in segment_ids(segmentation_node):
        segment = segmentation.GetSegment(sid)
        infos.append(training_cases.SegmentInfo(sid, segment.GetName(), segment.GetLabelValue(),
                                                get_terminology(segment)))
    return infos


def _fdi_array(segmentation_node: Any, volume_node: Any, fdi_by_segment: dict[str, int]) -> np.ndarray:
    """A K, J, I uint8 array on the volume's grid with each segment's FDI number."""
    dims = volume_node.GetImageData().GetDimensions()
    array = np.zeros(dims[::-1], dtype=np.uint8)
    for sid, fdi in fdi_by_segment.items():
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, sid, volume_node)
        array[mask > 0] = fdi
    return array


def _write_fdi_labelmap(array: np.ndarray, volume_node: Any, path: Path) -> Path:
    scene = volume_node.GetScene()
    with _temporary_nodes(scene) as temporary:
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        temporary.append(labelmap)
        labelmap.CopyOrientation(volume_node)
        slicer.util.updateVolumeFromArray(labelmap, array)
        return _write_node(labelmap, path)


def training_pairs_to_files(
    pairs: list[tuple[Any, Any]], folder: str | os.PathLike
) -> tuple[list[Path], list[Path], list[str]]:
    """Export (volume, segmentation) pairs as ``caseNN.nrrd`` + ``caseNN.labels.nrrd`` with FDI label values.

    A pair whose tooth segments cannot all be numbered is left out and described in ``problems``.
    """
    folder = Path(folder)
    images: list[Path] = []
    label_files: list[Path] = []
    problems: list[str] = []
    for index, (volume_node, segmentation_node) in enumerate(pairs):
        case_name = f"{volume_node.GetName()} / {segmentation_node.GetName()}"
        mapping = training_cases.map_segments(segment_infos(segmentation_node))
        problem = training_cases.case_problem(case_name, mapping)
        if problem:
            problems.append(problem)
            continue
        stem = f"case{index:02d}_{_safe_file_stem(volume_node.GetName())}"
        images.append(export_volume_to_nrrd(volume_node, folder / f"{stem}.nrrd"))
        array = _fdi_array(segmentation_node, volume_node, mapping.fdi)
        label_files.append(_write_fdi_labelmap(array, volume_node, folder / f"{stem}.labels.nrrd"))
    return images, label_files, problems
