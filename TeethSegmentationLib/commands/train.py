"""`teethseg train`: train stage 1 (teeth) and/or stage 2 (tooth types) on labelled scans.

Examples::

    teethseg train --data cases/ --output my-model.pt --epochs 50
    teethseg train --images a.nrrd b.nrrd --labels a.labels.nrrd b.labels.nrrd --output m.pt --stage 2 --init base.pt
    teethseg train --resume my-model.pt.ckpt            # continue where a cancelled run stopped
    torchrun --nproc_per_node=4 -m TeethSegmentationLib train --data cases/ --output m.pt   # several GPUs
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from TeethSegmentationLib.events import Reporter

NAME = "train"
HELP = "train or fine-tune the teeth and tooth-type networks on labelled scans"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--images", nargs="+", default=None, metavar="IMAGE", help="training scans")
    data.add_argument("--labels", nargs="+", default=None, metavar="LABELS", help="their label maps, same order")
    data.add_argument("--data", default=None, metavar="DIR", help="a folder of NAME.nrrd + NAME.labels.nrrd pairs")
    data.add_argument(
        "--label-kind",
        choices=("auto", "fdi", "classes", "binary"),
        default=None,
        help="label values: FDI numbers, tooth types 0-8 or binary 0/1 (default: detect)",
    )
    data.add_argument(
        "--label-table",
        default=None,
        metavar="NAME|FILE.json",
        help="map a dataset's labels to FDI: fdi, toothfairy2, dentvoxel or a JSON file",
    )
    data.add_argument("--val-fraction", type=float, default=None, help="share of cases held out (default 0.2)")
    parser.add_argument("--output", default=None, help="model file to write (.pt); the checkpoint goes to OUTPUT.ckpt")
    parser.add_argument("--stage", choices=("1", "2", "both"), default=None, help="which network(s) to train")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per stage (default 10)")
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="batches per epoch (default 50)")
    parser.add_argument("--patch", type=int, default=None, help="patch edge in voxels (default 64)")
    parser.add_argument("--batch", type=int, default=None, help="patches per batch (default 2)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-3)")
    parser.add_argument(
        "--lr-schedule", choices=("poly", "constant"), default=None, help="per-epoch decay (default poly)"
    )
    parser.add_argument("--optimizer", choices=("adam", "rmsprop"), default=None)
    parser.add_argument("--loss", choices=("dice", "dice+ce"), default=None, help="default dice+ce")
    parser.add_argument("--no-augment", action="store_true", default=None, help="train without augmentation")
    parser.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    parser.add_argument("--init", default=None, metavar="MODEL", help="fine-tune from this model file")
    parser.add_argument("--resume", default=None, metavar="CKPT", help="continue a checkpoint (OUTPUT.ckpt)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader worker processes (default 0)")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="epochs between checkpoints (default 1)")
    parser.add_argument("--teeth-spacing", type=float, default=None, help="stage 1 voxel size in mm (default 1.0)")
    parser.add_argument("--spacing", type=float, default=None, help="stage 2 voxel size in mm (default 0.5)")
    parser.add_argument("--filters-teeth", type=int, default=None, help="stage 1 start filters (default 18)")
    parser.add_argument("--filters-types", type=int, default=None, help="stage 2 start filters (default 9)")
    parser.add_argument(
        "--types-input",
        choices=("image", "image+teeth"),
        default=None,
        help="stage 2 input: the image, or the image plus stage 1's teeth probability",
    )


def config_from_args(args: argparse.Namespace):
    """TrainConfig from the flags given; with --resume, unset flags keep the checkpoint's values."""
    from TeethSegmentationLib.errors import InputError
    from TeethSegmentationLib.training.checkpoint import load_checkpoint
    from TeethSegmentationLib.training.trainer import TrainConfig

    given = {
        "data_dir": args.data,
        "images": args.images,
        "labels": args.labels,
        "label_kind": args.label_kind,
        "label_table": args.label_table,
        "val_fraction": args.val_fraction,
        "output": args.output,
        "stage": args.stage,
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch,
        "patch": args.patch,
        "batch": args.batch,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "lr_schedule": args.lr_schedule,
        "cross_entropy": None if args.loss is None else args.loss == "dice+ce",
        "augment": None if args.no_augment is None else not args.no_augment,
        "device": args.device,
        "init": args.init,
        "resume": args.resume,
        "seed": args.seed,
        "workers": args.workers,
        "checkpoint_every": args.checkpoint_every,
        "teeth_spacing_mm": args.teeth_spacing,
        "spacing_mm": args.spacing,
        "filters_teeth": args.filters_teeth,
        "filters_types": args.filters_types,
        "types_input": args.types_input,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if bool(given.get("images")) != bool(given.get("labels")):
        raise InputError("Give --images and --labels together, one label map per image.")
    base: dict[str, Any] = {}
    if args.resume:
        base = dict(load_checkpoint(args.resume)["config"])
        if "images" in given or "data_dir" in given:
            base.pop("images", None), base.pop("labels", None), base.pop("data_dir", None)
    elif not given.get("images") and not given.get("data_dir"):
        raise InputError("No training data; give --data DIR or --images with --labels.")
    if "output" not in given and "output" not in base:
        raise InputError("Give --output, the model file to write (for example --output my-model.pt).")
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig.from_dict({k: v for k, v in {**base, **given}.items() if k in names})


def run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from TeethSegmentationLib.training.trainer import train

    summary = train(config_from_args(args), reporter)
    summary.pop("history", None)  # per-epoch figures went out as events already
    return summary
