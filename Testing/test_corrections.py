"""Correction tools on Slicer's real segmentation nodes (slicer-core): renumber, swap, shift, merge, undo."""

from __future__ import annotations

import nrrd
import numpy as np
import pytest
from test_mrml import TERMINOLOGY

from TeethSegmentationLib.fdi import UNNUMBERED_LABEL_BASE, color, segment_name, terminology_entry

# quadrant 1 from 14 to 17, a lower left first molar split in two (36 + an unnumbered half), and 21
BOXES = {14: (2, 2), 15: (2, 8), 16: (2, 14), 17: (2, 20), 21: (10, 2), 36: (18, 2),
         UNNUMBERED_LABEL_BASE: (18, 7)}


def _write_arch(folder):
    fdi = np.zeros((26, 26, 8), np.uint8)
    for value, (i, j) in BOXES.items():
        fdi[i:i + 5, j:j + 5, 2:6] = value
    header = {"space": "right-anterior-superior", "space directions": np.diag([0.4, 0.4, 0.5]),
              "space origin": np.array([10.0, -4.0, 3.0])}
    nrrd.write(str(folder / "arch.nrrd"), (300 + 900 * (fdi > 0)).astype(np.int16), header)
    nrrd.write(str(folder / "arch.teeth.nrrd"), fdi, header)
    return folder / "arch.nrrd", folder / "arch.teeth.nrrd", fdi


@pytest.fixture
def arch(slicer_scene, tmp_path):
    """(volume, segmentation node, truth array K,J,I) with the teeth of BOXES loaded as the engine loads them."""
    from TeethSegmentationLib import mrml

    image, teeth, fdi = _write_arch(tmp_path)
    volume = slicer_scene.logics["volumes"].AddArchetypeVolume(str(image), "arch", 0)
    mrml.load_terminology(TERMINOLOGY)
    node = mrml.output_segmentation(volume)
    mrml.load_fdi_labelmap_as_segments(teeth, node, volume, None, show_3d=False)
    return volume, node, fdi.transpose(2, 1, 0)


def _id(node, value):
    from TeethSegmentationModuleLib.corrections import segment_with_value

    return segment_with_value(node, value)


def _mask(slicer_scene, node, sid, volume):
    return slicer_scene.slicer.util.arrayFromSegmentBinaryLabelmap(node, sid, volume) > 0


def _assert_tooth(node, sid, fdi):
    from TeethSegmentationLib import mrml

    segment = node.GetSegmentation().GetSegment(sid)
    assert segment.GetLabelValue() == fdi and segment.GetName() == segment_name(fdi)
    assert np.allclose(segment.GetColor(), color(fdi)) and mrml.get_terminology(segment) == terminology_entry(fdi)


def _exported(node, volume, path):
    from TeethSegmentationLib import mrml
    from TeethSegmentationLib.io.read_write import read_volume

    return read_volume(mrml.export_labelmap_nrrd(node, volume, path)).array.transpose(2, 1, 0)


def test_renumber_to_a_taken_number_swaps_the_two_teeth(slicer_scene, arch, tmp_path):
    from TeethSegmentationModuleLib.corrections import renumber

    volume, node, truth = arch
    was_14, was_21 = _id(node, 14), _id(node, 21)
    node.CreateClosedSurfaceRepresentation()
    assert renumber(node, was_14, 21) == {was_14: 21, was_21: 14}
    closed = slicer_scene.slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
    assert node.GetSegmentation().GetSegment(was_14).GetRepresentation(closed) is not None  # surfaces kept
    _assert_tooth(node, was_14, 21)
    _assert_tooth(node, was_21, 14)
    assert np.array_equal(_mask(slicer_scene, node, was_14, volume), truth == 14)  # the voxels stay with the tooth
    assert np.array_equal(_mask(slicer_scene, node, was_21, volume), truth == 21)
    exported = _exported(node, volume, tmp_path / "swapped.nrrd")
    assert np.all(exported[truth == 14] == 21) and np.all(exported[truth == 21] == 14)
    assert np.array_equal(exported[(truth != 14) & (truth != 21)], truth[(truth != 14) & (truth != 21)])


