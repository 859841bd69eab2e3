"""Cache the instance step's inputs of dev phantoms once, then score instance rules on them in seconds (not a test).

    python scripts/instance_inputs.py cache DIR 46000:6.0 46001:6.5 ...   # children: SEED:AGE; adults: SEED:FOV[:B]
    python scripts/instance_inputs.py score DIR                          # the instance step on each cached case

`cache` segments each phantom (family A, or B where an adult's spec ends in :B; a child's crop or jaws by the
seed's parity) with the model and keeps what `instances.teeth.label_teeth` receives (foreground, type
probabilities, grid, and the contacts where the model has a contacts network) and the truth on that grid.
`score` runs today's instance step on them and prints, per case, the misnumbered, missed and split teeth, then the
totals: a rule change is judged on such dev seeds (never the validation seeds of the model card) before it is
measured once on validation. The figures are on the instance step's 0.5 mm grid, close to but not the same as
`evaluate` on the scan's own grid.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from TeethSegmentationLib.inference.pipeline import SegmentOptions, segment_volume  # noqa: E402
from TeethSegmentationLib.instances.teeth import label_teeth  # noqa: E402
from TeethSegmentationLib.io.resample import resample_to_reference  # noqa: E402
from TeethSegmentationLib.io.volume import Volume  # noqa: E402
from TeethSegmentationLib.metrics import evaluate_pair, split_teeth  # noqa: E402
from TeethSegmentationLib.nets.model_file import DEFAULT_MODEL_PATH, load_model  # noqa: E402
from TeethSegmentationLib.phantom import FOVS, make_phantom  # noqa: E402


def phantom_of(spec: str, size: str):
    """``SEED:AGE`` (a child, crop or jaws by the seed's parity) or ``SEED:FOV`` (an adult), of family A; an
    adult of family B as ``SEED:FOV:B`` (dev seeds only: the model card's validation seeds are 30000-34999)."""
    seed, what, *family = spec.split(":")
    if what in FOVS:
        return make_phantom(int(seed), size=size, fov=what, family=family[0] if family else "A")
    fov = ("crop", "jaws")[int(seed) % 2]
    return make_phantom(int(seed), size=size, fov=fov, family="A", dentition="mixed", age=float(what))


def instance_inputs(case, model) -> dict:
    """What the pipeline hands the instance step for ``case`` (float32 networks), and the truth on that grid."""
    got: dict = {}

    def keep(foreground, probs, affine, contacts, _found) -> None:
        got.update(foreground=foreground.astype(np.float16), probs=probs.astype(np.float16), affine=affine)
        if contacts is not None:
            got["contacts"] = contacts.astype(np.float16)

    segment_volume(case.image, model, SegmentOptions(device="cpu", precision="float32"), on_instances=keep)
    grid = Volume(np.zeros(got["foreground"].shape, np.uint8), got["affine"])
    got["truth"] = np.asarray(resample_to_reference(case.labels, grid, order=0).array).astype(np.uint8)
    return got


def cache(folder: Path, specs: list[str], model_path: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model = load_model(model_path)
    for spec in specs:
        path = folder / f"{spec.replace(':', '_')}.pkl"
        if not path.exists():
            with open(path, "wb") as f:
                pickle.dump(instance_inputs(phantom_of(spec, size), model), f)
        print(f"cached {path.name}", flush=True)


def score_case(inputs: dict, contacts: bool = True) -> dict:
    """`evaluate`'s figures of today's instance step on one cached case (with its contacts unless told not)."""
    result = label_teeth(
        inputs["foreground"].astype(np.float32), inputs["probs"].astype(np.float32), inputs["affine"],
        log_warnings=False, contacts=inputs.get("contacts") if contacts else None,
    )
    spacing = np.linalg.norm(inputs["affine"][:3, :3], axis=0)
    pred = np.asarray(result.fdi_map)
    metrics = evaluate_pair(pred, inputs["truth"], spacing, with_hd95=False)
    metrics["split_fdi"] = split_teeth(pred, inputs["truth"])
    return metrics


def score(folder: Path, contacts: bool = True) -> dict:
    totals = {"teeth": 0, "wrong": 0, "split": 0, "developing": 0, "developing_missed": 0}
    for path in sorted(folder.glob("*.pkl")):
        with open(path, "rb") as f:
            m = score_case(pickle.load(f), contacts)
        missed_developing = [t for t in m["missed_fdi"] if t in m["developing_fdi"]]
        totals["teeth"] += m["truth_teeth"]
        totals["wrong"] += m["truth_teeth"] - m["identified"]
        totals["split"] += len(m["split_fdi"])
        totals["developing"] += len(m["developing_fdi"])
        totals["developing_missed"] += len(missed_developing)
        print(f"{path.stem}: identification {m['identification_accuracy']:.3f} misnumbered {m['misidentified']} "
              f"missed {m['missed_fdi']} spurious {m['spurious_fdi']} split {m['split_fdi']} "
              f"per-tooth Dice {m['dice_per_tooth']:.4f}",
              flush=True)
    print(f"{totals['wrong']} of {totals['teeth']} teeth misnumbered or missed, {totals['split']} split in two "
          f"numbers; developing teeth missed {totals['developing_missed']} of {totals['developing']}")
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("cache", help="segment dev phantoms and keep the instance step's inputs")
    make.add_argument("folder", type=Path)
    make.add_argument("specs", nargs="+", metavar="SEED:AGE|SEED:FOV[:B]")
    make.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    make.add_argument("--size", default="realistic")
    run = sub.add_parser("score", help="today's instance step on the cached cases")
    run.add_argument("folder", type=Path)
    run.add_argument("--without-contacts", action="store_true", help="leave out cached contacts (a model's own)")
    args = parser.parse_args(argv)
    if args.command == "cache":
        cache(args.folder, args.specs, args.model, args.size)
    else:
        score(args.folder, not args.without_contacts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
