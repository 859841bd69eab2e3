"""Corrected segmentations in any state a user leaves them -> the FDI labels fine-tuning learns from."""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np
import pytest

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.fdi import segment_name, terminology_entry
from TeethSegmentationLib.io.seg_nrrd_read import SegmentRecord, read_segmentation
from TeethSegmentationLib.io.volume import Volume, make_matrix
from TeethSegmentationLib.training.corrected_labels import (
    UNKNOWN,
    CorrectedLabels,
    fill_unlabelled,
    read_corrected_labels,
    segment_number,
    user_teeth_only,
)

SHAPE = (24, 20, 16)
SPACING = (0.4, 0.5, 0.6)
IMAGE = Volume(np.zeros(SHAPE, np.int16), make_matrix(np.eye(3), SPACING, (-5.0, 3.0, 1.0)), "RAS")
OFFSET = np.array([2, 3, 1])  # the segmentation file holds only a box of the image, as Slicer writes it


def _record(name: str, value: int, terminology: int | None = None) -> SegmentRecord:
    return SegmentRecord("s", name, value, 0, terminology_entry(terminology) if terminology else "")


@pytest.mark.parametrize(
    "record, expected",
    [
        (_record(segment_name(11), 11, 11), 11),  # our result, untouched
        (_record("21", 11, 11), 21),  # renamed in Segment Editor: the label value and terminology stay old
        (_record("tooth 21", 11), 21),
        (_record(segment_name(21), 12, 12), 21),  # renamed in our own style: name is the odd one out
        (_record(segment_name(11), 21, 11), 21),  # label value changed, name left as it was
        (_record(segment_name(11), 11, 21), 21),  # terminology changed (the name is not auto-generated)
        (_record(segment_name(11), 22, 21), None),  # two different edits: ambiguous
        (_record("Segment_1", 36), 36),  # Slicer's default name: the label value says it
        (_record("Segment_1", 3, 46), 46),
        (_record("caries", 5), None),
        (_record("implant", 46), None),
        (_record("Mandible", 31), None),
    ],
    ids=["ours", "renamed", "renamed-words", "renamed-our-style", "value-changed", "terminology-changed",
         "ambiguous", "by-value", "by-terminology", "caries", "implant", "mandible"],
)
def test_which_tooth_a_segment_is(record, expected):
    assert segment_number(record) == expected


def _write_seg(path: Path, layers: np.ndarray, segments: list[tuple[str, int, int, str]]) -> Path:
    """A .seg.nrrd as Slicer writes it: LPS, a box at OFFSET of the image, one layer or a list of layers."""
    matrix = IMAGE.ijk_to_ras.copy()
    matrix[:3, 3] += matrix[:3, :3] @ OFFSET
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ matrix
    spatial = lps[:3, :3].T
    header = {"space": "left-posterior-superior", "space origin": lps[:3, 3]}
    if layers.shape[0] == 1:
        data, header["space directions"], header["kinds"] = layers[0], spatial, ["domain"] * 3
    else:
        data = layers
        header["space directions"] = np.vstack([np.full(3, np.nan), spatial])
        header["kinds"] = ["list", "domain", "domain", "domain"]
    for i, (name, value, layer, tags) in enumerate(segments):
        header.update({f"Segment{i}_ID": f"Segment_{i}", f"Segment{i}_Name": name,
                       f"Segment{i}_LabelValue": str(value), f"Segment{i}_Layer": str(layer),
                       f"Segment{i}_Tags": tags})
    nrrd.write(str(path), data.astype(np.uint8), header)
    return path


def _box(lo, hi) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


@pytest.fixture
def messy(tmp_path) -> Path:
    """Two layers: teeth 11 (ours), 21 (renamed from 11), 36 split over two segments, a caries segment
    overlapping 11, an implant, an empty segment and two tooth segments that overlap."""
    layers = np.zeros((2, 16, 14, 12), np.uint8)
    layers[0][_box((1, 1, 1), (5, 5, 5))] = 11
    layers[0][_box((6, 1, 1), (10, 5, 5))] = 12  # renamed to 21: label value and terminology still say 12
    layers[0][_box((1, 7, 1), (4, 11, 5))] = 36  # 36, first part
    layers[0][_box((4, 7, 1), (6, 11, 5))] = 37  # 36, second part (named so, label value left at 37)
    layers[0][_box((11, 8, 6), (15, 12, 10))] = 5  # implant
    layers[1][_box((2, 2, 2), (4, 4, 4))] = 1  # caries inside 11
    layers[1][_box((8, 2, 2), (12, 4, 4))] = 22  # 22, overlaps the renamed 21 at i = 8, 9
    segments = [
        (segment_name(11), 11, 0, f"TerminologyEntry:{terminology_entry(11)}|"),
        ("21 upper left central incisor", 12, 0, f"TerminologyEntry:{terminology_entry(12)}|"),
        ("36", 36, 0, ""),
        ("tooth 36 distal part", 37, 0, ""),
        ("Implant", 5, 0, ""),
        ("caries", 1, 1, ""),
        ("22", 22, 1, ""),
        ("empty one", 9, 0, ""),
    ]
    return _write_seg(tmp_path / "messy.seg.nrrd", layers, segments)


