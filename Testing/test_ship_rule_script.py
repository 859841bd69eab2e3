"""scripts/ship_rule.py: the model card's ship rule on two models' validation figures."""

from __future__ import annotations

import json

import pytest
from script_modules import load_script

rule = load_script("ship_rule")


def _summary(a_tooth: float = 0.94, b_tooth: float = 0.92, b_id: float = 0.99) -> dict:
    figures = {"A": (0.95, a_tooth, 1.0), "B": (0.93, b_tooth, b_id)}
    return {
        family: {
            fov: {"dice_binary": binary, "dice_per_tooth": tooth, "identification_accuracy": ident, "split": 0,
                  "lost": 0, "spurious": 0}
            for fov in rule.FOVS
        }
        for family, (binary, tooth, ident) in figures.items()
    }


def _kids(age6: float = 0.98) -> dict:
    return {age: {"mean": {"identification_accuracy": age6 if age == "age 6" else 1.0}} for age in rule.AGES}


@pytest.mark.parametrize(
    "candidate, kids, failures",
    [
        (_summary(b_tooth=0.921), _kids(), 0),
        (_summary(b_tooth=0.920), _kids(), 1),  # B per-tooth must rise, not stay
        (_summary(b_tooth=0.93, b_id=0.984), _kids(), 1),  # B identification 0.006 lower
        (_summary(b_tooth=0.93, b_id=0.986), _kids(), 0),
        (_summary(a_tooth=0.934, b_tooth=0.93), _kids(), 1),  # A per-tooth 0.006 lower
        (_summary(b_tooth=0.93), _kids(age6=0.95), 1),  # a 6-year-old's identification 0.03 lower
        (_summary(a_tooth=0.9, b_tooth=0.91, b_id=0.9), _kids(age6=0.9), 4),
    ],
)
def test_the_rule_counts_each_failure(candidate: dict, kids: dict, failures: int) -> None:
    assert len(rule.judge(_summary(), candidate, _kids(), kids)) == failures


def test_main_reads_the_shipped_files_format_and_exits_by_the_verdict(tmp_path, capsys) -> None:
    files = {
        "base.json": {"float32": {"summary": _summary()}},  # the shipped families.json
        "base_kids.json": {"validation": _kids()},
        "good.json": {"summary": _summary(b_tooth=0.925)},  # validate_families.py --out
        "bad.json": {"summary": _summary(b_tooth=0.91)},
        "kids.json": {"validation": _kids()},
    }
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    base = ["--base-families", str(tmp_path / "base.json"), "--base-children", str(tmp_path / "base_kids.json")]
    assert rule.main([str(tmp_path / "good.json"), str(tmp_path / "kids.json"), *base]) == 0
    assert "SHIP" in capsys.readouterr().out
    assert rule.main([str(tmp_path / "bad.json"), str(tmp_path / "kids.json"), *base]) == 1
    assert "NO: family B per-tooth Dice does not rise (0.9200 -> 0.9100)" in capsys.readouterr().out
