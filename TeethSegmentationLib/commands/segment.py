"""`teethseg segment`: segment and FDI-number the teeth of one or more CBCT scans."""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.events import Reporter

NAME = "segment"
HELP = "segment and FDI-number the teeth of CBCT scans (NRRD, NIfTI or DICOM folders)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="IN", help="volume files (.nrrd, .nii.gz, ...) or DICOM folders")
    parser.add_argument("--output", "-o", required=True, metavar="OUT", help="output folder")
    parser.add_argument("--model", metavar="FILE", help="model file (default: the shipped model)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument(  # nets.devices.PRECISIONS, spelt out: importing it would import torch before a bad input
        "--precision", choices=("auto", "float32", "bfloat16"), default="auto",
        help="the networks' arithmetic; auto (default): bfloat16 on CPUs with native bf16, else float32",
    )
    parser.add_argument("--tta", action="store_true", help="average over axis flips (8x slower, a bit more robust)")
    parser.add_argument("--stl", action="store_true", help="also write one STL surface per tooth")
    parser.add_argument("--stl-space", choices=("LPS", "RAS"), default="LPS", help="STL coordinates (default LPS)")
    parser.add_argument("--nine-class", action="store_true", help="also write the 9-class type map (.types.nrrd)")
    parser.add_argument("--series", metavar="UID", help="DICOM series instance UID when a folder holds several")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")


def run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from TeethSegmentationLib.inference.reading import read_scan
    from TeethSegmentationLib.io.output_folder import check_output_folder
    from TeethSegmentationLib.io.read_write import inspect_volume

    # Every check that needs no torch first: a bad input is answered in a fraction of a second.
    _check_unique_names(args.inputs)
    output = check_output_folder(args.output)
    for source in args.inputs:  # every input checked (header, geometry, size) before any work starts
        inspect_volume(source, args.series)
    reporter.progress("load", 0.0, "loading torch and the model")  # the user sees work start in well under 0.5 s
    pool = ThreadPoolExecutor(1)  # torch and the model load while the first scan is read: ~0.6 s less on a head
    try:
        loading = pool.submit(_load_model, args.model)
        first = read_scan(args.inputs[0], args.series, reporter)
        model = loading.result()
    finally:
        pool.shutdown(wait=False)
    from TeethSegmentationLib.inference.outputs import segment_file  # loaded by the worker: instant now
    from TeethSegmentationLib.inference.pipeline import SegmentOptions

    _set_threads(args.threads, reporter)
    options = SegmentOptions(
        device=args.device,
        precision=args.precision,
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
        report = segment_file(source, output, model, options, reporter, first if index == 1 else None)
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


def _load_model(model_path: str | None) -> Any:
    """The model, with torch and the segment pipeline imported on the way (the worker's share of start-up)."""
    from TeethSegmentationLib.inference import outputs  # noqa: F401 -- imported here, beside the read
    from TeethSegmentationLib.nets.model_file import load_model

    return load_model(model_path)


def _set_threads(threads: int | None, reporter: Reporter) -> None:
    """torch's CPU threads, at most the machine's cores (far more threads only cost memory, or crash)."""
    if threads is None:
        return
    import torch

    if threads < 1:
        raise InputError(f"--threads must be at least 1, not {threads}.")
    cores = os.cpu_count() or 1
    if threads > cores:
        reporter.log(f"--threads {threads} is more than the {cores} CPU cores here; using {cores}.", "warning")
    torch.set_num_threads(min(threads, cores))


def _check_unique_names(inputs: list[str]) -> None:
    """Inputs whose outputs would share a name (d1/scan.nrrd, d2/scan.nrrd) are refused before any work."""
    from TeethSegmentationLib.io.output_folder import output_name

    seen: dict[str, str] = {}
    for source in inputs:
        name = output_name(source)
        if name in seen and Path(seen[name]).resolve() != Path(source).resolve():
            raise InputError(
                f"{seen[name]} and {source} would both write outputs named '{name}'; rename one, or run them "
                "into different output folders."
            )
        if name in seen:
            raise InputError(f"{source} is given twice; give each input once.")
        seen[name] = source
