"""The scene <-> files bridge (TeethSegmentationLib/mrml.py) on Slicer's real MRML from slicer-core."""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np
import pytest

from TeethSegmentationLib.fdi import SNOMED_TOOTH, color, is_fdi, segment_name, terminology_entry

TEETH = (11, 21, 36, 48)
ROOT = Path(__file__).resolve().parent.parent
TERMINOLOGY = ROOT / "Resources" / "Terminology" / "TeethSegmentation.term.json"


def _write_case(folder: Path) -> tuple[Path, Path]:
    """A small oblique LPS image + FDI label map (boxes of four teeth), written with pynrrd."""
    fdi = np.zeros((30, 26, 22), np.uint8)
    fdi[3:9, 3:9, 3:9] = 11
    fdi[12:18, 3:8, 4:10] = 21
    fdi[4:10, 14:21, 12:18] = 36
    fdi[20:27, 15:22, 11:19] = 48
    image = (200 + 1000 * (fdi > 0)).astype(np.int16)
    angle = np.deg2rad(10)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    header = {
        "space": "left-posterior-superior",
        "space directions": (rotation @ np.diag([0.3, 0.35, 0.4])).T,
        "space origin": np.array([-12.5, 30.25, 7.0]),
    }
    nrrd.write(str(folder / "case.nrrd"), image, header)
    nrrd.write(str(folder / "case.teeth.nrrd"), fdi, header)
    return folder / "case.nrrd", folder / "case.teeth.nrrd"


@pytest.fixture
def case(slicer_scene, tmp_path):
    """(volume node, label map path, report) of a small case in the scene."""
    from TeethSegmentationLib import mrml

    image, teeth = _write_case(tmp_path)
    volume = slicer_scene.logics["volumes"].AddArchetypeVolume(str(image), "case", 0)
    assert volume is not None
    confidences = (0.9, 0.4, 0.7, 0.2)
    records = [{"fdi": f, "confidence": c, "volume_mm3": 10.0 * f} for f, c in zip(TEETH, confidences, strict=True)]
    report = {"teeth": records}
    mrml.load_terminology(TERMINOLOGY)
    return volume, teeth, report


def _segments(node):
    from TeethSegmentationLib import mrml

    segmentation = node.GetSegmentation()
    return [segmentation.GetSegment(sid) for sid in mrml.segment_ids(node)]


def _new_segmentation(scene, name="Teeth"):
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    node.CreateDefaultDisplayNodes()
    return node


def test_fdi_labelmap_becomes_named_coloured_coded_segments(slicer_scene, case):
    from TeethSegmentationLib import mrml, tooth_segments

    volume, teeth, report = case
    node = _new_segmentation(slicer_scene.scene)
    ids = mrml.load_fdi_labelmap_as_segments(teeth, node, volume, report)
    assert len(ids) == 4
    segments = _segments(node)
    assert [s.GetName() for s in segments] == [segment_name(f) for f in TEETH]
    assert [s.GetLabelValue() for s in segments] == list(TEETH)
    for segment, fdi in zip(segments, TEETH, strict=True):
        assert np.allclose(segment.GetColor(), color(fdi))
        assert mrml.get_terminology(segment) == terminology_entry(fdi)
        assert SNOMED_TOOTH[fdi][0] in mrml.get_terminology(segment)
    assert [tooth_segments.segment_confidence(s) for s in segments] == [0.9, 0.4, 0.7, 0.2]
    closed = slicer_scene.slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
    assert node.GetSegmentation().ContainsRepresentation(closed)
    mask = slicer_scene.slicer.util.arrayFromSegmentBinaryLabelmap(node, ids[2], volume)
    expected = nrrd.read(str(teeth))[0].transpose(2, 1, 0) == 36
    assert np.array_equal(mask > 0, expected)


