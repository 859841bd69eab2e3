"""Write Resources/Terminology/TeethSegmentation.term.json from TeethSegmentationLib.fdi.

The terminology file is generated, never edited by hand, so names, codes and colours cannot drift
from the engine. ``Testing/test_terminology.py`` checks that the committed file equals this output.

    python scripts/make_terminology.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from TeethSegmentationLib import fdi as labels  # noqa: E402

OUTPUT = ROOT / "Resources" / "Terminology" / "TeethSegmentation.term.json"
SCHEMA = "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/segment-context-schema.json#"


def _code(value: str, meaning: str) -> dict:
    return {"CodeMeaning": meaning, "CodingSchemeDesignator": "SCT", "CodeValue": value}


def tooth_type(fdi: int) -> dict:
    code, meaning = labels.SNOMED_TOOTH[fdi]
    rgb = [int(round(255 * c)) for c in labels.color(fdi)]
    return {
        **_code(code, meaning),
        "recommendedDisplayRGBValue": rgb,
        "3dSlicerLabel": labels.segment_name(fdi),
        "3dSlicerIntegerLabel": fdi,
        "SNOMEDCTConceptID": code,
        "contextGroupName": "TeethSegmentation",
    }


def build_terminology() -> dict:
    """The terminology context: one category (Anatomical Structure) with one type per permanent and per primary tooth.

    Segments point at the anatomic region "Tooth structure" of Slicer's "Anatomic codes - DICOM master
    list" context through their terminology entry (``labels.terminology_entry``).
    """
    category = {
        **_code(*labels.SNOMED_CATEGORY),
        "showAnatomy": False,
        "contextGroupName": "SegmentationPropertyCategories",
        "cid": "7150",
        "Type": [tooth_type(fdi) for fdi in labels.ALL_FDI_NUMBERS],
    }
    return {
        "SegmentationCategoryTypeContextName": labels.TERMINOLOGY_CONTEXT,
        "@schema": SCHEMA,
        "SegmentationCodes": {"Category": [category]},
    }


def render() -> str:
    return json.dumps(build_terminology(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what would be written")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = OUTPUT.exists() and OUTPUT.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{OUTPUT} is out of date: run scripts/make_terminology.py")
        return 0 if same else 1
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
