"""FDI tooth numbering, the 8 permanent and 5 primary tooth types, names, colours and SNOMED CT codes.

FDI (ISO 3950): quadrant 1 upper right, 2 upper left, 3 lower left, 4 lower right (the patient's
sides); the unit digit is the type, 1 central incisor ... 8 third molar. Primary (deciduous) teeth have
quadrants 5 upper right, 6 upper left, 7 lower left, 8 lower right and types 1 central incisor ... 5
second molar (51-55, 61-65, 71-75, 81-85), clear of the unnumbered teeth's label values (100 up).
The 9-class map used by the second network is 0 = background, 1..8 = type (a primary tooth counts as
the type of its place along the arch, 1..5); the 14-class map adds 9..13 = primary types 1..5.
"""

from __future__ import annotations

import numpy as np

QUADRANTS = (1, 2, 3, 4)
TYPES = tuple(range(1, 9))
FDI_NUMBERS: tuple[int, ...] = tuple(10 * q + t for q in QUADRANTS for t in TYPES)
NUM_CLASSES = 9  # background + 8 tooth types
PRIMARY_QUADRANTS = (5, 6, 7, 8)
PRIMARY_TYPES = tuple(range(1, 6))
PRIMARY_FDI_NUMBERS: tuple[int, ...] = tuple(10 * q + t for q in PRIMARY_QUADRANTS for t in PRIMARY_TYPES)
ALL_FDI_NUMBERS: tuple[int, ...] = FDI_NUMBERS + PRIMARY_FDI_NUMBERS
# 14 classes: background, 8 permanent types, then primary types 1..5 as classes 9..13.
NUM_CLASSES_MIXED = 14
PRIMARY_CLASS_OFFSET = 8
# Label values from here up are teeth the engine found but could not number (first one 100, then 101, ...).
UNNUMBERED_LABEL_BASE = 100

TYPE_NAMES = {
    1: "central incisor",
    2: "lateral incisor",
    3: "canine",
    4: "first premolar",
    5: "second premolar",
    6: "first molar",
    7: "second molar",
    8: "third molar",
}

# The class of each permanent type (incisors, canine, premolars, molars): two parts of one tooth can vote
# neighbouring types of one class (a molar's halves 6 and 7), hardly types of two classes.
TYPE_CLASSES = {1: "incisor", 2: "incisor", 3: "canine", 4: "premolar", 5: "premolar", 6: "molar", 7: "molar",
                8: "molar"}

PRIMARY_TYPE_NAMES = {
    1: "primary central incisor",
    2: "primary lateral incisor",
    3: "primary canine",
    4: "primary first molar",
    5: "primary second molar",
}

# One colour per type, readable over grey CT and distinct between neighbours along the arch.
TYPE_COLORS: dict[int, tuple[float, float, float]] = {
    1: (0.95, 0.90, 0.25),  # yellow
    2: (0.20, 0.75, 0.95),  # sky blue
    3: (0.95, 0.35, 0.30),  # red
    4: (0.35, 0.85, 0.35),  # green
    5: (0.75, 0.40, 0.95),  # violet
    6: (1.00, 0.60, 0.15),  # orange
    7: (0.20, 0.55, 1.00),  # blue
    8: (0.95, 0.45, 0.75),  # pink
}

