"""The .seg.nrrd writer: readable by slicerio and by Slicer's own segmentation storage (slicer-core)."""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np
import pytest

from TeethSegmentationLib.fdi import SNOMED_TOOTH, TERMINOLOGY_CONTEXT, color, segment_name
from TeethSegmentationLib.io.seg_nrrd import write_segmentation
from TeethSegmentationLib.io.volume import Volume

TEETH = (11, 21, 36)


def _fdi_volume() -> Volume:
    array = np.zeros((20, 24, 18), np.uint8)
    array[3:7, 4:9, 2:6] = 11
    array[8:12, 4:9, 2:6] = 21
    array[5:15, 14:20, 9:15] = 36
    matrix = np.array([[-0.4, 0, 0, 10.0], [0, -0.5, 0, 20.0], [0, 0, 0.6, -30.0], [0, 0, 0, 1]])
    return Volume(array, matrix, space="LPS")


def test_slicerio_reads_names_values_colours_terminology(tmp_path: Path) -> None:
    slicerio = pytest.importorskip("slicerio")
    volume = _fdi_volume()
    path = tmp_path / "case.seg.nrrd"
    assert write_segmentation(volume, path) == list(TEETH)
    assert not [p for p in tmp_path.iterdir() if p.name != "case.seg.nrrd"]
    seg = slicerio.read_segmentation(str(path))
    by_value = {s["labelValue"]: s for s in seg["segments"]}
    assert sorted(by_value) == list(TEETH)
    for fdi in TEETH:
        segment = by_value[fdi]
        assert segment["name"] == segment_name(fdi)
        assert np.allclose(segment["color"], color(fdi), atol=1e-5)
        assert segment["terminology"]["type"][1] == SNOMED_TOOTH[fdi][0]
        assert segment["terminology"]["contextName"] == TERMINOLOGY_CONTEXT
    # voxels are cropped to the teeth; the geometry puts them back where they were
    voxels, ijk_to_lps = seg["voxels"], np.asarray(seg["ijkToLPS"])
    offset = np.array([int(v) for v in seg["referenceImageExtentOffset"]])
    ijk = np.argwhere(voxels == 36).mean(axis=0)
    lps = ijk_to_lps[:3, :3] @ ijk + ijk_to_lps[:3, 3]
    expected = volume.ijk_to_ras_points(np.argwhere(volume.array == 36).mean(axis=0))[0] * [-1, -1, 1]
    assert np.allclose(lps, expected)
    assert offset.tolist() == [3, 4, 2]


def test_slicer_core_loads_segments(tmp_path: Path, slicer_scene) -> None:
    import slicer
    import vtk

    volume = _fdi_volume()
    path = tmp_path / "case.seg.nrrd"
    write_segmentation(volume, path)
    node = slicer_scene.logics["segmentations"].LoadSegmentationFromFile(str(path), False, "case")
    assert node is not None
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == len(TEETH)
    for fdi in TEETH:
        segment = segmentation.GetSegment(f"tooth_{fdi}")
        assert segment.GetName() == segment_name(fdi)
        assert segment.GetLabelValue() == fdi
        tag = segment.GetTerminology() if hasattr(segment, "GetTerminology") else ""
        assert SNOMED_TOOTH[fdi][0] in tag
        array = slicer.util.arrayFromSegmentInternalBinaryLabelmap(node, f"tooth_{fdi}")
        assert int((array == fdi).sum()) == int((volume.array == fdi).sum())
    # world position of a tooth in Slicer (RAS) equals its position in the label map
    image = slicer.vtkOrientedImageData()
    node.GetBinaryLabelmapRepresentation("tooth_36", image)
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    ijk_to_world = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    array = slicer.util.arrayFromSegmentInternalBinaryLabelmap(node, "tooth_36")  # k, j, i over the extent
    ijk = np.argwhere(array == 36)[:, ::-1].mean(axis=0) + np.array(image.GetExtent()[::2])
    expected = volume.ijk_to_ras_points(np.argwhere(volume.array == 36).mean(axis=0))[0]
    assert np.allclose(ijk_to_world[:3, :3] @ ijk + ijk_to_world[:3, 3], expected, atol=1e-4)


def test_no_teeth_writes_a_readable_empty_segmentation(tmp_path: Path) -> None:
    volume = Volume(np.zeros((6, 7, 8), np.uint8), np.eye(4), space="LPS")
    assert write_segmentation(volume, tmp_path / "empty.seg.nrrd") == []
    voxels, header = nrrd.read(str(tmp_path / "empty.seg.nrrd"))
    assert voxels.shape == (6, 7, 8) and not voxels.any()
    assert not any(key.startswith("Segment0_") for key in header)
