"""Which FDI tooth a user's segment is: from its terminology, its name or its label value.

Training cases come from the Slicer scene: our own (corrected) results carry the FDI number as
label value, name and terminology; segmentations made elsewhere are named "tooth 11", "Tooth_11",
"Upper right central incisor (11)", "UR1" or "Label_11" (a label map imported into Slicer), or
carry the SNOMED code of the tooth. Pure Python: no Slicer, tested on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from TeethSegmentationLib import fdi as labels

_CODE_TO_FDI = {code: fdi for fdi, (code, _meaning) in labels.SNOMED_TOOTH.items()}
_TYPE_WORDS = {name: t for t, name in labels.TYPE_NAMES.items()}
_PRIMARY_TYPE_WORDS = {name.removeprefix("primary "): t for t, name in labels.PRIMARY_TYPE_NAMES.items()}
_PRIMARY = re.compile(r"\b(primary|deciduous|milk)\b")
_NON_TOOTH = re.compile(
    r"\b(mandible|mandibular bone|maxilla|maxillary bone|jaw|bone|canal|nerve|sinus|pharynx|airway|skull|"
    r"background|soft tissue|gingiva|crown|implant|bridge|restoration)\b",
    re.IGNORECASE,
)
_SLICER_DEFAULT = re.compile(r"^\s*segment[\s_-]*\d+\s*$", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\d.])(\d{1,2})(?![\d.])")
_QUADRANT_CODE = re.compile(r"^\s*(UR|UL|LL|LR)[\s_-]*([1-8])\s*$", re.IGNORECASE)
_QUADRANT_OF = {"UR": 1, "UL": 2, "LL": 3, "LR": 4}


@dataclass(frozen=True)
class SegmentInfo:
    """What the scene knows about one segment."""

    segment_id: str
    name: str
    label_value: int | None = None
    terminology: str = ""


def fdi_from_terminology(entry: str) -> int | None:
    """The FDI number of a serialized Slicer terminology entry whose type is a SNOMED tooth code."""
    fields = (entry or "").rstrip("|").split("~")
    if len(fields) < 3:
        return None
    parts = fields[2].split("^")
    if len(parts) >= 2 and parts[1] in _CODE_TO_FDI:
        return _CODE_TO_FDI[parts[1]]
    return fdi_from_words(parts[2]) if len(parts) >= 3 else None


def fdi_from_words(text: str) -> int | None:
    """'upper right central incisor', 'Permanent mandibular left first molar tooth', 'upper right primary
    second molar' (or deciduous, milk) -> FDI."""
    low = " ".join(re.sub(r"[_\-()]", " ", text.lower()).split())
    upper = re.search(r"\b(upper|maxillary)\b", low) is not None
    lower = re.search(r"\b(lower|mandibular)\b", low) is not None
    right, left = re.search(r"\bright\b", low) is not None, re.search(r"\bleft\b", low) is not None
    primary = _PRIMARY.search(low) is not None
    types = [t for name, t in (_PRIMARY_TYPE_WORDS if primary else _TYPE_WORDS).items() if name in low]
    if upper == lower or right == left or len(types) != 1:
        return None
    return labels.fdi_from(upper, "right" if right else "left", types[0], primary=primary)


def fdi_from_name(name: str) -> int | None:
    """An FDI number from a segment name, or None when the name does not say which tooth it is."""
    if not name or _SLICER_DEFAULT.match(name):
        return None
    code = _QUADRANT_CODE.match(name)
    if code:
        return 10 * _QUADRANT_OF[code.group(1).upper()] + int(code.group(2))
    numbers = {int(n) for n in _NUMBER.findall(name) if labels.is_fdi(int(n))}
    by_words = fdi_from_words(name)
    if len(numbers) == 1:
        number = numbers.pop()
        return number if by_words in (None, number) else None
    return by_words if not numbers else None


def is_non_tooth(name: str) -> bool:
    """Segments such as 'Mandible' or 'Mandibular canal' that training ignores on purpose."""
    return bool(_NON_TOOTH.search(name or "")) and fdi_from_name(name) is None


def fdi_for_segment(segment: SegmentInfo) -> int | None:
    """Terminology first (an explicit code), then the name, then an FDI-valued label value."""
    for found in (fdi_from_terminology(segment.terminology), fdi_from_name(segment.name)):
        if found is not None:
            return found
    if segment.label_value is not None and labels.is_fdi(segment.label_value) and not is_non_tooth(segment.name):
        return int(segment.label_value)
    return None


@dataclass
class CaseMapping:
    """Segment id -> FDI for one case, with what was ignored and what could not be mapped."""

    fdi: dict[str, int]
    ignored: list[str]
    unmapped: list[str]
    duplicates: dict[int, list[str]]


def map_segments(segments: Iterable[SegmentInfo]) -> CaseMapping:
    mapping = CaseMapping({}, [], [], {})
    names_by_fdi: dict[int, list[str]] = {}
    for segment in segments:
        fdi = fdi_for_segment(segment)
        if fdi is not None:
            mapping.fdi[segment.segment_id] = fdi
            names_by_fdi.setdefault(fdi, []).append(segment.name)
        elif is_non_tooth(segment.name):
            mapping.ignored.append(segment.name)
        else:
            mapping.unmapped.append(segment.name)
    mapping.duplicates = {fdi: names for fdi, names in names_by_fdi.items() if len(names) > 1}
    return mapping


def case_problem(case_name: str, mapping: CaseMapping) -> str | None:
    """One sentence about what is wrong with a case's segments, or None."""
    parts = []
    if mapping.unmapped:
        quoted = ", ".join(f"'{n}'" for n in mapping.unmapped)
        parts.append(f"no FDI tooth number could be found for segment(s) {quoted}")
    for fdi, names in sorted(mapping.duplicates.items()):
        parts.append(f"segments {', '.join(repr(n) for n in names)} are all tooth {fdi}")
    if not mapping.fdi and not mapping.unmapped:
        parts.append("it has no tooth segments")
    if not parts:
        return None
    return (
        f"Case '{case_name}': {'; '.join(parts)}; rename each tooth segment to start with its FDI number "
        f"(e.g. '11 upper right central incisor' or 'tooth 11') or set its terminology."
    )