# SNOMED CT codes of the permanent teeth, DICOM CID 4018 (laterality is part of the concept).
SNOMED_TOOTH: dict[int, tuple[str, str]] = {
    18: ("68085002", "Permanent maxillary right third molar tooth"),
    17: ("863902006", "Permanent maxillary right second molar tooth"),
    16: ("865995000", "Permanent maxillary right first molar tooth"),
    15: ("36492000", "Permanent maxillary right second premolar tooth"),
    14: ("57826002", "Permanent maxillary right first premolar tooth"),
    13: ("860767006", "Permanent maxillary right canine tooth"),
    12: ("424877001", "Permanent maxillary right lateral incisor tooth"),
    11: ("422653006", "Permanent maxillary right central incisor tooth"),
    21: ("424399000", "Permanent maxillary left central incisor tooth"),
    22: ("423185002", "Permanent maxillary left lateral incisor tooth"),
    23: ("860780009", "Permanent maxillary left canine tooth"),
    24: ("61897005", "Permanent maxillary left first premolar tooth"),
    25: ("23226009", "Permanent maxillary left second premolar tooth"),
    26: ("865988009", "Permanent maxillary left first molar tooth"),
    27: ("863901004", "Permanent maxillary left second molar tooth"),
    28: ("87704003", "Permanent maxillary left third molar tooth"),
    38: ("74344005", "Permanent mandibular left third molar tooth"),
    37: ("863898000", "Permanent mandibular left second molar tooth"),
    36: ("866006002", "Permanent mandibular left first molar tooth"),
    35: ("24573005", "Permanent mandibular left second premolar tooth"),
    34: ("2400006", "Permanent mandibular left first premolar tooth"),
    33: ("860782001", "Permanent mandibular left canine tooth"),
    32: ("423331005", "Permanent mandibular left lateral incisor tooth"),
    31: ("425106001", "Permanent mandibular left central incisor tooth"),
    41: ("424575004", "Permanent mandibular right central incisor tooth"),
    42: ("423937004", "Permanent mandibular right lateral incisor tooth"),
    43: ("860785004", "Permanent mandibular right canine tooth"),
    44: ("80140008", "Permanent mandibular right first premolar tooth"),
    45: ("8873007", "Permanent mandibular right second premolar tooth"),
    46: ("866005003", "Permanent mandibular right first molar tooth"),
    47: ("863899008", "Permanent mandibular right second molar tooth"),
    48: ("38994002", "Permanent mandibular right third molar tooth"),
}
# Primary teeth: DICOM PS3.3 C.8.11.9.1.1 names CID 4019 (deciduous dentition) for them; the SNOMED CT codes
# and meanings are those of the HL7 FHIR US Dental Data Exchange implementation guide, appendix D1 "crosswalk
# of all teeth" (SNOMED CT <-> SNODENT, ISO designations 51-85),
# https://hl7.org/fhir/us/dental-data-exchange/2020Sep/d1_crosswalk_of_all_teeth.html
SNOMED_PRIMARY_TOOTH: dict[int, tuple[str, str]] = {
    55: ("27855007", "Deciduous maxillary right second molar tooth"),
    54: ("17505006", "Deciduous maxillary right first molar tooth"),
    53: ("30618001", "Deciduous maxillary right canine tooth"),
    52: ("65624003", "Deciduous maxillary right lateral incisor tooth"),
    51: ("88824007", "Deciduous maxillary right central incisor tooth"),
    61: ("51678005", "Deciduous maxillary left central incisor tooth"),
    62: ("43622005", "Deciduous maxillary left lateral incisor tooth"),
    63: ("73937000", "Deciduous maxillary left canine tooth"),
    64: ("45234009", "Deciduous maxillary left first molar tooth"),
    65: ("51943008", "Deciduous maxillary left second molar tooth"),
    75: ("49330006", "Deciduous mandibular left second molar tooth"),
    74: ("38896004", "Deciduous mandibular left first molar tooth"),
    73: ("43281008", "Deciduous mandibular left canine tooth"),
    72: ("14770005", "Deciduous mandibular left lateral incisor tooth"),
    71: ("89552004", "Deciduous mandibular left central incisor tooth"),
    81: ("67834006", "Deciduous mandibular right central incisor tooth"),
    82: ("22445006", "Deciduous mandibular right lateral incisor tooth"),
    83: ("6062009", "Deciduous mandibular right canine tooth"),
    84: ("58646007", "Deciduous mandibular right first molar tooth"),
    85: ("61868007", "Deciduous mandibular right second molar tooth"),
}
SNOMED_TOOTH.update(SNOMED_PRIMARY_TOOTH)
SNOMED_CATEGORY = ("123037004", "Anatomical Structure")
SNOMED_REGION_TOOTH = ("38199008", "Tooth structure")
TERMINOLOGY_CONTEXT = "TeethSegmentation"


def is_fdi(number: int) -> bool:
    """A permanent (11-48) or primary (51-85) tooth's FDI number."""
    return int(number) in FDI_NUMBERS or int(number) in PRIMARY_FDI_NUMBERS


def is_primary(number: int) -> bool:
    return int(number) in PRIMARY_FDI_NUMBERS


