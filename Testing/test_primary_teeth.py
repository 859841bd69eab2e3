"""Primary teeth (FDI 51-85): numbers, names, colours, SNOMED CT codes, class maps, and outputs."""

from __future__ import annotations

import nrrd
import numpy as np
import pytest

from TeethSegmentationLib import fdi
from TeethSegmentationLib.io.seg_nrrd import write_segmentation
from TeethSegmentationLib.io.volume import Volume


def test_primary_numbers_are_the_iso_3950_set_clear_of_unnumbered_labels():
    assert len(fdi.PRIMARY_FDI_NUMBERS) == 20
    assert fdi.PRIMARY_FDI_NUMBERS[:5] == (51, 52, 53, 54, 55) and fdi.PRIMARY_FDI_NUMBERS[-1] == 85
    assert max(fdi.PRIMARY_FDI_NUMBERS) < fdi.UNNUMBERED_LABEL_BASE
    assert not set(fdi.PRIMARY_FDI_NUMBERS) & set(fdi.FDI_NUMBERS)
    for n in (50, 56, 59, 60, 66, 86, 90, 19, 49):
        assert not fdi.is_fdi(n) and not fdi.is_primary(n)
    assert all(fdi.is_fdi(n) and fdi.is_primary(n) and fdi.is_tooth_label(n) for n in fdi.PRIMARY_FDI_NUMBERS)


@pytest.mark.parametrize(
    "number, name, upper, side, successor",
    [
        (55, "Upper right primary second molar (55)", True, "right", 15),
        (61, "Upper left primary central incisor (61)", True, "left", 21),
        (73, "Lower left primary canine (73)", False, "left", 33),
        (84, "Lower right primary first molar (84)", False, "right", 44),
    ],
)
def test_names_jaw_side_and_successor(number, name, upper, side, successor):
    assert fdi.tooth_name(number) == name
    assert fdi.segment_name(number) == f"{number} {name.split(' (')[0][0].lower()}{name.split(' (')[0][1:]}"
    assert fdi.is_upper(number) is upper and fdi.side(number) == side
    assert fdi.successor(number) == successor and fdi.successor(successor) == successor
    assert fdi.fdi_from(upper, side, number % 10, primary=True) == number


def test_mirror_swaps_primary_quadrants_in_numbers_and_maps():
    assert [fdi.mirror_fdi(n) for n in (51, 65, 72, 85)] == [61, 55, 82, 75]
    label_map = np.array([0, 11, 55, 61, 73, 84, 100], dtype=np.uint8)
    assert fdi.mirror_fdi_map(label_map).tolist() == [0, 21, 65, 51, 83, 74, 100]


def test_snomed_codes_of_the_deciduous_teeth():
    codes = {n: fdi.SNOMED_TOOTH[n] for n in fdi.PRIMARY_FDI_NUMBERS}
    assert codes[51] == ("88824007", "Deciduous maxillary right central incisor tooth")
    assert codes[85] == ("61868007", "Deciduous mandibular right second molar tooth")
    assert len({c for c, _ in codes.values()}) == 20
    assert not {c for c, _ in codes.values()} & {fdi.SNOMED_TOOTH[n][0] for n in fdi.FDI_NUMBERS}
    for n, (_code, meaning) in codes.items():  # the meaning says the jaw and side the number says
        assert meaning.startswith("Deciduous " + ("maxillary" if fdi.is_upper(n) else "mandibular") + " " + fdi.side(n))
        assert f"^{codes[n][0]}^" in fdi.terminology_entry(n)


def test_primary_colours_are_paler_than_their_successors():
    for n in fdi.PRIMARY_FDI_NUMBERS:
        own, succ = np.array(fdi.color(n)), np.array(fdi.color(fdi.successor(n)))
        assert np.all(own >= succ) and np.abs(own - succ).max() > 0.02 and np.all(own <= 1)


def test_class_maps_nine_by_place_fourteen_by_dentition():
    label_map = np.array([0, 11, 16, 51, 55, 85, 48, 100, 200], dtype=np.uint8)
    assert fdi.fdi_map_to_classes(label_map).tolist() == [0, 1, 6, 1, 5, 5, 8, 0, 0]
    assert fdi.fdi_map_to_classes(label_map, 14).tolist() == [0, 1, 6, 9, 13, 13, 8, 0, 0]
    assert fdi.class_names(14)[13] == "primary second molar" and len(fdi.class_names()) == 9
    with pytest.raises(ValueError):
        fdi.fdi_map_to_classes(label_map, 12)


def test_seg_nrrd_names_and_colours_primary_segments(tmp_path):
    array = np.zeros((6, 6, 6), dtype=np.uint8)
    array[1:3, 1:3, 1:3], array[3:5, 3:5, 1:3], array[1:3, 3:5, 4:6] = 55, 15, 101
    teeth = write_segmentation(Volume(array, np.eye(4)), tmp_path / "t.seg.nrrd", developing={15})
    assert teeth == [15, 55, 101]
    _, header = nrrd.read(str(tmp_path / "t.seg.nrrd"))
    names = {header[f"Segment{i}_LabelValue"]: header[f"Segment{i}_Name"] for i in range(3)}
    assert names["55"] == "55 upper right primary second molar"
    assert names["15"] == "15 upper right second premolar (developing)" and names["101"] == "Unnumbered tooth 2"
    tags = {header[f"Segment{i}_LabelValue"]: header[f"Segment{i}_Tags"] for i in range(3)}
    assert "27855007" in tags["55"]


def test_the_fdi_label_table_keeps_primary_teeth():
    from TeethSegmentationLib.label_tables import to_fdi

    array = np.array([0, 11, 55, 85, 48], dtype=np.uint8)
    assert to_fdi(array, "fdi").tolist() == [0, 11, 55, 85, 48]


@pytest.mark.parametrize(
    "name, number",
    [
        ("55 upper right primary second molar", 55),
        ("Deciduous mandibular left canine tooth", 73),
        ("lower right milk first molar", 84),
        ("15 upper right second premolar (developing)", 15),
        ("upper right second molar", 17),
    ],
)
def test_segment_names_of_primary_and_developing_teeth_map_back(name, number):
    from TeethSegmentationLib.segment_fdi import fdi_from_name, fdi_from_terminology

    assert fdi_from_name(name) == number
    assert fdi_from_terminology(fdi.terminology_entry(number)) == number
    assert fdi_from_name(fdi.segment_name(number, developing=True)) == number