def test_renumber_with_shift_moves_the_rest_of_the_quadrant(slicer_scene, arch):
    from TeethSegmentationModuleLib.corrections import renumber

    volume, node, truth = arch
    ids = {f: _id(node, f) for f in (14, 15, 16, 17, 21)}
    renumber(node, ids[14], 15, shift_rest=True)  # a missing premolar: 14 is really 15, and so on distally
    for old, new in ((14, 15), (15, 16), (16, 17), (17, 18)):
        _assert_tooth(node, ids[old], new)
        assert np.array_equal(_mask(slicer_scene, node, ids[old], volume), truth == old)
    _assert_tooth(node, ids[21], 21)
    with pytest.raises(ValueError, match="leaves the quadrant"):
        renumber(node, ids[21], 16, shift_rest=True)  # 18 would have to become 19


def test_number_an_unnumbered_tooth_and_renumber_to_a_free_number(slicer_scene, arch):
    from TeethSegmentationModuleLib.corrections import renumber

    volume, node, truth = arch
    half = _id(node, UNNUMBERED_LABEL_BASE)
    assert node.GetSegmentation().GetSegment(half).GetName() == "Unnumbered tooth 1"
    assert renumber(node, half, 37) == {half: 37}
    _assert_tooth(node, half, 37)
    assert np.array_equal(_mask(slicer_scene, node, half, volume), truth == UNNUMBERED_LABEL_BASE)
    renumber(node, _id(node, 36), 37)  # swap back: 36's old value goes to the other
    _assert_tooth(node, half, 36)
    with pytest.raises(ValueError, match="not an FDI"):
        renumber(node, half, 19)


def test_merge_into_joins_the_halves_of_a_split_molar(slicer_scene, arch, tmp_path):
    from TeethSegmentationModuleLib.corrections import merge_into

    volume, node, truth = arch
    molar, half = _id(node, 36), _id(node, UNNUMBERED_LABEL_BASE)
    merge_into(node, half, molar)
    assert node.GetSegmentation().GetSegment(half) is None
    assert node.GetSegmentation().GetNumberOfSegments() == len(BOXES) - 1
    whole = (truth == 36) | (truth == UNNUMBERED_LABEL_BASE)
    assert np.array_equal(_mask(slicer_scene, node, molar, volume), whole)
    _assert_tooth(node, molar, 36)
    exported = _exported(node, volume, tmp_path / "merged.nrrd")
    assert np.all(exported[whole] == 36) and not np.any(exported == UNNUMBERED_LABEL_BASE)
    with pytest.raises(ValueError):
        merge_into(node, molar, molar)


def test_undo_restores_names_values_and_voxels(slicer_scene, arch, tmp_path):
    from TeethSegmentationModuleLib.corrections import UndoCopies, merge_into, renumber

    volume, node, truth = arch
    history = UndoCopies(depth=2)
    before = _exported(node, volume, tmp_path / "before.nrrd")
    node.CreateClosedSurfaceRepresentation()
    history.keep(node, "Renumber 14 to 21")
    renumber(node, _id(node, 14), 21)
    history.keep(node, "Merge")
    merge_into(node, _id(node, UNNUMBERED_LABEL_BASE), _id(node, 36))
    assert history.last(node) == "Merge"
    assert history.undo(node) == "Merge"
    assert node.GetSegmentation().GetNumberOfSegments() == len(BOXES)
    assert history.undo(node) == "Renumber 14 to 21"
    assert history.undo(node) is None
    _assert_tooth(node, _id(node, 14), 14)
    assert np.array_equal(_exported(node, volume, tmp_path / "after.nrrd"), before)
    closed = slicer_scene.slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
    assert node.GetSegmentation().ContainsRepresentation(closed)  # the 3D view comes back too
    for value in range(3):
        history.keep(node, f"step {value}")
    assert [history.undo(node) for _ in range(3)] == ["step 2", "step 1", None]  # only `depth` copies kept


