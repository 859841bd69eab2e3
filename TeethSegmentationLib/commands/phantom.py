"""`teethseg phantom OUTDIR`: write synthetic dental CBCT cases with exact FDI label maps."""

from __future__ import annotations

import argparse
from typing import Any

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.events import Reporter

NAME = "phantom"
HELP = "write synthetic dental CBCT scans with exact FDI label maps (caseNN.nrrd + caseNN.labels.nrrd)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from TeethSegmentationLib.phantom import CONVENTIONS, DENTITIONS, FAMILIES, FOVS, GREYS, SIZES

    parser.add_argument("outdir", help="folder to write caseNN.nrrd and caseNN.labels.nrrd into")
    parser.add_argument("--cases", type=int, default=1, help="number of cases (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first case; case n uses seed + n")
    parser.add_argument("--size", choices=SIZES, default="realistic", help="tiny (~60 voxels), small, realistic")
    parser.add_argument(
        "--fov",
        choices=FOVS,
        default="crop",
        help="crop (the teeth), jaws (with rami), head, lower or upper (one arch, the other outside the scan)",
    )
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default="A",
        help="A: the family the default model trains on; B: other shapes, arches, grey values and artefacts, "
        "never trained on (validation outside the training family)",
    )
    parser.add_argument(
        "--dentition",
        choices=DENTITIONS,
        default="permanent",
        help="permanent (an adult's teeth) or mixed (a child's: primary teeth, erupted and forming permanent ones)",
    )
    parser.add_argument("--age", type=float, default=None, help="a mixed dentition's age in years (5-15; default 6-14)")
    parser.add_argument("--grey", choices=GREYS, default="random", help="how grey values are stored")
    parser.add_argument("--convention", choices=CONVENTIONS, default="random", help="file axis convention")
    parser.add_argument("--spacing", type=float, default=None, help="voxel size in mm (default: per size/fov)")
    parser.add_argument("--preview", action="store_true", help="also write caseNN.png (needs matplotlib)")


def run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from TeethSegmentationLib.phantom import write_phantoms

    if args.cases < 1:
        raise InputError(f"--cases must be at least 1, not {args.cases}.")
    if args.age is not None and args.dentition != "mixed":
        raise InputError("--age needs --dentition mixed (an adult phantom has no age to set).")
    if args.spacing is not None and not 0.05 < args.spacing < 10:
        raise InputError(f"--spacing must be between 0.05 and 10 mm, not {args.spacing}.")
    picture = None
    if args.preview:
        try:
            import matplotlib  # noqa: F401
        except ImportError as error:
            raise InputError("--preview needs matplotlib: pip install matplotlib, or leave out --preview.") from error
        from TeethSegmentationLib.presentation.slices_picture import render_slices

        def picture(image, labels, path, title):
            return render_slices(image, labels, path, title=title)

    cases = write_phantoms(
        args.outdir,
        args.cases,
        args.seed,
        size=args.size,
        fov=args.fov,
        grey=args.grey,
        reporter=reporter,
        picture=picture,
        spacing=args.spacing,
        convention=args.convention,
        family=args.family,
        dentition=args.dentition,
        age=args.age,
    )
    reporter.log(f"wrote {len(cases)} phantom case(s) to {args.outdir}")
    files = [path for case in cases for path in case["files"].values()]
    summary = [
        {k: case[k] for k in ("case", "seed", "family", "grey", "shape", "spacing", "present", "missing")}
        for case in cases
    ]
    return {"outdir": str(args.outdir), "files": files, "cases": summary}
