"""Rebuild the shipped default model from the project's phantoms, then validate it on unseen phantoms.

    python scripts/train_default_model.py            # what `make model` runs
    python scripts/train_default_model.py --quick    # a smoke run in a few minutes
    python scripts/train_default_model.py --children 0 --types-classes 9 --val-ages
                                                     # adults only, 9 classes (the model before children)

Steps: (1) write training phantoms (family A only, seeds 100...; adults of every field of view and, by default,
20 children of 6-14 years with primary teeth as their own 5 classes) into --work, (2) train both stages with heavy
augmentation, (3) segment validation phantoms with seeds never used in training (10000...) and run
`evaluate` on them. The model goes to --output; the figures go to --output with suffix .validation.json
and are quoted in Resources/Models/README.md (the model card).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from TeethSegmentationLib.events import TerminalReporter  # noqa: E402
from TeethSegmentationLib.inference.outputs import segment_file  # noqa: E402
from TeethSegmentationLib.inference.pipeline import SegmentOptions  # noqa: E402
from TeethSegmentationLib.metrics import evaluate_dirs  # noqa: E402
from TeethSegmentationLib.nets.model_file import DEFAULT_MODEL_PATH, load_model  # noqa: E402
from TeethSegmentationLib.phantom import make_phantom  # noqa: E402
from TeethSegmentationLib.training.config import DEFAULT_STAGES, SHIPPED_RECIPE, STAGES, TrainConfig  # noqa: E402
from TeethSegmentationLib.training.trainer import train  # noqa: E402

TRAIN_FAMILY = "A"  # family B is never trained on: it measures generalisation (scripts/validate_families.py)
TRAIN_SEED = 100
VAL_SEED = 10_000
VAL_FOVS = ("crop", "jaws", "head")  # fixes each field of view's validation seeds (10000, 11000, 12000)
CHILD_SEED, CHILD_AGES = 5_000, (6.0, 14.0)  # training children: ages spread evenly over 6-14
# Extra young children (6-9 years, seeds 5100...): the only ages with primary incisors, which stage 2 confuses
YOUNG_SEED, YOUNG_AGES = 5_100, (6.0, 9.0)
VAL_CHILD_SEED = 20_000  # + 100 x age: each validation age's own seeds


def fov_of(n: int, fovs: list[str]) -> str:
    return fovs[n % len(fovs)]


def write_cases(
    folder: Path, count: int, seed: int, fovs: list[str], size: str, head_spacing: float | None = None, jobs: int = 1
) -> list[str]:
    """Phantoms ``case000``...; head cases on a ``head_spacing`` grid (a 0.25 mm head is 77 s to draw)."""
    tasks = []
    for n in range(count):
        fov = fov_of(n, fovs)
        spacing = head_spacing if fov == "head" else None
        tasks.append((folder, f"case{n:03d}", seed + n, dict(size=size, fov=fov, spacing=spacing)))
    return write_phantoms(tasks, jobs)


def write_children(
    folder: Path, count: int, seed: int, size: str, ages: tuple[float, float] | float, prefix: str = "child",
    jobs: int = 1,
) -> list[str]:
    """Mixed-dentition phantoms ``child000``... (crop and jaws alternately), of one age or spread over a range."""
    tasks = []
    for n in range(count):
        age = ages if isinstance(ages, float) else ages[0] + (ages[1] - ages[0]) * (n + 0.5) / count
        kwargs = dict(size=size, fov=("crop", "jaws")[n % 2], dentition="mixed", age=age)
        tasks.append((folder, f"{prefix}{n:03d}", seed + n, kwargs))
    return write_phantoms(tasks, jobs)


def write_phantoms(tasks: list[tuple[Path, str, int, dict]], jobs: int = 1) -> list[str]:
    """Write each ``(folder, name, seed, make_phantom options)`` not yet on disk; ``jobs`` processes side by side
    (the phantoms are independent, and a many-core machine draws a training set in a minute)."""
    missing = [task for task in tasks if not (task[0] / f"{task[1]}.labels.nrrd").exists()]
    for folder in {task[0] for task in missing}:
        folder.mkdir(parents=True, exist_ok=True)
    if jobs > 1 and len(missing) > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(min(jobs, len(missing)), initializer=_one_thread) as pool:
            pool.map(_write_phantom, missing, chunksize=1)
    else:
        for task in missing:
            _write_phantom(task)
    return [task[1] for task in tasks]


def _one_thread() -> None:
    """A phantom-drawing process uses one core: ``jobs`` of them share the machine."""
    import torch

    torch.set_num_threads(1)


def _write_phantom(task: tuple[Path, str, int, dict]) -> None:
    folder, name, seed, options = task
    make_phantom(seed, family=TRAIN_FAMILY, **options).write(folder / f"{name}.nrrd", folder / f"{name}.labels.nrrd")


def _segment_and_score(model, truth: Path, pred: Path, names: list[str], reporter) -> dict:
    seconds = []
    for name in names:
        start = time.perf_counter()
        segment_file(truth / f"{name}.nrrd", pred, model, SegmentOptions(device="cpu"), reporter)
        seconds.append(time.perf_counter() - start)
    metrics = evaluate_dirs(pred, truth)
    metrics["seconds_per_case"] = sum(seconds) / len(seconds)
    return metrics


def validate(
    model_path: Path, work: Path, count: int, fovs: list[str], size: str, reporter, ages=(), children: int = 3
) -> dict:
    """Figures per field of view, and per children's age (``children`` mixed phantoms of each of ``ages``)."""
    results = {}
    model = load_model(model_path)
    for fov in fovs:
        truth = work / f"val_{fov}"
        names = write_cases(truth, count, VAL_SEED + 1000 * VAL_FOVS.index(fov), [fov], size)
        results[fov] = _segment_and_score(model, truth, work / f"pred_{fov}", names, reporter)
    for age in ages:
        truth = work / f"val_age{age:g}"
        names = write_children(truth, children, VAL_CHILD_SEED + int(100 * age), size, float(age))
        results[f"age {age:g}"] = _segment_and_score(model, truth, work / f"pred_age{age:g}", names, reporter)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "default_model")
    parser.add_argument("--train-cases", type=int, default=40)
    parser.add_argument("--val-cases", type=int, default=5)
    parser.add_argument("--fovs", nargs="+", default=["crop", "jaws", "crop", "head", "lower", "upper"])
    parser.add_argument("--val-fovs", nargs="*", default=["crop", "jaws", "head"])
    parser.add_argument("--head-spacing", type=float, default=0.6, help="grid of the head training phantoms (mm)")
    parser.add_argument("--size", default="realistic")
    parser.add_argument("--children", type=int, default=20, help="mixed-dentition training phantoms (ages 6-14)")
    parser.add_argument(
        "--young-children", type=int, default=0, help="extra training children of 6-9 years (primary incisors)"
    )
    parser.add_argument("--types-classes", choices=("9", "14"), default="14", help="14: primary types as own classes")
    parser.add_argument(
        "--val-ages", nargs="*", type=float, default=[6, 8, 10, 12], help="validate on children of these ages"
    )
    parser.add_argument("--val-children", type=int, default=3, help="validation children per age")
    recipe, defaults = SHIPPED_RECIPE, TrainConfig()  # the recipe is teethseg train's defaults + stage lengths
    parser.add_argument("--teeth-epochs", type=int, default=recipe["teeth"]["epochs"])
    parser.add_argument("--teeth-steps", type=int, default=recipe["teeth"]["steps_per_epoch"], help="steps per epoch")
    parser.add_argument("--types-epochs", type=int, default=recipe["types"]["epochs"])
    parser.add_argument("--types-steps", type=int, default=recipe["types"]["steps_per_epoch"], help="steps per epoch")
    parser.add_argument("--contacts-epochs", type=int, default=recipe["contacts"]["epochs"])
    parser.add_argument(
        "--contacts-steps", type=int, default=recipe["contacts"]["steps_per_epoch"], help="steps per epoch"
    )
    parser.add_argument("--patch", type=int, default=defaults.patch, help="patch edge of both stages (voxels)")
    parser.add_argument("--filters", type=int, default=None, help="start filters of both stages (default: 9)")
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument(
        "--precision", default="float32", choices=("auto", "float32", "bfloat16"), help="CPU training arithmetic"
    )
    parser.add_argument(
        "--no-scanner-augment", dest="scanner_augment", action="store_false",
        help="leave out the other scanners' grey values (tissue curve, signal noise), as before 2026-12-02",
    )
    parser.add_argument(
        "--artefact-augment", action="store_true",
        help="also augment with the patient's movement and metal's artefacts (a saturated level, blooming, a dark "
        "halo, restored crowns shown solid); not in the shipped recipe",
    )
    parser.add_argument(
        "--primary-incisor-share", type=float, default=defaults.primary_incisor_share,
        help="share of a child's tooth-centred stage-2 patches drawn on its primary incisors",
    )
    parser.add_argument(
        "--workers", type=int, default=0,
        help="patch and case-reading processes; patches cost ms, so on 2 cores they only compete (a GPU needs them)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="phantoms drawn side by side")
    parser.add_argument(
        "--stages", nargs="+", default=list(DEFAULT_STAGES), choices=STAGES,
        help="stages to train (contacts: the optional contacts network, from the types network's layers)",
    )
    parser.add_argument("--init", default=None, help="continue from this model instead of from scratch")
    parser.add_argument("--skip-training", action="store_true", help="only validate --output")
    parser.add_argument(
        "--draw-only", action="store_true",
        help="only write the training phantoms into --work (trainings started after it find them there)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    return parser.parse_args(argv)


def common_options(args: argparse.Namespace, train_dir: Path) -> dict:
    """TrainConfig fields both stages share."""
    return dict(
        output=str(args.output),
        data_dir=str(train_dir),
        patch=args.patch,
        batch=args.batch,
        lr=args.lr,
        workers=args.workers,
        precision=args.precision,
        scanner_augment=args.scanner_augment,
        artefact_augment=args.artefact_augment,
        primary_incisor_share=args.primary_incisor_share,
        filters_teeth=args.filters,
        filters_types=args.filters,
        types_classes=args.types_classes,
    )


def write_training_set(args: argparse.Namespace, train_dir: Path) -> None:
    """The training phantoms (adults, children, young children) that are not in ``train_dir`` yet."""
    write_cases(train_dir, args.train_cases, TRAIN_SEED, args.fovs, args.size, args.head_spacing, args.jobs)
    write_children(train_dir, args.children, CHILD_SEED, args.size, CHILD_AGES, jobs=args.jobs)
    write_children(train_dir, args.young_children, YOUNG_SEED, args.size, YOUNG_AGES, "young", args.jobs)


def main() -> int:
    args = parse_args()
    if args.quick:
        args.train_cases, args.val_cases = 4, 2
        args.children, args.val_ages = min(args.children, 2), args.val_ages[:1]
        args.teeth_epochs = args.types_epochs = args.contacts_epochs = 2
        args.teeth_steps = args.types_steps = args.contacts_steps = 5
        args.size = "small"
        args.output = args.work / "quick.pt"
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    reporter = TerminalReporter()
    train_dir = args.work / "train"
    if args.draw_only:
        write_training_set(args, train_dir)
        return 0
    if not args.skip_training:
        write_training_set(args, train_dir)
        common = common_options(args, train_dir)
        lengths = {
            "teeth": (args.teeth_epochs, args.teeth_steps),
            "types": (args.types_epochs, args.types_steps),
            "contacts": (args.contacts_epochs, args.contacts_steps),
        }
        for n, stage in enumerate(s for s in STAGES if s in args.stages):
            epochs, steps = lengths[stage]
            init = args.init if n == 0 else str(args.output)  # a later stage continues the model in --output
            config = TrainConfig(**common, stages=[stage], epochs=epochs, steps_per_epoch=steps, init=init)
            reporter.log(f"{stage} summary: {json.dumps(train(config, reporter), default=str)[:1500]}")
    figures = validate(
        args.output, args.work, args.val_cases, args.val_fovs, args.size, reporter, args.val_ages, args.val_children
    )
    out = Path(str(args.output) + ".validation.json")
    out.write_text(json.dumps({"command": " ".join(sys.argv), "validation": figures}, indent=2, default=str))
    print(json.dumps({fov: m.get("mean", m) for fov, m in figures.items()}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
