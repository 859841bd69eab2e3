"""The shipped model on unseen phantoms of both families, per field of view: in-family (A, the training
family) and out-of-family (B, never trained on) figures side by side.

    python scripts/validate_families.py                      # 5 cases per family and field of view
    python scripts/validate_families.py --cases 3 --fovs crop lower --families A B

Each case is written as NRRD (cached under --work), segmented in-process by the same pipeline as
`teethseg segment`, and scored like `teethseg evaluate`. Besides binary Dice, per-tooth Dice and
identification, it counts teeth split into two numbers (a second predicted number covers >= 20 % of a
true tooth), lost teeth (less than half of a true tooth covered by any predicted tooth), spurious numbers
and, in single-arch scans, numbers of the jaw that is not in the scan ("jaw"). Seeds 30000...
(a thousand per field of view) are used by neither training (100...) nor the training script's own
validation (10000...). Writes the figures to --work/validation.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from TeethSegmentationLib import fdi  # noqa: E402
from TeethSegmentationLib.events import NullReporter  # noqa: E402
from TeethSegmentationLib.inference.outputs import segment_file  # noqa: E402
from TeethSegmentationLib.inference.pipeline import SegmentOptions  # noqa: E402
from TeethSegmentationLib.io.read_write import read_volume  # noqa: E402
from TeethSegmentationLib.metrics import evaluate_pair, split_teeth  # noqa: E402
from TeethSegmentationLib.nets.devices import PRECISIONS  # noqa: E402
from TeethSegmentationLib.nets.model_file import DEFAULT_MODEL_PATH, load_model  # noqa: E402
from TeethSegmentationLib.phantom import FOVS, make_phantom  # noqa: E402

SEED = 30_000
COLUMNS = ("dice_binary", "dice_per_tooth", "identification_accuracy", "split", "lost", "spurious", "truth_teeth")


def run_case(
    model, folder: Path, name: str, seed: int, fov: str, family: str, head_spacing, tag: str = "pred",
    precision: str = "float32", device: str = "cpu",
) -> dict:
    truth_dir, pred_dir = folder / "truth", folder / tag  # truth is cached and shared by every model compared
    truth_dir.mkdir(parents=True, exist_ok=True)
    image_path, labels_path = truth_dir / f"{name}.nrrd", truth_dir / f"{name}.labels.nrrd"
    start = time.perf_counter()
    if not labels_path.exists():
        spacing = head_spacing if fov == "head" else None
        make_phantom(seed, size="realistic", fov=fov, family=family, spacing=spacing).write(image_path, labels_path)
    made = time.perf_counter()
    segment_file(image_path, pred_dir, model, SegmentOptions(device=device, precision=precision), NullReporter())
    seconds = time.perf_counter() - made
    pred, truth = read_volume(pred_dir / f"{name}.teeth.nrrd"), read_volume(labels_path)
    labels = np.rint(pred.array).astype(np.int64)
    metrics = evaluate_pair(labels, truth.array, truth.spacing)
    split, lost = split_teeth(labels, truth.array), metrics["missed_fdi"]
    metrics.update(split=len(split), lost=len(lost), split_fdi=split, lost_fdi=lost)
    if fov in ("lower", "upper"):  # teeth of the jaw the scan does not hold
        other = [int(n) for n in np.unique(labels) if other_jaw(int(n), fov)]
        metrics.update(other_jaw=len(other), other_jaw_fdi=other)
    metrics.update(segment_s=round(seconds, 1), phantom_s=round(made - start, 1), seed=seed)
    return metrics


def other_jaw(label: int, fov: str) -> bool:
    """An FDI number, permanent or primary, of the jaw a single-arch scan does not hold (an unnumbered tooth's
    label has no jaw)."""
    return fdi.is_fdi(label) and fdi.is_upper(label) != (fov == "upper")


def summarise(cases: list[dict]) -> dict:
    out = {"cases": len(cases)}
    for key in ("dice_binary", "dice_per_tooth", "identification_accuracy", "segment_s"):
        values = [c[key] for c in cases if c.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    for key in ("split", "lost", "spurious", "truth_teeth", "missed", "other_jaw"):
        out[key] = int(sum(c.get(key, 0) for c in cases))
    return out


def table(results: dict, families: list[str], fovs: list[str]) -> str:
    names = {"dice_binary": "Dice", "dice_per_tooth": "tooth", "identification_accuracy": "ident"}
    head = f"{'field of view':<14}" + "".join(f"{names.get(k, k) + ' ' + f:>10}" for k in COLUMNS[:3] for f in families)
    head += "".join(f"{k + ' ' + f:>10}" for k in ("split", "lost", "spur", "jaw", "teeth") for f in families)
    rows = [head, "-" * len(head)]
    for fov in fovs:
        row = f"{fov:<14}"
        for key in COLUMNS[:3]:
            for fam in families:
                value = results[fam][fov][key]
                row += f"{'-':>10}" if value is None else f"{value:>10.3f}"
        for key in ("split", "lost", "spurious", "other_jaw", "truth_teeth"):
            for fam in families:
                row += f"{results[fam][fov][key]:>10d}"
        rows.append(row)
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "validate_families")
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--fovs", nargs="+", default=list(FOVS), choices=FOVS)
    parser.add_argument("--families", nargs="+", default=["A", "B"], choices=["A", "B"])
    parser.add_argument("--head-spacing", type=float, default=None, help="mm; default: realistic (0.25-0.35)")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS)
    parser.add_argument("--first-seed", type=int, default=SEED,
                        help="30000: the validation scans; 40000: the scans the instance rules are developed on")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--out", type=Path, default=None, help="figures (JSON); default: --work/validation.json")
    args = parser.parse_args()
    tag = f"pred_{args.model.stem}_{args.precision}" + ("" if args.device == "cpu" else f"_{args.device}")
    out_path = args.out or args.work / "validation.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    log = logging.getLogger("validate_families")
    model = load_model(args.model)
    # What two runs must share to be compared (scripts/ship_rule.py checks it).
    options = {"first_seed": args.first_seed, "head_spacing": args.head_spacing, "precision": args.precision}
    results: dict = {fam: {} for fam in args.families}
    per_case: dict = {fam: {} for fam in args.families}
    for fov in args.fovs:
        for fam in args.families:
            folder = args.work / fam / fov
            cases = []
            for n in range(args.cases):
                seed = args.first_seed + 1000 * FOVS.index(fov) + n
                metrics = run_case(
                    model, folder, f"case{n:02d}", seed, fov, fam, args.head_spacing, tag, args.precision, args.device
                )
                log.info(
                    f"{fam} {fov} seed {seed}: Dice {metrics['dice_binary']:.3f} tooth {metrics['dice_per_tooth']:.3f} "
                    f"ident {metrics['identification_accuracy']:.3f} split {metrics['split_fdi']} lost "
                    f"{metrics['lost_fdi']} spurious {metrics['spurious_fdi']} ({metrics['segment_s']} s)"
                )
                cases.append(metrics)
                results[fam][fov], per_case[fam][fov] = summarise(cases), cases
                out = {"model": str(args.model), "device": args.device, "options": options, "summary": results,
                       "cases": per_case}
                out_path.write_text(json.dumps(out, indent=2, default=str))  # after each case: a cut-short run keeps it
    print(table(results, args.families, args.fovs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
