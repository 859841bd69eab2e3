"""`teethseg train`: train stage 1 (teeth) and/or stage 2 (tooth types) on labelled scans.

Examples::

    teethseg train --data cases/ --output my-model.pt --epochs 50
    teethseg train --images a.nrrd b.nrrd --labels a.labels.nrrd b.labels.nrrd --output m.pt \
        --stages types --init base.pt
    teethseg train --resume my-model.pt.ckpt            # continue where a cancelled run stopped
    torchrun --nproc_per_node=4 -m TeethSegmentationLib train --data cases/ --output m.pt   # several GPUs

Every option is declared once, as a field of ``training.config.TrainConfig``; the flags derive from it.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.events import Reporter
from TeethSegmentationLib.training.config import TrainConfig, default_of, flag_of, metavar_of, spec_of, value_type

NAME = "train"
HELP = "train or fine-tune the teeth and tooth-type networks on labelled scans"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per declared option; every default is None so that --resume keeps the checkpoint's values."""
    for f in fields(TrainConfig):
        flag = flag_of(f)
        if not flag:
            continue
        spec, kind, default = spec_of(f), value_type(f), default_of(f)
        shown = "" if default in (None, [], "") or kind is bool else f" (default {_shown(default)})"
        if kind is bool and default:  # on by default: the flag turns it off
            parser.add_argument(
                f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_const", const=False, default=None,
                help=f"do not {spec.help[0].lower()}{spec.help[1:]}",
            )
            continue
        if kind is bool:  # off by default: the flag turns it on
            parser.add_argument(flag, dest=f.name, action="store_const", const=True, default=None, help=spec.help)
            continue
        parser.add_argument(
            flag, dest=f.name, default=None, help=spec.help + shown, choices=spec.choices, metavar=metavar_of(f),
            **({"nargs": "+"} if kind is list else {"type": kind}),
        )


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from the flags given; with --resume, unset flags keep the checkpoint's values, and the
    outputs go where this command line says (beside the checkpoint unless --output is given)."""
    given = {f.name: getattr(args, f.name, None) for f in fields(TrainConfig)}
    given = {k: v for k, v in given.items() if v is not None}
    if bool(given.get("images")) != bool(given.get("labels")):
        raise InputError("Give --images and --labels together, one label map per image.")
    base: dict[str, Any] = {}
    if args.resume:
        from TeethSegmentationLib.training.checkpoint import load_checkpoint

        base = dict(load_checkpoint(args.resume)["config"])
        if "images" in given or "data_dir" in given:
            base.pop("images", None), base.pop("labels", None), base.pop("data_dir", None)
        base["output"] = given.setdefault("output", _output_beside(args.resume))
    elif not given.get("images") and not given.get("data_dir"):
        raise InputError("No training data; give --data DIR or --images with --labels.")
    if "output" not in given:
        raise InputError("Give --output, the model file to write (for example --output my-model.pt).")
    return TrainConfig.from_dict({**base, **given})


def _output_beside(checkpoint: str) -> str:
    """``model.pt.ckpt`` -> ``model.pt``: a resumed run writes beside the checkpoint it was given."""
    path = Path(checkpoint)
    if path.suffix != ".ckpt":
        raise InputError(f"Give --output with --resume {checkpoint}: the model file to write.")
    return str(path.with_suffix(""))


def run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from TeethSegmentationLib.training.trainer import train

    summary = train(config_from_args(args), reporter)
    summary.pop("history", None)  # per-epoch figures went out as events already
    return summary
