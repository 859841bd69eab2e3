"""Label tables: a dataset's label values -> FDI tooth numbers.

``fdi``          values are FDI numbers already (11-18, 21-28, 31-38, 41-48); anything else is an error.
``toothfairy2``  teeth carry their FDI number among other structures (1-10 jaws, canals, sinuses,
                 pharynx, bridges, crowns, implants ...): those are not teeth and become background.
``dentvoxel``    teeth 11..48 are the values 3..34 in FDI order (11..18, 21..28, 31..38, 41..48);
                 the other structures (jaws, canals, sinuses) become background.
``FILE.json``    ``{"value": fdi, ...}``; map a value to 0 to ignore it. A value the file does not
                 list is an error, so a typo never silently drops a tooth.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.fdi import ALL_FDI_NUMBERS, FDI_NUMBERS

TABLE_NAMES = ("fdi", "toothfairy2", "dentvoxel")


@dataclass(frozen=True)
class LabelTable:
    name: str
    mapping: dict[int, int] = field(default_factory=dict)  # dataset value -> FDI number (0 = ignore)
    others_are_background: bool = False  # values not in ``mapping`` become 0 instead of an error


def _builtin(name: str) -> LabelTable:
    if name == "fdi":
        return LabelTable("fdi", {0: 0, **{n: n for n in ALL_FDI_NUMBERS}})  # permanent and primary teeth
    if name == "toothfairy2":
        return LabelTable("toothfairy2", {0: 0, **{n: n for n in FDI_NUMBERS}}, others_are_background=True)
    if name == "dentvoxel":
        return LabelTable("dentvoxel", {0: 0, **{3 + i: n for i, n in enumerate(FDI_NUMBERS)}}, True)
    raise KeyError(name)


def _from_json(path: Path) -> LabelTable:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        mapping = {int(k): int(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise InputError(f"Label table {path} is not a JSON object of label value to FDI number ({error}).") from None
    huge = [k for k in mapping if abs(k) >= 2**31]
    if huge:
        raise InputError(f"Label table {path} has the key {huge[0]}, a value no label map holds; use label values.")
    bad = sorted({v for v in mapping.values() if v != 0 and v not in ALL_FDI_NUMBERS})
    if bad:
        raise InputError(f"Label table {path} maps to {bad}, which are not FDI tooth numbers; use 11-48, 51-85 or 0.")
    return LabelTable(path.name, {0: 0, **mapping})


def load_label_table(spec: str | os.PathLike | LabelTable) -> LabelTable:
    """A built-in table by name (fdi, toothfairy2, dentvoxel) or a JSON file."""
    if isinstance(spec, LabelTable):
        return spec
    text = str(spec)
    if text.lower() in TABLE_NAMES:
        return _builtin(text.lower())
    path = Path(text)
    if path.suffix.lower() != ".json" or not path.is_file():
        raise InputError(f"Unknown label table {text!r}; use fdi, toothfairy2, dentvoxel or an existing .json file.")
    return _from_json(path)


def to_fdi(label_array: np.ndarray, table: str | os.PathLike | LabelTable) -> np.ndarray:
    """uint8 FDI label map of ``label_array`` through ``table``; unknown values raise InputError naming them."""
    table = load_label_table(table)
    array = np.asarray(label_array)
    if array.dtype.kind == "f":
        array = np.rint(array).astype(np.int64)
    keys = np.array(sorted(table.mapping), dtype=np.int64)
    values = np.array([table.mapping[k] for k in keys], dtype=np.uint8)
    index = np.searchsorted(keys, array).clip(0, len(keys) - 1)
    known = keys[index] == array
    if not table.others_are_background and not known.all():
        unknown = np.unique(array[~known])
        shown = ", ".join(str(v) for v in unknown[:12]) + (" ..." if len(unknown) > 12 else "")
        raise InputError(f"Label values {shown} are not in label table {table.name!r}; fix the labels or the table.")
    return np.where(known, values[index], np.uint8(0)).astype(np.uint8)


def from_fdi(fdi_map: np.ndarray, table: str | os.PathLike | LabelTable) -> np.ndarray:
    """The inverse for tests and exports: FDI map -> the table's values (teeth only)."""
    table = load_label_table(table)
    inverse = {fdi: value for value, fdi in table.mapping.items() if fdi != 0}
    lut = np.zeros(256, dtype=np.int32)
    for fdi, value in inverse.items():
        lut[fdi] = value
    return lut[np.asarray(fdi_map).astype(np.intp).clip(0, 255)]
