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
from TeethSegmentationLib.fdi import TYPES, color, fdi_map_to_classes, is_fdi, type_name
from TeethSegmentationLib.tooth_segments import (
    CONFIDENCE_TAG,
    VOLUME_TAG,
    describe_tooth,
    get_terminology,
    segment_ids,
)

DENTAL_MAX_SPACING_MM = 1.0
DENTAL_MAX_FOV_MM = 200.0
# What the volume storage node writes (it picks the format by the extension); anything else gets ".nrrd".
VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


# --- small helpers


def _segmentations_logic() -> Any:
    return slicer.modules.segmentations.logic()


def _write_node(node: Any, path: str | os.PathLike, storage: Any | None = None, compress: bool = True) -> Path:
    """Write a storable node with a fresh storage node, atomically."""
    storage = storage or slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetUseCompression(compress)
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


# --- volumes


def export_volume_to_nrrd(volume_node: Any, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write a scalar volume node as NRRD with its IJK-to-RAS geometry (not its parent transform).

    ``compress=False`` for the engine's input: gzip would keep Slicer's GUI thread busy for seconds.
    """
    if volume_node is None or volume_node.GetImageData() is None:
        raise ValueError("The input volume has no image data; load a scan first.")
    return _write_node(volume_node, path, compress=compress)


def output_segmentation(volume_node: Any, chosen: Any | None = None) -> Any:
    """``chosen``, else the segmentation "<volume> teeth" (made on the first run, found again on the next)."""
    if chosen is not None:
        return chosen
    scene, name = volume_node.GetScene(), f"{volume_node.GetName()} teeth"
    existing = scene.GetNodesByClassByName("vtkMRMLSegmentationNode", name)
    if existing.GetNumberOfItems():
        return existing.GetItemAsObject(0)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    return node


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
    else:
        describe_tooth(segment, value)
    for tag, key, digits in ((CONFIDENCE_TAG, "confidence", 4), (VOLUME_TAG, "volume_mm3", 1)):
        if (record or {}).get(key) is not None:
            segment.SetTag(tag, f"{float(record[key]):.{digits}f}")


def _teeth_extent(image: Any) -> list[int] | None:
    """The IJK extent (i0, i1, j0, j1, k0, k1) holding every non-zero voxel; None when there is none."""
    dims = image.GetDimensions()
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1])  # K, J, I
    k_any = array.any(axis=(1, 2))
    if not k_any.any():
        return None
    jk = array[k_any.argmax(): len(k_any) - k_any[::-1].argmax()].any(axis=0)  # J, I over the occupied slices
    ranges = [np.flatnonzero(jk.any(axis=0)), np.flatnonzero(jk.any(axis=1)), np.flatnonzero(k_any)]
    return [int(v) for r in ranges for v in (r[0], r[-1])]


def _oriented_image(labelmap_node: Any) -> Any:
    """The label map's voxels around the teeth, with its IJK-to-RAS geometry, as the segmentation stores them.

    Cropped first: importing a whole 600 x 600 x 450 grid costs Slicer seconds of the GUI thread.
    """
    source, extent = labelmap_node.GetImageData(), _teeth_extent(labelmap_node.GetImageData())
    if extent is not None:
        crop = vtk.vtkExtractVOI()
        crop.SetInputData(source)
        crop.SetVOI(*extent)
        crop.Update()
        source = crop.GetOutput()
    image = slicer.vtkOrientedImageData()
    image.ShallowCopy(source)
    matrix = vtk.vtkMatrix4x4()
    labelmap_node.GetIJKToRASMatrix(matrix)
    image.SetImageToWorldMatrix(matrix)
    return image


def place_beside(node: Any, volume_node: Any) -> None:
    """Put ``node`` in the subject-hierarchy folder (study) that holds ``volume_node``."""
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(volume_node.GetScene())
    volume_item = hierarchy.GetItemByDataNode(volume_node)
    if not volume_item:
        return
    study = hierarchy.GetItemParent(volume_item)
    item = hierarchy.GetItemByDataNode(node)
    if item:
        hierarchy.SetItemParent(item, study)
    else:  # Slicer's GUI makes items for new nodes; a scene without it does not
        hierarchy.CreateItem(study, node)


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
        # The label map lies in the volume's own coordinates: put the segmentation under the volume's transform
        # first, then import the image in the segmentation's coordinates (the node overload would apply the
        # inverse transform and move the teeth away).
        segmentation_node.SetAndObserveTransformNodeID(reference_volume_node.GetTransformNodeID())
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
        place_beside(segmentation_node, reference_volume_node)
    segmentation_node.CreateDefaultDisplayNodes()
    if not _segmentations_logic().ImportLabelmapToSegmentationNode(_oriented_image(labelmap), segmentation_node,
                                                                   "", ""):
        raise RuntimeError(f"Could not import {Path(labelmap_path).name} into the segmentation.")
    records = _teeth_records(report)
    ids = segment_ids(segmentation_node)
    for sid in ids:
        segment = segmentation_node.GetSegmentation().GetSegment(sid)
        _describe_segment(segment, segment.GetLabelValue(), types_only, records.get(segment.GetLabelValue()))
    if show_3d and ids:
        segmentation_node.CreateClosedSurfaceRepresentation()
    return ids


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
    """A colour table naming each wanted label value after its segment: the exporter matches segments by name."""
    segmentation = segmentation_node.GetSegmentation()
    names = [segmentation.GetSegment(sid).GetName() for sid in values]
    shared = sorted({n for n in names if names.count(n) > 1})
    if shared:
        raise ValueError(f"Several segments are named {', '.join(map(repr, shared))}; give each tooth its own name.")
    table = slicer.vtkMRMLColorTableNode()
    table.SetTypeToUser()
    table.SetNumberOfColors(max(values.values(), default=0) + 1)
    table.SetColor(0, "Background", 0.0, 0.0, 0.0, 0.0)
    for sid, value in values.items():
        segment = segmentation.GetSegment(sid)
        table.SetColor(value, segment.GetName(), *segment.GetColor(), 1.0)
    return table


def _write_labelmap(segmentation_node: Any, values: dict[str, int], reference_volume_node: Any,
                    path: str | os.PathLike) -> Path:
    """Segments as one label map with the given value per segment, on the reference volume's grid (one pass)."""
    scene = segmentation_node.GetScene()
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
        display = labelmap.GetDisplayNode()  # made by the exporter, with a colour table of its own
        temporary += [display, display.GetColorNode() if display else None]
        return _write_node(labelmap, path)


def with_volume_suffix(path: str | os.PathLike) -> Path:
    """``path``, with ".nrrd" added when its name has no extension the volume writer knows."""
    path = Path(path)
    return path if path.name.lower().endswith(VOLUME_SUFFIXES) else path.with_name(path.name + ".nrrd")


def export_labelmap_nrrd(segmentation_node: Any, reference_volume_node: Any, path: str | os.PathLike) -> Path:
    """All segments as one label map on the reference volume's grid, keeping their label values (FDI).

    A name without a volume extension gets ".nrrd"; the path written is returned.
    """
    values = {sid: segmentation_node.GetSegmentation().GetSegment(sid).GetLabelValue()
              for sid in segment_ids(segmentation_node)}
    return _write_labelmap(segmentation_node, values, reference_volume_node, with_volume_suffix(path))


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
        try:
            label_file = _write_labelmap(segmentation_node, mapping.fdi, volume_node, folder / f"{stem}.labels.nrrd")
        except ValueError as error:
            problems.append(f"Case '{case_name}': {error}")
            continue
        label_files.append(label_file)
        images.append(export_volume_to_nrrd(volume_node, folder / f"{stem}.nrrd"))
    return images, label_files, problems


def export_case_to_library(volume_node: Any, segmentation_node: Any, library_root: str | os.PathLike) -> str:
    """Save a (volume, corrected segmentation) pair into the user's case library; the new case's id.

    The segmentation goes in exactly as the user left it (``.seg.nrrd``: names, label values, layers,
    terminology); which segment is which tooth is decided when fine-tuning (``training/corrected_labels.py``),
    so nothing is lost to an early guess. The case appears in the library only when both files are complete.
    """
    from TeethSegmentationLib.case_library import IMAGE_NAME, SEGMENTATION_NAME, CaseLibrary, new_case_id

    if segmentation_node is None or segmentation_node.GetSegmentation().GetNumberOfSegments() == 0:
        raise ValueError("The segmentation has no segments; correct the teeth first, then add the case.")
    case_id = new_case_id()
    with CaseLibrary(library_root).adding(case_id, volume_node.GetName()) as staging:
        export_volume_to_nrrd(volume_node, staging / IMAGE_NAME)
        write_segmentation(segmentation_node, staging / SEGMENTATION_NAME)
    return case_id