def test_renumber_keeps_voxels_apart_when_a_number_is_held_in_another_layer(slicer_scene, arch, tmp_path):
    """Two segments with value 21 in different layers: the moving tooth is separated, not merged into the other."""
    from TeethSegmentationModuleLib.corrections import renumber

    from TeethSegmentationLib import mrml

    volume, node, truth = arch
    extra = np.zeros_like(truth)
    extra[0:2, 0:2, 0:2] = 21
    other = slicer_scene.slicer.util.addVolumeFromArray(extra, nodeClassName="vtkMRMLLabelMapVolumeNode")
    other.CopyOrientation(volume)
    segmentation = node.GetSegmentation()
    first_21 = mrml.segment_ids(node)[4]
    mrml._segmentations_logic().ImportLabelmapToSegmentationNode(mrml._oriented_image(other), node, "", "")
    late_21 = mrml.segment_ids(node)[-1]
    segmentation.SetSegmentIndex(late_21, 0)  # found first when looking for tooth 21
    was_14 = _id(node, 14)
    renumber(node, was_14, 21)
    assert np.array_equal(_mask(slicer_scene, node, was_14, volume), truth == 14)
    assert np.array_equal(_mask(slicer_scene, node, first_21, volume), truth == 21)
    assert np.array_equal(_mask(slicer_scene, node, late_21, volume), extra == 21)


def test_corrected_segmentation_goes_to_training_as_it_is(slicer_scene, arch, tmp_path):
    from TeethSegmentationModuleLib.corrections import merge_into, renumber

    from TeethSegmentationLib import mrml
    from TeethSegmentationLib.io.read_write import read_volume

    volume, node, truth = arch
    _images, _labels, problems = mrml.training_pairs_to_files([(volume, node)], tmp_path / "before")
    assert len(problems) == 1 and "Unnumbered tooth 1" in problems[0]
    merge_into(node, _id(node, UNNUMBERED_LABEL_BASE), _id(node, 36))
    renumber(node, _id(node, 14), 15, shift_rest=True)
    images, labels, problems = mrml.training_pairs_to_files([(volume, node)], tmp_path / "cases")
    assert problems == [] and len(images) == len(labels) == 1
    written = read_volume(labels[0]).array.transpose(2, 1, 0)
    expected = truth.copy()
    for old, new in ((17, 18), (16, 17), (15, 16), (14, 15), (UNNUMBERED_LABEL_BASE, 36)):
        expected[truth == old] = new
    assert np.array_equal(written, expected)


def test_tooth_rows_follow_the_corrections(slicer_scene, tmp_path):
    from TeethSegmentationModuleLib.corrections import renumber

    from TeethSegmentationLib import mrml, tooth_segments

    image, teeth, _fdi = _write_arch(tmp_path)
    volume = slicer_scene.logics["volumes"].AddArchetypeVolume(str(image), "arch", 0)
    node = mrml.output_segmentation(volume)
    report = {"teeth": [{"fdi": 14, "confidence": 0.3, "volume_mm3": 40.0}, {"fdi": 21, "confidence": 0.9}]}
    mrml.load_fdi_labelmap_as_segments(teeth, node, volume, report, show_3d=False)
    rows = tooth_segments.tooth_rows(node)
    assert [r[1] for r in rows[:2]] == [14, 21] and rows[0][3:] == (0.3, 40.0) and rows[2][3] is None
    renumber(node, rows[0][0], 21)
    rows = tooth_segments.tooth_rows(node)
    assert rows[0][1:4] == (21, segment_name(21), 0.3) and rows[1][1:3] == (14, segment_name(14))
