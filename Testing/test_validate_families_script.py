"""scripts/validate_families.py: the "jaw" column counts only FDI numbers of the jaw a single-arch scan does not
hold; an unnumbered tooth's label (100+) and a primary number of the scan's own jaw are not the other jaw."""

from __future__ import annotations

from script_modules import load_script


def test_other_jaw_counts_numbers_of_the_missing_jaw_only():
    other_jaw = load_script("validate_families").other_jaw
    assert [n for n in (11, 27, 31, 48, 55, 63, 75, 84, 100, 101) if other_jaw(n, "upper")] == [31, 48, 75, 84]
    assert [n for n in (11, 27, 31, 48, 55, 63, 75, 84, 100, 101) if other_jaw(n, "lower")] == [11, 27, 55, 63]