def test_rerun_replaces_segments_and_types_only_mode(slicer_scene, case):
    from TeethSegmentationLib import mrml

    volume, teeth, report = case
    node = _new_segmentation(slicer_scene.scene)
    mrml.load_fdi_labelmap_as_segments(teeth, node, volume, report, show_3d=False)
    mrml.load_fdi_labelmap_as_segments(teeth, node, volume, report, show_3d=False)
    assert node.GetSegmentation().GetNumberOfSegments() == 4
    mrml.load_fdi_labelmap_as_segments(teeth, node, volume, None, types_only=True, show_3d=False)
    segments = _segments(node)
    assert [s.GetLabelValue() for s in segments] == [1, 6, 8]  # 11 and 21 are both central incisors
    assert [s.GetName() for s in segments] == ["central incisor", "first molar", "third molar"]
    assert np.allclose(segments[1].GetColor(), color(6))
    labelmaps = slicer_scene.scene.GetNodesByClass("vtkMRMLLabelMapVolumeNode")
    assert labelmaps.GetNumberOfItems() == 0  # no temporary nodes left behind


def test_missing_labelmap_is_a_clear_error(slicer_scene, case, tmp_path):
    from TeethSegmentationLib import mrml

    volume, _teeth, _report = case
    with pytest.raises(OSError, match="nothere.nrrd"):
        mrml.load_fdi_labelmap_as_segments(tmp_path / "nothere.nrrd", _new_segmentation(slicer_scene.scene), volume)


def test_developing_and_primary_teeth_are_named_in_segments_and_rows(slicer_scene, case):
    from TeethSegmentationLib import mrml
    from TeethSegmentationLib.tooth_segments import tooth_rows

    volume, teeth, report = case
    report = {"teeth": [{**r, "developing": r["fdi"] == 48} for r in report["teeth"]]}
    node = _new_segmentation(slicer_scene.scene)
    mrml.load_fdi_labelmap_as_segments(teeth, node, volume, report, show_3d=False)
    names = [s.GetName() for s in _segments(node)]
    assert names[-1] == "48 lower right third molar (developing)" and names[0] == segment_name(11)
    assert "48 lower right third molar (developing)" in [row[2] for row in tooth_rows(node)]


def test_export_stl_per_tooth(slicer_scene, case, tmp_path):
    from TeethSegmentationLib import mrml

    volume, teeth, report = case
    node = _new_segmentation(slicer_scene.scene)
    mrml.load_fdi_labelmap_as_segments(teeth, node, volume, report)
    out = tmp_path / "stl"
    files = mrml.export_stl_per_tooth(node, out)
    assert sorted(p.name for p in files) == sorted(f"tooth_{f}.stl" for f in TEETH)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"tooth_{f}.stl" for f in TEETH)  # no temp folder left
    assert all(p.stat().st_size > 1000 for p in files)
    with pytest.raises(ValueError):
        mrml.export_stl_per_tooth(node, out, space="XYZ")


def test_export_labelmap_keeps_fdi_values_and_geometry(slicer_scene, case, tmp_path):
    from TeethSegmentationLib import mrml
    from TeethSegmentationLib.io.read_write import read_volume

    volume, teeth, report = case
    node = _new_segmentation(slicer_scene.scene)
    mrml.load_fdi_labelmap_as_segments(teeth, node, volume, report, show_3d=False)
    out = mrml.export_labelmap_nrrd(node, volume, tmp_path / "out" / "teeth.nrrd")
    exported, original = read_volume(out), read_volume(teeth)
    assert np.array_equal(exported.array, original.array)
    assert np.allclose(exported.ijk_to_ras, original.ijk_to_ras, atol=1e-5)
    assert [p.name for p in out.parent.iterdir()] == ["teeth.nrrd"]


def test_seg_nrrd_round_trip_keeps_names_values_terminology(slicer_scene, case, tmp_path):
    from TeethSegmentationLib import mrml

    volume, teeth, report = case
    node = _new_segmentation(slicer_scene.scene)
    mrml.load_fdi_labelmap_as_segments(teeth, node, volume, report, show_3d=False)
    path = mrml.write_segmentation(node, tmp_path / "case.seg.nrrd")
    assert [p.name for p in tmp_path.iterdir() if "seg" in p.name] == ["case.seg.nrrd"]
    loaded = _new_segmentation(slicer_scene.scene, "Loaded")
    storage = slicer_scene.slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(loaded)
    segments = _segments(loaded)
    assert [s.GetName() for s in segments] == [segment_name(f) for f in TEETH]
    assert [s.GetLabelValue() for s in segments] == list(TEETH)
    expected = [terminology_entry(f).rstrip("|") for f in TEETH]  # Slicer drops the trailing '|'
    assert [mrml.get_terminology(s).rstrip("|") for s in segments] == expected


