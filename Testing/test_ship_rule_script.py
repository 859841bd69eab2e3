"""scripts/ship_rule.py: the model card's ship rule on two models' validation figures."""

from __future__ import annotations

import json

import pytest
from script_modules import load_script

rule = load_script("ship_rule")


def _summary(a_tooth: float = 0.94, b_tooth: float = 0.92, b_id: float = 0.99, b_crop_tooth: float = 0.0) -> dict:
    """Figures per family and field of view; ``b_crop_tooth`` is added to family B's crop per-tooth Dice only."""
    figures = {"A": (0.95, a_tooth, 1.0), "B": (0.93, b_tooth, b_id)}
    return {
        family: {
            fov: {"dice_binary": binary, "dice_per_tooth": tooth + (b_crop_tooth if (family, fov) == ("B", "crop")
                                                                     else 0.0),
                  "identification_accuracy": ident, "split": 0, "lost": 0, "spurious": 0, "cases": 5,
                  "truth_teeth": 140}
            for fov in rule.FOVS
        }
        for family, (binary, tooth, ident) in figures.items()
    }


def _kids(drop_at: str = "", identification: float = 0.95) -> dict:
    return {
        age: {"cases": [{}, {}, {}], "mean": {"identification_accuracy": identification if age == drop_at else 0.98}}
        for age in rule.AGES
    }


@pytest.mark.parametrize(
    "candidate, kids, failures",
    [
        (_summary(b_tooth=0.921), _kids(), 0),
        (_summary(b_tooth=0.920), _kids(), 1),  # B per-tooth must rise, not stay
        (_summary(b_tooth=0.93, b_id=0.984), _kids(), 1),  # B identification 0.006 lower
        (_summary(b_tooth=0.93, b_id=0.986), _kids(), 0),
        (_summary(a_tooth=0.934, b_tooth=0.93), _kids(), 1),  # A per-tooth 0.006 lower
        (_summary(b_tooth=0.93), _kids("age 6"), 1),  # the 6-year-olds' identification 0.03 lower
        (_summary(b_tooth=0.93), _kids("age 10"), 1),  # every age counts
        (_summary(b_tooth=0.93), _kids("age 10", 0.961), 0),  # 0.019 lower
        (_summary(b_tooth=0.916, b_crop_tooth=0.025), _kids(), 0),  # B: crop +0.021, the rest -0.004: the mean rises
        (_summary(b_tooth=0.924, b_crop_tooth=-0.025), _kids(), 1),  # the reverse: it falls
        (_summary(a_tooth=0.9, b_tooth=0.91, b_id=0.9), _kids("age 12", 0.9), 4),
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


def test_main_refuses_figures_of_different_scans(tmp_path, capsys) -> None:
    short = _summary(b_tooth=0.93)
    short["B"]["upper"].update(cases=3, truth_teeth=43)  # a run cut short
    files = {"base.json": {"float32": {"summary": _summary()}}, "kids.json": {"validation": _kids()},
             "short.json": {"summary": short}}
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    base = ["--base-families", str(tmp_path / "base.json"), "--base-children", str(tmp_path / "kids.json")]
    assert rule.main([str(tmp_path / "short.json"), str(tmp_path / "kids.json"), *base]) == 2
    assert "B upper: (cases, true teeth) (5, 140) against (3, 43)" in capsys.readouterr().out


def test_runs_with_other_options_are_not_compared() -> None:
    same = ({"first_seed": 30000, "head_spacing": 0.4, "precision": "float32"},) * 2
    other = (same[0], {**same[0], "head_spacing": None})
    args = (_summary(), _summary(b_tooth=0.93), _kids(), _kids())
    assert rule.coverage_mismatch(*args, same) == [] and rule.coverage_mismatch(*args, (None, same[0])) == []
    assert rule.coverage_mismatch(*args, other) == [
        f"validate_families.py options {other[0]} against {other[1]}"
    ]


def _with(summary: dict, family: str, fov: str, **figures: float) -> dict:
    summary[family][fov].update(figures)
    return summary


@pytest.mark.parametrize(
    "candidate, failures",
    [
        (_summary(), 0),  # the same figures: a rule that changes nothing on validation passes
        (_summary(b_tooth=0.9199), 1),  # B per-tooth falls
        (_with(_summary(b_tooth=0.93), "A", "jaws", split=1), 1),  # a tooth split, though B rises
        (_with(_summary(), "B", "head", lost=2), 1),
        (_with(_with(_summary(), "B", "head", lost=1), "A", "crop", split=1), 2),  # each counts
        (_summary(a_tooth=0.934), 1),  # the model rule's other limits still hold
        (_with(_summary(), "A", "lower", spurious=1), 1),
        # one tooth misnumbered: the model rule has no limit on A's identification, the instance rule refuses it
        (_with(_summary(), "A", "head", identification_accuracy=1 - 1 / 140), 1),
        # a rise in one field of view does not pay for a fall in another (B's mean stays 0.99)
        (_with(_with(_summary(), "B", "crop", identification_accuracy=0.995), "B", "jaws",
               identification_accuracy=0.985), 1),
    ],
)
def test_the_instance_rule_asks_that_nothing_falls_and_no_tooth_splits_or_is_lost(candidate, failures) -> None:
    """For a change of the instance step, measured with the shipped model: B per-tooth Dice must not fall (the
    model rule asks it to rise, which a rule for teeth the validation scans lack cannot do), and no family and
    field of view may gain a split, lost or spurious tooth, or lose identification."""
    assert len(rule.judge(_summary(), candidate, _kids(), _kids(), instance_rule=True)) == failures
    assert len(rule.judge(_summary(), _summary(), _kids(), _kids())) == 1  # the model rule: B does not rise
