"""Training options, each declared once: a ``TrainConfig`` field with its default, help and valid values.

The command line (``commands/train.py``), the checks before any data is read (``check_config``) and the
training summary in the model file all derive from these fields. The defaults are the recipe that built
the shipped model (``Resources/Models/README.md``); ``SHIPPED_RECIPE`` adds its per-stage lengths.
"""

from __future__ import annotations

import math
import os
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from TeethSegmentationLib.errors import InputError

# stage 1: binary teeth on the coarse grid; stage 2: 9 classes on the fine grid; "contacts": where two teeth
# touch, on the fine grid (optional: trained when asked, from stage 2's layers)
STAGES = ("teeth", "types", "contacts")
DEFAULT_STAGES = ("teeth", "types")
FINE_STAGES = ("types", "contacts")  # on the fine grid, in the teeth box, with stage 2's input
LEGACY_STAGES = {"1": ["teeth"], "2": ["types"], "both": ["teeth", "types"]}  # checkpoints before 0.2
OPTIMIZERS = ("adam", "rmsprop")
LR_SCHEDULES = ("poly", "constant")
# As nets.model_file's (not imported: the command line stays torch-free). "image+teeth" is kept: model files
# record it, and it feeds the types network stage 1's probability, the reference method's other variant.
TYPES_INPUTS = ("image", "image+teeth")
PRECISIONS = ("auto", "float32", "bfloat16")  # nets.devices.PRECISIONS, spelt out: importing it imports torch
LABEL_KINDS = ("auto", "fdi", "classes", "binary")
TYPES_CLASSES = ("9", "14")  # as fdi.NUM_CLASSES and fdi.NUM_CLASSES_MIXED
# The shipped model's stage lengths (scripts/train_default_model.py); everything else is TrainConfig's defaults.
# The shipped model has no contacts branch: its length is the one the 2026-12-05 candidates had (model card).
SHIPPED_RECIPE = {
    "teeth": {"epochs": 12, "steps_per_epoch": 50},
    "types": {"epochs": 36, "steps_per_epoch": 100},
    "contacts": {"epochs": 3, "steps_per_epoch": 800},
}


@dataclass(frozen=True)
class Spec:
    """How an option appears on the command line and which values it takes (bounds inclusive)."""

    help: str
    flag: str | None = None  # default: --name-with-dashes; "" = not on the command line
    low: float | None = None
    high: float | None = None
    below: float | None = None  # exclusive upper bound
    above: float | None = None  # exclusive lower bound
    choices: tuple[str, ...] | None = None
    metavar: str | None = None  # default: the flag in capitals, unless there are choices