def test_export_volume_geometry_round_trip(slicer_scene, case, tmp_path):
    from TeethSegmentationLib import mrml
    from TeethSegmentationLib.io.read_write import read_volume

    volume, _teeth, _report = case
    path = mrml.export_volume_to_nrrd(volume, tmp_path / "sub" / "in.nrrd")
    written = read_volume(path)
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    expected = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    assert np.allclose(written.ijk_to_ras, expected, atol=1e-6)
    assert np.array_equal(written.array, slicer_scene.slicer.util.arrayFromVolume(volume).transpose(2, 1, 0))
    assert np.allclose(written.ijk_to_ras, read_volume(tmp_path / "case.nrrd").ijk_to_ras, atol=1e-6)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["in.nrrd"]


def test_volume_warning(slicer_scene, case):
    from TeethSegmentationLib import mrml

    volume, _teeth, _report = case
    assert mrml.volume_warning(volume) is None
    volume.SetSpacing(1.5, 1.5, 1.5)
    assert "1.50 mm" in mrml.volume_warning(volume)
    volume.SetSpacing(0.9, 0.9, 9.9)
    assert "mm" in mrml.volume_warning(volume)
    volume.SetSpacing(0.9, 0.9, 0.9)
    assert mrml.volume_warning(volume) is None
    volume.SetSpacing(0.5, 0.5, 10.0)
    assert "Crop Volume" in mrml.volume_warning(volume) or "voxels" in mrml.volume_warning(volume)


def _add_user_segments(slicer, scene, volume, teeth_path, names: dict[int, str], terminology: dict[int, str]):
    """A segmentation like one made by hand: given names, Slicer's own label values, optional terminology."""
    node = _new_segmentation(scene, "Hand made")
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    fdi = nrrd.read(str(teeth_path))[0].transpose(2, 1, 0)
    for index, (value, name) in enumerate(names.items()):
        sid = node.GetSegmentation().AddEmptySegment(f"s{index}", name)
        slicer.util.updateSegmentBinaryLabelmapFromArray((fdi == value).astype(np.uint8), node, sid, volume)
        segment = node.GetSegmentation().GetSegment(sid)
        assert not is_fdi(segment.GetLabelValue())  # Slicer numbers hand-made segments 1, 2, ...
        if value in terminology:
            segment.SetTerminology(terminology[value])
    return node


def test_training_pairs_to_files_maps_names_and_terminology(slicer_scene, case, tmp_path):
    from TeethSegmentationLib import mrml
    from TeethSegmentationLib.io.read_write import read_volume

    volume, teeth, _report = case
    names = {11: "tooth 11", 21: "Upper left central incisor (21)", 36: "Segment_3", 48: "LR8"}
    node = _add_user_segments(slicer_scene.slicer, slicer_scene.scene, volume, teeth, names,
                              {36: terminology_entry(36)})
    ours = _new_segmentation(slicer_scene.scene, "Ours")
    mrml.load_fdi_labelmap_as_segments(teeth, ours, volume, None, show_3d=False)
    images, label_files, problems = mrml.training_pairs_to_files([(volume, node), (volume, ours)], tmp_path / "cases")
    assert problems == [] and len(images) == len(label_files) == 2
    expected = read_volume(teeth)
    for label_file in label_files:
        written = read_volume(label_file)
        assert np.array_equal(written.array, expected.array)
        assert np.allclose(written.ijk_to_ras, expected.ijk_to_ras, atol=1e-5)
    assert np.allclose(read_volume(images[0]).ijk_to_ras, expected.ijk_to_ras, atol=1e-5)


def test_training_pairs_report_unmappable_segments(slicer_scene, case, tmp_path):
    from TeethSegmentationLib import mrml

    volume, teeth, _report = case
    names = {11: "tooth 11", 21: "Segment_2", 36: "Mandible", 48: "my favourite"}
    node = _add_user_segments(slicer_scene.slicer, slicer_scene.scene, volume, teeth, names, {})
    images, label_files, problems = mrml.training_pairs_to_files([(volume, node)], tmp_path / "cases")
    assert images == [] and label_files == [] and len(problems) == 1
    assert "'Segment_2'" in problems[0] and "'my favourite'" in problems[0] and "Mandible" not in problems[0]
    assert "FDI" in problems[0] and problems[0].endswith(".")


# --- segment name / terminology -> FDI (pure Python, no Slicer needed)
