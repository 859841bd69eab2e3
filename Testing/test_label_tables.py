"""Label tables: ToothFairy2, DentVoxel, JSON files and plain FDI maps -> FDI numbers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _train_phantoms import tiny_case  # noqa: E402

from TeethSegmentationLib.errors import InputError  # noqa: E402
from TeethSegmentationLib.fdi import FDI_NUMBERS  # noqa: E402
from TeethSegmentationLib.label_tables import from_fdi, load_label_table, to_fdi  # noqa: E402


@pytest.fixture(scope="module")
def fdi_map() -> np.ndarray:
    return tiny_case(0)[1].array.astype(np.uint8)


def _with_other_structures(values: np.ndarray, others: list[int]) -> np.ndarray:
    """Put non-tooth structures (jaws, canals ...) into the background of a relabelled map."""
    out = values.astype(np.int32).copy()
    background = np.flatnonzero(out == 0)
    for i, value in enumerate(others):
        out.flat[background[i * 50 : (i + 1) * 50]] = value
    return out


def test_fdi_table_is_the_identity_and_names_unknown_values(fdi_map):
    assert np.array_equal(to_fdi(fdi_map, "fdi"), fdi_map)
    bad = fdi_map.astype(np.int32)
    bad[0, 0, :2] = (9, 300)
    with pytest.raises(InputError, match="9, 300"):
        to_fdi(bad, "fdi")


def test_toothfairy2_round_trip_ignores_jaws_canals_and_implants(fdi_map):
    relabelled = _with_other_structures(from_fdi(fdi_map, "toothfairy2"), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 103])
    assert np.array_equal(to_fdi(relabelled, "toothfairy2"), fdi_map)


def test_dentvoxel_teeth_are_3_to_34_in_fdi_order(fdi_map):
    table = load_label_table("dentvoxel")
    assert table.mapping[3] == 11 and table.mapping[10] == 18 and table.mapping[11] == 21 and table.mapping[34] == 48
    relabelled = _with_other_structures(from_fdi(fdi_map, "dentvoxel"), [1, 2, 35, 36])
    assert set(np.unique(relabelled)) - {0, 1, 2, 35, 36} <= set(range(3, 35))
    assert np.array_equal(to_fdi(relabelled, "dentvoxel"), fdi_map)


def test_json_table_round_trip_and_errors(tmp_path, fdi_map):
    mapping = {str(100 + i): fdi for i, fdi in enumerate(FDI_NUMBERS)}
    mapping["7"] = 0  # a jaw, ignored on purpose
    path = tmp_path / "table.json"
    path.write_text(json.dumps(mapping))
    relabelled = _with_other_structures(from_fdi(fdi_map, path), [7])
    assert np.array_equal(to_fdi(relabelled, str(path)), fdi_map)
    with pytest.raises(InputError, match="5"):
        to_fdi(_with_other_structures(relabelled, [5]), path)  # not listed in the file
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"1": 99}))
    with pytest.raises(InputError, match="99"):
        load_label_table(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2")
    with pytest.raises(InputError, match="JSON"):
        load_label_table(broken)


def test_unknown_table_name_is_refused():
    with pytest.raises(InputError, match="toothfairy2"):
        load_label_table("toothfairy9")


def test_float_label_arrays_are_rounded():
    assert to_fdi(np.array([0.0, 11.0, 47.9999]), "fdi").tolist() == [0, 11, 48]