def option(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field carrying its ``Spec``."""
    meta = {"spec": Spec(help, **spec)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    # data
    images: list[str] = option([], "training scans", metavar="IMAGE")
    labels: list[str] = option([], "their label maps, in the same order", metavar="LABELS")
    data_dir: str | None = option(None, "a folder of NAME.nrrd + NAME.labels.nrrd pairs", flag="--data", metavar="DIR")
    label_kind: str = option("auto", "label values: FDI numbers, tooth types 0-8 or binary 0/1", choices=LABEL_KINDS)
    label_table: str | None = option(
        None, "map a dataset's labels to FDI: fdi, toothfairy2, dentvoxel or a JSON file", metavar="NAME|FILE.json"
    )
    val_fraction: float = option(0.1, "share of cases held out for validation", low=0.0, below=1.0)
    # what to train
    output: str = option("", "model file to write (.pt); the checkpoint goes beside it as OUTPUT.ckpt")
    stages: list[str] = option(list(DEFAULT_STAGES), "the networks to train, in order", choices=STAGES)
    init: str | None = option(None, "fine-tune from this model file", metavar="MODEL")
    resume: str | None = option(None, "continue this checkpoint (OUTPUT.ckpt)", metavar="CKPT")
    # schedule
    epochs: int = option(10, "epochs per stage", low=1, high=100_000)
    steps_per_epoch: int = option(50, "batches per epoch", low=1, high=1_000_000)
    patch: int = option(48, "patch edge in voxels", low=16, high=512)
    batch: int = option(4, "patches per batch", low=1, high=1024)
    lr: float = option(2e-3, "learning rate", above=0.0)
    optimizer: str = option("adam", "optimiser", choices=OPTIMIZERS)
    lr_schedule: str = option(
        "poly", "per-epoch decay: lr * (1 - epoch / epochs) ** 0.9, or constant", choices=LR_SCHEDULES
    )
    cross_entropy: bool = option(True, "add (binary) cross-entropy to the Dice loss: steadier early training")
    augment: bool = option(True, "augment the patches (rotation, scale, flips, grey values, noise, blur)")
    scanner_augment: bool = option(
        True, "vary the grey values as other scanners do, too (a tissue curve, noise growing with the signal)"
    )
    artefact_augment: bool = option(
        False,
        "augment with the patient moving during the scan and with metal as other scanners show it (a saturated "
        "level, blooming, a dark halo, restored crowns shown solid) too, unless --no-augment; not in the shipped "
        "model's recipe",
    )
    foreground_fraction: float = option(2 / 3, "share of patches centred on a tooth", low=0.0, high=1.0, flag="")
    primary_incisor_share: float = option(
        0.0,
        "share of a child's tooth-centred patches drawn on its primary incisors (tiny remnants, otherwise drawn as "
        "one type in 13)",
        low=0.0,
        high=1.0,
    )
    # networks and grids (None: the init model's, else the new model's defaults)
    teeth_spacing_mm: float | None = option(
        None, "stage 1 (teeth) voxel size in mm (default 1.0)", low=0.25, high=4.0, flag="--teeth-spacing"
    )
    spacing_mm: float | None = option(
        None, "stage 2 (types) voxel size in mm (default 0.5)", low=0.1, high=2.0, flag="--spacing"
    )
    filters_teeth: int | None = option(None, "stage 1 start filters (default 9)", low=2, high=64)
    filters_types: int | None = option(None, "stage 2 start filters (default 9)", low=2, high=64)
    types_classes: str = option(
        "9",
        "stage 2 classes: 9 (background + 8 permanent types) or 14 (+ 5 primary types, for children's scans; "
        "needs FDI labels)",
        choices=TYPES_CLASSES,
    )
    types_input: str = option(
        "image", "stage 2 input: the image, or the image plus stage 1's teeth probability", choices=TYPES_INPUTS
    )
    # running
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    precision: str = option(
        "float32",
        "CPU training arithmetic: float32, bfloat16 (autocast), or auto (bfloat16 on CPUs with native bf16); "
        "CUDA always trains in float16 mixed precision",
        choices=PRECISIONS,
    )
    seed: int = option(0, "random seed of the case split, the patches and the initial weights", low=0)
    workers: int = option(0, "DataLoader worker processes; they also read and prepare the cases", low=0, high=64)
    checkpoint_every: int = option(1, "epochs between checkpoints", low=1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """From a checkpoint's or the command line's values; older checkpoints' ``stage`` 1/2/both is read too."""
        data = dict(data)
        if "stages" not in data and str(data.get("stage")) in LEGACY_STAGES:
            data["stages"] = LEGACY_STAGES[str(data["stage"])]
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def spec_of(f: Any) -> Spec:
    return f.metadata["spec"]


def flag_of(f: Any) -> str:
    spec = spec_of(f)
    return f"--{f.name.replace('_', '-')}" if spec.flag is None else spec.flag


def metavar_of(f: Any) -> str | None:
    spec = spec_of(f)
    if spec.metavar or spec.choices:
        return spec.metavar
    return flag_of(f).lstrip("-").upper().replace("-", "_")


def value_type(f: Any) -> type:
    """The field's value type without ``None``: str, int, float, bool or list."""
    hint = typing.get_type_hints(TrainConfig)[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin is list:
        return list
    return args[0] if args else hint


def default_of(f: Any) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


def check_config(config: TrainConfig) -> None:
    """One sentence for the first bad setting, before any data is read."""
    for f in fields(TrainConfig):
        problem = _problem(f, getattr(config, f.name))
        if problem:
            name = flag_of(f) or f.name
            raise InputError(f"{name} {problem}.")
    if not config.stages:
        raise InputError("Give at least one stage to train: --stages teeth types.")
    stages = list(config.stages)
    if "contacts" in stages and "types" in stages and stages.index("contacts") < stages.index("types"):
        raise InputError("Train the contacts branch after the types network (--stages types contacts): it reads it.")
    _check_output(config.output)


def _problem(f: Any, value: Any) -> str | None:
    """What is wrong with ``value`` for field ``f``, or None."""
    spec, kind = spec_of(f), value_type(f)
    if value is None:
        return None if default_of(f) is None else "needs a value"
    if spec.choices is not None:
        values = value if kind is list else [value]
        wrong = [v for v in values if v not in spec.choices]
        return f"must be one of {', '.join(spec.choices)}, not {wrong[0]!r}" if wrong else None
    if kind in (int, float):
        return _range_problem(spec, value, kind)
    return None


def _range_problem(spec: Spec, value: Any, kind: type) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        return f"must be {'a whole number' if kind is int else 'a number'}, not {value!r}"
    if not math.isfinite(value):
        return f"must be a finite number, not {value}"
    checks = (
        (spec.low, lambda v, b: v >= b, "at least"),
        (spec.high, lambda v, b: v <= b, "at most"),
        (spec.above, lambda v, b: v > b, "above"),
        (spec.below, lambda v, b: v < b, "below"),
    )
    for bound, ok, words in checks:
        if bound is not None and not ok(value, bound):
            return f"must be {words} {bound:g}, not {value:g}"
    return None


def _check_output(output: str) -> None:
    """The model file's name: a file in an existing or creatable folder, not a folder itself."""
    path = Path(output)
    if not output:
        raise InputError("Give --output, the model file to write (for example --output my-model.pt).")
    if output.endswith(("/", os.sep)) or path.is_dir():
        example = Path(output) / "model.pt"
        raise InputError(f"--output {output!r} is a folder; give the model file to write, for example {example}.")


def summary_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings a model file records about its training: every declared option except local paths' folders."""
    return {f.name: getattr(config, f.name) for f in fields(TrainConfig) if f.name not in ("images", "labels")}