# Unnumbered tooth k (k = 1, 2, ...) has label value UNNUMBERED_LABEL_BASE + k - 1; label maps are uint8.
UNNUMBERED_LABEL_MAX = 255
UNNUMBERED_COLOR = (0.6, 0.6, 0.6)


def is_unnumbered(value: int) -> bool:
    """Whether a label value is a tooth that the engine found but could not give an FDI number."""
    return UNNUMBERED_LABEL_BASE <= int(value) <= UNNUMBERED_LABEL_MAX


def unnumbered_label(k: int) -> int:
    """Label value of unnumbered tooth ``k`` (1-based)."""
    value = UNNUMBERED_LABEL_BASE + int(k) - 1
    if k < 1 or value > UNNUMBERED_LABEL_MAX:
        most = UNNUMBERED_LABEL_MAX - UNNUMBERED_LABEL_BASE + 1
        raise ValueError(f"Unnumbered tooth {k} has no label value (1..{most}).")
    return value


def unnumbered_name(value: int) -> str:
    """'Unnumbered tooth 1' for label value UNNUMBERED_LABEL_BASE (the name Slicer's module gives it)."""
    return f"Unnumbered tooth {int(value) - UNNUMBERED_LABEL_BASE + 1}"


def is_tooth_label(value: int) -> bool:
    """An FDI number or an unnumbered tooth's label value."""
    return is_fdi(value) or is_unnumbered(value)


def _check(fdi: int) -> int:
    if not is_fdi(fdi):
        raise ValueError(f"{fdi} is not an FDI tooth number (permanent 11-48, primary 51-85).")
    return int(fdi)


def tooth_type(fdi: int) -> int:
    """The unit digit: 1 central incisor ... 8 third molar (primary teeth: 1 .. 5 second molar)."""
    return _check(fdi) % 10


def quadrant(fdi: int) -> int:
    """The ten digit: 1-4 permanent, 5-8 primary (5 upper right, 6 upper left, 7 lower left, 8 lower right)."""
    return _check(fdi) // 10


def is_upper(fdi: int) -> bool:
    return quadrant(fdi) in (1, 2, 5, 6)


def side(fdi: int) -> str:
    """The patient's side: 'right' for quadrants 1, 4, 5 and 8, 'left' for 2, 3, 6 and 7."""
    return "right" if quadrant(fdi) in (1, 4, 5, 8) else "left"


def fdi_from(upper: bool, side_: str, type_: int, primary: bool = False) -> int:
    if side_ not in ("left", "right") or type_ not in (PRIMARY_TYPES if primary else TYPES):
        raise ValueError(f"no {'primary ' if primary else ''}tooth with side={side_!r} and type={type_!r}")
    q = (1 if side_ == "right" else 2) if upper else (4 if side_ == "right" else 3)
    return 10 * (q + (4 if primary else 0)) + int(type_)


def mirror_fdi(fdi: int) -> int:
    """The same tooth on the patient's other side (1<->2, 3<->4, 5<->6, 7<->8): what a left-right flip does."""
    q = quadrant(fdi)
    return 10 * {1: 2, 2: 1, 3: 4, 4: 3, 5: 6, 6: 5, 7: 8, 8: 7}[q] + tooth_type(fdi)


def successor(fdi: int) -> int:
    """The permanent tooth that replaces a primary one (55 -> 15); a permanent number is returned as is."""
    return _check(fdi) - 40 if is_primary(fdi) else int(fdi)


def _type_name(fdi: int) -> str:
    return (PRIMARY_TYPE_NAMES if is_primary(fdi) else TYPE_NAMES)[tooth_type(fdi)]


def tooth_name(fdi: int) -> str:
    """'Upper right central incisor (11)', 'Upper right primary second molar (55)'."""
    jaw = "Upper" if is_upper(fdi) else "Lower"
    return f"{jaw} {side(fdi)} {_type_name(fdi)} ({_check(fdi)})"


DEVELOPING_SUFFIX = " (developing)"  # a permanent tooth still forming in its crypt (a child's scan)


def segment_name(fdi: int, developing: bool = False) -> str:
    """Segment names in Slicer start with the number so they sort along the arch: '11 upper right central incisor'
    ('15 upper right second premolar (developing)' for a tooth still in its crypt)."""
    jaw = "upper" if is_upper(fdi) else "lower"
    return f"{_check(fdi)} {jaw} {side(fdi)} {_type_name(fdi)}{DEVELOPING_SUFFIX if developing else ''}"


