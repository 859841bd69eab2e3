"""`teethseg segment`: segment and FDI-number the teeth of one or more CBCT scans."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from TeethSegmentationLib.events import Reporter

NAME = "segment"
HELP = "segment and FDI-number the teeth of CBCT scans (NRRD, NIfTI or DICOM folders)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IN", help="volume files (.nrrd, .nii.gz, ...) or DICOM folders")
    parser.add_argument("--output", "-o", required=True, metavar="OUT", help="output folder")
    parser.add_argument("--model", metavar="FILE", help="model file (default: the shipped model)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--tta", action="store_true", help="average over axis flips (8x slower, a bit more robust)")
    parser.add_argument("--stl", action="store_true", help="also write one STL surface per tooth")
    parser.add_argument("--stl-space", choices=("LPS", "RAS"), default="LPS", help="STL coordinates (default LPS)")
    parser.add_argument("--nine-class", action="store_true", help="also write the 9-class type map (.types.nrrd)")
    parser.add_argument("--series", metavar="UID", help="DICOM series instance UID when a folder holds several")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")


def run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    import torch

    from TeethSegmentationLib.errors import InputError
    from TeethSegmentationLib.inference.pipeline import SegmentOptions, segment_file
    from TeethSegmentationLib.nets.model_file import load_model

    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, not {args.threads}.")
        torch.set_num_threads(args.threads)
    for source in args.inputs:
        if not Path(source).exists():
            raise InputError(f"{source} does not exist; check the path and try again.")
    model = load_model(args.model)
    options = SegmentOptions(
        device=args.device,
        tta=args.tta,
        stl=args.stl,
        stl_space=args.stl_space,
        nine_class=args.nine_class,
        series_uid=args.series,
    )
    summaries = []
    for index, source in enumerate(args.inputs, start=1):
        if len(args.inputs) > 1:
            reporter.log(f"[{index}/{len(args.inputs)}] {source}")
        report = segment_file(source, args.output, model, options, reporter)
        summaries.append(
            {
                "input": str(source),
                "outputs": report["outputs"],
                "tooth_count": report["tooth_count"],
                "teeth": [t["fdi"] for t in report["teeth"]],
                "timings_s": report["timings_s"],
                "warnings": report["warnings"],
            }
        )
    return {"output": str(args.output), "inputs": summaries}
