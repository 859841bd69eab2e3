"""Resources/Terminology/TeethSegmentation.term.json: generated from fdi.py and loadable by Slicer."""

from __future__ import annotations

import json
from pathlib import Path

from script_modules import load_script

from TeethSegmentationLib.fdi import (
    ALL_FDI_NUMBERS,
    SNOMED_CATEGORY,
    SNOMED_TOOTH,
    TERMINOLOGY_CONTEXT,
    color,
    segment_name,
    terminology_entry,
)

ROOT = Path(__file__).resolve().parent.parent
TERM_FILE = ROOT / "Resources" / "Terminology" / "TeethSegmentation.term.json"


def _generator():
    return load_script("make_terminology")


def _types() -> list[dict]:
    data = json.loads(TERM_FILE.read_text(encoding="utf-8"))
    (category,) = data["SegmentationCodes"]["Category"]
    assert (category["CodingSchemeDesignator"], category["CodeValue"]) == ("SCT", SNOMED_CATEGORY[0])
    return category["Type"]


def test_file_equals_generator_output():
    assert TERM_FILE.read_text(encoding="utf-8") == _generator().render(), "run scripts/make_terminology.py"


def test_generator_check_mode(capsys):
    assert _generator().main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_all_52_teeth_with_codes_names_and_colours():
    data = json.loads(TERM_FILE.read_text(encoding="utf-8"))
    assert data["SegmentationCategoryTypeContextName"] == TERMINOLOGY_CONTEXT
    types = _types()
    assert sorted(t["3dSlicerIntegerLabel"] for t in types) == sorted(ALL_FDI_NUMBERS)
    for entry in types:
        fdi = entry["3dSlicerIntegerLabel"]
        assert (entry["CodeValue"], entry["CodeMeaning"]) == SNOMED_TOOTH[fdi]
        assert entry["CodingSchemeDesignator"] == "SCT"
        assert entry["3dSlicerLabel"] == segment_name(fdi)
        assert entry["recommendedDisplayRGBValue"] == [round(255 * c) for c in color(fdi)]
    assert len({t["CodeValue"] for t in types}) == 52


def test_loads_into_slicer_terminology_logic(slicer_scene):
    slicer = slicer_scene.slicer
    logic = slicer_scene.logics["terminologies"]
    name = logic.LoadTerminologyFromFile(str(TERM_FILE))
    assert name == TERMINOLOGY_CONTEXT
    category = slicer.vtkSlicerTerminologyCategory()
    assert logic.GetNthCategoryInTerminology(name, 0, category)
    assert category.GetCodeValue() == SNOMED_CATEGORY[0]
    assert logic.GetNumberOfTypesInTerminologyCategory(name, category) == 52
    codes = {}
    for index in range(52):
        type_ = slicer.vtkSlicerTerminologyType()
        assert logic.GetNthTypeInTerminologyCategory(name, category, index, type_)
        codes[type_.GetCodeValue()] = tuple(type_.GetRecommendedDisplayRGBValue())
    assert set(codes) == {code for code, _ in SNOMED_TOOTH.values()}
    code11 = SNOMED_TOOTH[11][0]
    assert codes[code11] == tuple(round(255 * c) for c in color(11))
    assert codes[SNOMED_TOOTH[55][0]] == tuple(round(255 * c) for c in color(55))


def test_segment_terminology_entries_resolve_against_the_context(slicer_scene):
    slicer = slicer_scene.slicer
    logic = slicer_scene.logics["terminologies"]
    logic.LoadTerminologyFromFile(str(TERM_FILE))
    for fdi in (11, 36, 55, 83):
        entry = slicer.vtkSlicerTerminologyEntry()
        assert logic.DeserializeTerminologyEntry(terminology_entry(fdi), entry)
        assert entry.GetTerminologyContextName() == TERMINOLOGY_CONTEXT
        assert entry.GetTypeObject().GetCodeValue() == SNOMED_TOOTH[fdi][0]
        assert logic.UpdateEntryFromLoadedTerminologies(entry, [TERMINOLOGY_CONTEXT], [])
        assert tuple(entry.GetTypeObject().GetRecommendedDisplayRGBValue()) == tuple(
            round(255 * c) for c in color(fdi))
        found = slicer.vtkSlicerTerminologyEntry()
        assert logic.FindTypeInTerminologyBy3dSlicerLabel(TERMINOLOGY_CONTEXT, segment_name(fdi), found)
        assert found.GetTypeObject().GetCodeValue() == SNOMED_TOOTH[fdi][0]