def type_name(type_: int) -> str:
    return TYPE_NAMES[type_]


def label_color(label: int) -> tuple[float, float, float]:
    """RGB 0..1 of any tooth label in a label map: a tooth's colour, grey for an unnumbered tooth (100, 101, ...)."""
    return color(label) if is_fdi(label) else UNNUMBERED_COLOR


def color(fdi_or_type: int) -> tuple[float, float, float]:
    """RGB 0..1 of a tooth (FDI number) or a type (1..8). A primary tooth has its place's colour, paler
    (mixed with 45 % white), so that it differs from the permanent successor developing beneath it."""
    t = fdi_or_type if fdi_or_type in TYPES else tooth_type(fdi_or_type)
    if fdi_or_type in TYPES or not is_primary(fdi_or_type):
        return TYPE_COLORS[t]
    r, g, b = TYPE_COLORS[t]
    return (round(0.55 * r + 0.45, 4), round(0.55 * g + 0.45, 4), round(0.55 * b + 0.45, 4))


# --- Label maps.

# Lookup tables FDI label value -> class (anything that is not an FDI number maps to 0). 9 classes: a primary
# tooth is the type of its place along the arch (55 -> 5), as the shipped model was trained; 14 classes:
# primary type t is class 8 + t.
_FDI_TO_CLASS = {NUM_CLASSES: np.zeros(256, dtype=np.uint8), NUM_CLASSES_MIXED: np.zeros(256, dtype=np.uint8)}
for _n in ALL_FDI_NUMBERS:
    _FDI_TO_CLASS[NUM_CLASSES][_n] = _n % 10
    _FDI_TO_CLASS[NUM_CLASSES_MIXED][_n] = _n % 10 + (PRIMARY_CLASS_OFFSET if _n in PRIMARY_FDI_NUMBERS else 0)
_MIRROR_FDI = np.arange(256, dtype=np.uint8)
for _n in ALL_FDI_NUMBERS:
    _MIRROR_FDI[_n] = mirror_fdi(_n)


def fdi_map_to_classes(fdi_map: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """FDI label map (uint8/int) -> 9-class map (0 background, 1..8 type) or 14-class map (9..13 primary types)."""
    if num_classes not in _FDI_TO_CLASS:
        raise ValueError(f"A class map has {NUM_CLASSES} or {NUM_CLASSES_MIXED} classes, not {num_classes}.")
    return _FDI_TO_CLASS[num_classes][np.asarray(fdi_map).astype(np.intp).clip(0, 255)]


def class_names(num_classes: int = NUM_CLASSES) -> dict[int, str]:
    """Class index -> name of the types network's classes (the model file's "classes")."""
    names = {0: "background", **TYPE_NAMES}
    if num_classes == NUM_CLASSES_MIXED:
        names.update({PRIMARY_CLASS_OFFSET + t: name for t, name in PRIMARY_TYPE_NAMES.items()})
    return names


def mirror_fdi_map(fdi_map: np.ndarray) -> np.ndarray:
    """Swap the quadrants of an FDI map (1<->2, 3<->4, 5<->6, 7<->8): required after a left-right flip of the image."""
    return _MIRROR_FDI[np.asarray(fdi_map).astype(np.intp).clip(0, 255)].astype(np.asarray(fdi_map).dtype)


def terminology_entry(fdi: int) -> str:
    """Slicer's serialized terminology entry for a tooth (survives .seg.nrrd save and load).

    Form: ``context~SCT^code^meaning~SCT^code^meaning~^^~anatomicContext~SCT^code^meaning~^^``
    (category, type, type modifier, anatomic context name, region, region modifier). No trailing ``|``:
    that is the separator between tags in a .seg.nrrd header, which the file writer adds.
    """
    code, meaning = SNOMED_TOOTH[_check(fdi)]
    cat_code, cat_meaning = SNOMED_CATEGORY
    reg_code, reg_meaning = SNOMED_REGION_TOOTH
    return (
        f"{TERMINOLOGY_CONTEXT}~SCT^{cat_code}^{cat_meaning}~SCT^{code}^{meaning}~^^"
        f"~Anatomic codes - DICOM master list~SCT^{reg_code}^{reg_meaning}~^^"
    )