def test_reader_keeps_layers_names_values_and_geometry(messy):
    found = read_segmentation(messy)
    assert found.layers.shape == (2, 16, 14, 12) and len(found.segments) == 8
    assert [s.layer for s in found.segments] == [0, 0, 0, 0, 0, 1, 1, 0]
    assert found.segments[1].name == "21 upper left central incisor" and found.segments[1].label_value == 12
    expected = IMAGE.ijk_to_ras.copy()
    expected[:3, 3] += expected[:3, :3] @ OFFSET
    assert np.allclose(found.ijk_to_ras, expected)


def test_messy_segmentation_becomes_fdi_labels_on_the_image_grid(messy):
    labels = read_corrected_labels(messy, IMAGE, "messy")
    fdi = labels.fdi
    at = lambda i, j, k: int(fdi[i + OFFSET[0], j + OFFSET[1], k + OFFSET[2]])  # noqa: E731
    assert at(1, 1, 1) == 11 and at(3, 3, 3) == 11  # caries inside 11 does not punch a hole
    assert at(7, 1, 1) == 21  # renamed: the name wins over the old label value
    assert at(1, 8, 1) == 36 and at(5, 8, 1) == 36  # both parts of 36
    assert at(9, 3, 3) == 22 and at(7, 3, 3) == 21  # overlap: the later segment keeps the voxels
    assert at(12, 9, 7) == UNKNOWN  # the implant is unknown until the model's prediction fills it
    assert labels.teeth == [11, 21, 22, 36] and int(fdi[0, 0, 0]) == 0
    text = " ".join(labels.warnings)
    for expected in ("'Implant' (not a tooth)", "'empty one'", "are all tooth 36", "lie in two tooth segments"):
        assert expected in text


def test_unknown_voxels_and_unlabelled_teeth_take_the_models_prediction():
    user = np.zeros((30, 10, 10), np.uint8)
    user[2:6, 2:6, 2:6] = 11  # the one tooth the user corrected (the model had it a bit smaller, as 12)
    user[20:24, 2:6, 2:6] = UNKNOWN  # a left-out segment
    predicted = np.zeros_like(user)
    predicted[3:6, 2:6, 2:6] = 12  # the model's wrong number for the user's tooth: not added
    predicted[8:12, 2:6, 2:6] = 21  # a tooth the user did not label: added
    predicted[20:22, 2:6, 2:6] = 22  # inside the left-out segment
    filled = fill_unlabelled(CorrectedLabels(user, []), predicted, "partial")
    assert (filled.fdi[2:6, 2:6, 2:6] == 11).all()  # the user's voxels are never overwritten
    assert (filled.fdi[8:12, 2:6, 2:6] == 21).all()
    assert (filled.fdi[20:22, 2:6, 2:6] == 22).all() and (filled.fdi[22:24, 2:6, 2:6] == 0).all()
    assert 12 not in filled.fdi
    assert "teeth 21, 22 are not in your segmentation" in filled.warnings[0]
    assert set(np.unique(user_teeth_only(CorrectedLabels(user, [])))) == {0, 11}


def test_a_segmentation_without_any_numbered_tooth_cannot_be_used(tmp_path):
    layers = np.zeros((1, 6, 6, 6), np.uint8)
    layers[0, 1:4, 1:4, 1:4] = 1
    path = _write_seg(tmp_path / "bone.seg.nrrd", layers, [("Mandible", 1, 0, ""), ("Segment_2", 2, 0, "")])
    with pytest.raises(InputError, match=r"^Case 'bone' has no segment that names an FDI tooth; rename"):
        read_corrected_labels(path, IMAGE, "bone")


def test_label_maps_go_through_the_label_tables(tmp_path):
    from TeethSegmentationLib.io.read_write import write_volume

    array = np.zeros(SHAPE, np.uint8)
    array[2:5, 2:5, 2:5] = 3  # DentVoxel: value 3 is tooth 11
    array[8:11, 2:5, 2:5] = 1  # a jaw: background
    path = write_volume(IMAGE.with_array(array), tmp_path / "dv.labels.nrrd")
    labels = read_corrected_labels(path, IMAGE, "dv", label_table="dentvoxel")
    assert labels.teeth == [11] and int(labels.fdi[9, 3, 3]) == 0
    with pytest.raises(InputError, match="not valid for --label-kind fdi"):
        read_corrected_labels(path, IMAGE, "dv")
