"""Whether a candidate model may replace the shipped one: the model card's ship rule, applied (not a test).

    python scripts/validate_families.py --model CAND.pt --head-spacing 0.4 --out CAND.families.json
    python scripts/train_default_model.py --skip-training --output CAND.pt --work build/val_kids \\
        --val-fovs crop --val-cases 3 --val-ages 6 8 10 12                  # writes CAND.pt.validation.json
    python scripts/ship_rule.py CAND.families.json CAND.pt.validation.json

The rule, written down before the first candidate's figures and kept since (model card, "How it was made"):
ship only if family B's per-tooth Dice (mean of the five fields of view) rises, B's identification and A's
per-tooth Dice fall by at most 0.005, and the children's identification at each age by at most 0.02. The
shipped model's figures are read from ``Resources/Models/teethseg-default.pt.families.json`` (key
``float32``) and ``...validation.json``: measure the candidate with the same code (instance rules included).
Prints both sides per field of view and the verdict; exits 0 when the candidate may ship, 1 when not, 2 when the
two sides were not measured on the same scans (a run cut short, other fields of view or ages).

``--instance-rule``: the rule for a change of the instance step measured with the shipped model file (as written
before each such change was measured on 2026-12-05): family B's per-tooth Dice must not fall (a rule that
helps teeth the validation scans lack changes nothing there), the other limits as above, and no family and field
of view may gain a split or a lost tooth. Since 2026-12-05 also: no family and field of view may gain a spurious
tooth or lose identification (a misnumbered tooth): a cut for fused central incisors passed the limits above while
two heads' 31 took the number 41.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from TeethSegmentationLib.phantom.choices import FOVS  # noqa: E402  (validate_families.py's fields of view)

MODELS = ROOT / "Resources" / "Models"
AGES = ("age 6", "age 8", "age 10", "age 12")
B_IDENTIFICATION_DROP = 0.005
A_PER_TOOTH_DROP = 0.005
CHILD_IDENTIFICATION_DROP = 0.02


def family_summary(data: dict) -> dict:
    """{family: {fov: figures}} of a validate_families.py output, or of the shipped families.json (its float32)."""
    return data["summary"] if "summary" in data else data["float32"]["summary"]


def mean(summary: dict, family: str, key: str) -> float:
    return sum(summary[family][fov][key] for fov in FOVS) / len(FOVS)


def coverage_mismatch(
    base: dict, cand: dict, base_kids: dict, cand_kids: dict, options: tuple[dict, dict] | None = None
) -> list[str]:
    """Where the two sides did not measure the same scans (a run cut short, another field of view or age): each
    family and field of view by its cases and true teeth, each age by its cases; and ``options`` (seeds, head
    spacing, precision of validate_families.py), where both outputs record them."""
    wrong = []
    if options and all(options) and options[0] != options[1]:
        wrong.append(f"validate_families.py options {options[0]} against {options[1]}")
    for family in ("A", "B"):
        for fov in FOVS:
            sides = [s.get(family, {}).get(fov) for s in (base, cand)]
            counts = [None if s is None else (s["cases"], s["truth_teeth"]) for s in sides]
            if None in counts or counts[0] != counts[1]:
                wrong.append(f"{family} {fov}: (cases, true teeth) {counts[0]} against {counts[1]}")
    for age in AGES:
        counts = [len(k[age]["cases"]) if age in k else None for k in (base_kids, cand_kids)]
        if None in counts or counts[0] != counts[1]:
            wrong.append(f"children {age}: cases {counts[0]} against {counts[1]}")
    return wrong


def judge(base: dict, cand: dict, base_kids: dict, cand_kids: dict, instance_rule: bool = False) -> list[str]:
    """The rule's failures (empty: the candidate may ship) for two family summaries and two children's
    validations ({"age 6": {"mean": {...}}, ...}); ``instance_rule``: the rule for a change of the instance step."""
    failures = []
    b_tooth, c_tooth = mean(base, "B", "dice_per_tooth"), mean(cand, "B", "dice_per_tooth")
    if instance_rule and c_tooth < b_tooth:
        failures.append(f"family B per-tooth Dice falls ({b_tooth:.4f} -> {c_tooth:.4f})")
    if not instance_rule and not c_tooth > b_tooth:
        failures.append(f"family B per-tooth Dice does not rise ({b_tooth:.4f} -> {c_tooth:.4f})")
    b_id, c_id = mean(base, "B", "identification_accuracy"), mean(cand, "B", "identification_accuracy")
    if c_id < b_id - B_IDENTIFICATION_DROP:
        failures.append(f"family B identification falls by more than {B_IDENTIFICATION_DROP} "
                        f"({b_id:.4f} -> {c_id:.4f})")
    a_tooth, ca_tooth = mean(base, "A", "dice_per_tooth"), mean(cand, "A", "dice_per_tooth")
    if ca_tooth < a_tooth - A_PER_TOOTH_DROP:
        failures.append(f"family A per-tooth Dice falls by more than {A_PER_TOOTH_DROP} "
                        f"({a_tooth:.4f} -> {ca_tooth:.4f})")
    for age in AGES:
        b, c = (kids[age]["mean"]["identification_accuracy"] for kids in (base_kids, cand_kids))
        if c < b - CHILD_IDENTIFICATION_DROP:
            failures.append(f"children's identification at {age} falls by more than {CHILD_IDENTIFICATION_DROP} "
                            f"({b:.3f} -> {c:.3f})")
    if instance_rule:
        failures += [
            f"family {family} {fov}: {key} teeth {base[family][fov][key]} -> {cand[family][fov][key]}"
            for family in ("A", "B") for fov in FOVS for key in ("split", "lost", "spurious")
            if cand[family][fov][key] > base[family][fov][key]
        ]
        failures += [
            f"family {family} {fov}: identification falls ({b:.4f} -> {c:.4f})"
            for family in ("A", "B") for fov in FOVS
            for b, c in [(base[family][fov]["identification_accuracy"], cand[family][fov]["identification_accuracy"])]
            if c < b - 1e-9
        ]
    return failures


def table(base: dict, cand: dict) -> str:
    """Both sides per field of view: the three figures (and their means), the split, lost and spurious teeth."""
    lines = []
    for family in ("A", "B"):
        for key in ("dice_binary", "dice_per_tooth", "identification_accuracy"):
            row = " ".join(f"{base[family][f][key]:.3f}->{cand[family][f][key]:.3f}" for f in FOVS)
            lines.append(f"{family} {key[:14]:<14} {row} | mean {mean(base, family, key):.4f}->"
                         f"{mean(cand, family, key):.4f}")
        for key in ("split", "lost", "spurious"):
            counts = " ".join(f"{base[family][f][key]}->{cand[family][f][key]}" for f in FOVS)
            lines.append(f"{family} {key:<14} {counts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("families", type=Path, help="the candidate's validate_families.py --out")
    parser.add_argument("children", type=Path, help="the candidate's MODEL.validation.json (the children)")
    parser.add_argument("--base-families", type=Path, default=MODELS / "teethseg-default.pt.families.json")
    parser.add_argument("--base-children", type=Path, default=MODELS / "teethseg-default.pt.validation.json")
    parser.add_argument(
        "--instance-rule", action="store_true",
        help="judge a change of the instance step: B per-tooth must not fall, no split, lost or spurious tooth "
             "gained, no identification lost",
    )
    args = parser.parse_args(argv)
    base_data, cand_data = (json.loads(p.read_text()) for p in (args.base_families, args.families))
    base, cand = family_summary(base_data), family_summary(cand_data)
    base_kids, cand_kids = (json.loads(p.read_text())["validation"] for p in (args.base_children, args.children))
    options = tuple(data.get("options") or data.get("float32", {}).get("options") for data in (base_data, cand_data))
    mismatch = coverage_mismatch(base, cand, base_kids, cand_kids, options)
    if mismatch:
        print("The two sides were not measured on the same scans; measure again:\n" + "\n".join(mismatch))
        return 2
    print(table(base, cand))
    for age in AGES:
        b, c = (k[age]["mean"]["identification_accuracy"] for k in (base_kids, cand_kids))
        print(f"children {age}: identification {b:.3f}->{c:.3f}")
    failures = judge(base, cand, base_kids, cand_kids, args.instance_rule)
    print("\n".join(f"NO: {f}" for f in failures) if failures else "SHIP: the candidate meets the rule")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
