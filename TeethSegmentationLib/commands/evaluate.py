"""`teethseg evaluate`: accuracy of predicted FDI label maps against ground truth, per case and mean."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from TeethSegmentationLib.atomic import atomic_path
from TeethSegmentationLib.events import Reporter, jsonable

NAME = "evaluate"
HELP = "compare predicted FDI label maps with ground truth (Dice, identification, missed/spurious, HD95)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, metavar="DIR", help="predictions: NAME.teeth.nrrd or NAME.nrrd")
    parser.add_argument("--truth", required=True, metavar="DIR", help="ground truth: NAME.labels.nrrd or NAME.nrrd")
    parser.add_argument(
        "--label-table",
        default="fdi",
        metavar="TABLE",
        help="label values of the truth maps: fdi (default), toothfairy2, dentvoxel or FILE.json",
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout instead of a table")
    parser.add_argument("--output", metavar="FILE.json", help="also write the metrics to this JSON file")


def run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from TeethSegmentationLib.metrics import evaluate_dirs, format_table

    result = evaluate_dirs(args.pred, args.truth, args.label_table, reporter)
    text = json.dumps(jsonable(result), indent=2, allow_nan=False)
    if args.output:
        _write_atomically(Path(args.output), text + "\n")
    if not args.events:  # with --events stdout carries JSON lines only; the result event has the metrics
        sys.stdout.write(text + "\n" if args.json else format_table(result) + "\n")
        sys.stdout.flush()
    else:
        for line in format_table(result).splitlines():
            reporter.log(line)
    return {"metrics": result, "output": args.output}


def _write_atomically(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
