"""`teethseg finetune`: improve a model on a few corrected scans, with an honest held-back figure.

Examples::

    teethseg finetune --data my_cases/ --output my-model.pt                 # from the shipped model
    teethseg finetune --data LIBRARY --output m.pt --default-model LIBRARY/models/user-default.pt --events

``--data`` is a case library (``case_library.py``) or a folder of ``NAME.nrrd`` + ``NAME.seg.nrrd`` /
``NAME.labels.nrrd`` pairs. The new model replaces ``--default-model`` only when it does better on the
held-back scan (the result's ``better``).
"""

from __future__ import annotations

import argparse
from typing import Any

from TeethSegmentationLib.events import Reporter
from TeethSegmentationLib.training.config import PRECISIONS  # torch-free, like the command's --help

NAME = "finetune"
HELP = "fine-tune the model on a few corrected scans (20-40 s on a 2-core CPU for two)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="DIR", help="a case library or a folder of case pairs")
    parser.add_argument("--output", required=True, metavar="MODEL.pt", help="the new model file")
    parser.add_argument("--init", default=None, metavar="MODEL", help="model to start from (default: the shipped one)")
    parser.add_argument(
        "--default-model", default=None, metavar="FILE", help="install the new model here if it does better"
    )
    parser.add_argument(
        "--label-table", default=None, metavar="NAME|FILE.json", help="label maps' values -> FDI (as for train)"
    )
    parser.add_argument(
        "--unlabelled",
        choices=("model", "background"),
        default="model",
        help="teeth a case leaves unlabelled: the model's own result (default) or background",
    )
    parser.add_argument("--no-hold-back", action="store_true", help="train on every case (no held-back figure)")
    parser.add_argument("--epochs", type=int, default=None, help="types-stage epochs (default: scales with the cases)")
    parser.add_argument("--teeth-epochs", type=int, default=None, help="teeth-stage epochs (default: half as many)")
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="default 25")
    parser.add_argument("--replay-phantoms", type=int, default=None, help="fresh phantoms mixed in (default: scales)")
    parser.add_argument(
        "--phantom-cache", default=None, metavar="DIR", help="folder kept between runs for the replay phantoms"
    )
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default 2e-4, poly decay)")
    parser.add_argument(
        "--train-norm", action="store_true", help="let batch-norm statistics follow the new cases (default: frozen)"
    )
    parser.add_argument(
        "--mix", type=float, default=None,
        help="share of the fine-tuned weights, the rest the parent's (default 0.5; 1.0: no mixing)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="auto",
        help="CPU training arithmetic; auto: bfloat16 on CPUs with native bf16, about 2x faster (default: auto)",
    )
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from TeethSegmentationLib.training.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        data_dir=args.data,
        output=args.output,
        init=args.init,
        default_model=args.default_model,
        label_table=args.label_table,
        unlabelled=args.unlabelled,
        hold_back=not args.no_hold_back,
        epochs=args.epochs,
        teeth_epochs=args.teeth_epochs,
        steps_per_epoch=args.steps_per_epoch,
        replay_phantoms=args.replay_phantoms,
        phantom_cache=args.phantom_cache,
        **({} if args.lr is None else {"lr": args.lr}),
        **({} if args.mix is None else {"mix": args.mix}),
        freeze_norm=not args.train_norm,
        device=args.device,
        precision=args.precision,
        seed=args.seed,
    )
    return finetune(config, reporter)
