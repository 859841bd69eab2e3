"""`teethseg demo`: segment a realistic synthetic CBCT with the shipped model; STL, metrics and a picture."""

from __future__ import annotations

import argparse
from typing import Any

from TeethSegmentationLib.events import Reporter

NAME = "demo"
HELP = "segment a synthetic CBCT with the default model and write labels, STL, metrics and demo.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="demo_output", help="folder for all outputs (default: demo_output)")
    parser.add_argument("--seed", type=int, default=2026, help="phantom seed (never used in training)")
    parser.add_argument("--model", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from TeethSegmentationLib.presentation.demo_case import run_demo

    result = run_demo(args.output, seed=args.seed, model_path=args.model, device=args.device, reporter=reporter)
    m = result["metrics"]
    reporter.log(
        f"{result['teeth']} teeth; binary Dice {m.get('dice_binary') or 0:.3f}, per-tooth Dice "
        f"{m.get('dice_per_tooth') or 0:.3f}, identification {m.get('identification_accuracy') or 0:.2f}; "
        f"picture: {result['picture']}"
    )
    return result
