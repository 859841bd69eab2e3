"""segment_fdi: which FDI tooth a user's segment is, from its terminology, name or label value (no Slicer)."""

from __future__ import annotations

import re

import pytest

from TeethSegmentationLib.fdi import FDI_NUMBERS, terminology_entry
from TeethSegmentationLib.segment_fdi import (
    SegmentInfo,
    case_problem,
    fdi_for_segment,
    fdi_from_name,
    fdi_from_terminology,
    fdi_from_words,
    is_non_tooth,
    map_segments,
)


@pytest.mark.parametrize(
    ("name", "fdi"),
    [
        ("11 upper right central incisor", 11),
        ("tooth 11", 11),
        ("Tooth_11", 11),
        ("Upper right central incisor (11)", 11),
        ("UR1", 11),
        ("ll 6", 36),
        ("lower right third molar", 48),
        ("Permanent mandibular left first molar tooth", 36),
        ("Label_27", 27),
        ("FDI-45", 45),
        ("48", 48),
        ("Segment_11", None),  # Slicer's default names say nothing about the tooth
        ("tooth 3", None),  # not FDI (Universal numbering is ambiguous): ask the user
        ("tooth 111", None),
        ("Upper left central incisor (11)", None),  # name and number disagree
        ("11 and 12", None),
        ("Mandible", None),
        ("", None),
    ],
)
def test_fdi_from_name(name, fdi):
    assert fdi_from_name(name) == fdi


def test_fdi_from_terminology_and_priority():
    for fdi in FDI_NUMBERS:
        assert fdi_from_terminology(terminology_entry(fdi)) == fdi
    other = "General Anatomy list~SCT^123037004^Anatomical Structure~SCT^1^x~^^"
    assert fdi_from_terminology(other) is None and fdi_from_terminology("") is None
    assert fdi_for_segment(SegmentInfo("a", "tooth 12", 3, terminology_entry(36))) == 36
    assert fdi_for_segment(SegmentInfo("a", "Segment_1", 47, "")) == 47  # an FDI label value is the last resort
    assert fdi_for_segment(SegmentInfo("a", "Segment_1", 4, "")) is None
    assert fdi_for_segment(SegmentInfo("a", "Mandible", 31, "")) is None


def test_map_segments_and_problem_sentence():
    mapping = map_segments(
        [SegmentInfo("a", "tooth 11"), SegmentInfo("b", "Maxilla"), SegmentInfo("c", "UR1"), SegmentInfo("d", "blob")]
    )
    assert mapping.fdi == {"a": 11, "c": 11} and mapping.ignored == ["Maxilla"] and mapping.unmapped == ["blob"]
    problem = case_problem("scan", mapping)
    assert problem.startswith("Case 'scan': ") and "'blob'" in problem and "tooth 11" in problem
    assert case_problem("ok", map_segments([SegmentInfo("a", "tooth 11")])) is None
    assert "no tooth segments" in case_problem("empty", map_segments([]))


def test_words_need_one_jaw_one_side_and_one_type():
    assert fdi_from_words("maxillary right canine") == 13
    assert fdi_from_words("upper lower right canine") is None
    assert fdi_from_words("upper canine") is None
    assert fdi_from_words("upper right tooth") is None


def test_non_tooth_segments_are_ignored_unless_they_name_a_tooth():
    assert is_non_tooth("Mandibular canal") and is_non_tooth("Maxilla")
    assert not is_non_tooth("tooth 36 crown") and not is_non_tooth("blob")


def test_duplicates_are_reported_in_one_sentence():
    mapping = map_segments([SegmentInfo("a", "tooth 21"), SegmentInfo("b", "UL1")])
    assert mapping.duplicates == {21: ["tooth 21", "UL1"]}
    problem = case_problem("scan", mapping)
    assert "are all tooth 21" in problem and not re.search(r"\.\s+[A-Z]", problem) and problem.endswith(".")
