"""Peak memory of `teethseg segment` on hostile headers (issue 13): each case must stay under 2 GB.

    python scripts/benchmark_hostile_memory.py [--keep DIR]

Cases (small files, hostile headers):
  5mm-1m      NRRD, 200^3 voxels of 5 mm: a field of view about a metre across
  5mm-31cm    NRRD, 63^3 voxels of 5 mm: 31.5 cm across (31 litres), just inside the limits, segmented in full
  20mm-1m     NRRD, 50^3 voxels of 20 mm
  nifti-metre NIfTI of 256^3 voxels of 0.3 whose xyzt unit is metres (0.3 m voxels)
  gzip-bomb   NRRD whose gzip stream (about 17 MB) inflates to 1600^3 int16 voxels (8.2 GB)
  gzip-liar   NRRD whose header says 64^3 voxels while its gzip stream inflates to 2 GB

Each case runs as its own child process; its peak resident memory comes from wait4's rusage.
The hostile cases are refused from the header, before any voxel is read: their peak is the engine's
imports (about 260 MB). The 31-litre case runs the whole pipeline with the shipped model; its peak
(2.2 GB on a 2-core machine) is mostly stage 1's sliding-window activations (192^3 windows), as on
any whole-head scan, not the field of view.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 2048


def _ct_like(shape: tuple[int, int, int]) -> np.ndarray:
    array = np.full(shape, -1000, np.int16)
    centre = [s // 2 for s in shape]
    array[tuple(slice(c - s // 4, c + s // 4) for c, s in zip(centre, shape, strict=True))] = 40
    return array


def five_mm(folder: Path, spacing: float = 5.0, side: int = 200) -> Path:
    path = folder / f"wide_{spacing:g}mm.nrrd"
    header = {"space": "left-posterior-superior", "space directions": np.eye(3) * spacing, "encoding": "gzip"}
    nrrd.write(str(path), _ct_like((side, side, side)), header, index_order="F")
    return path


def nifti_metres(folder: Path) -> Path:
    path = folder / "metres.nii.gz"
    image = nib.Nifti1Image(_ct_like((256, 256, 256)), np.diag([0.3, 0.3, 0.3, 1.0]))
    image.header.set_xyzt_units("meter")
    nib.save(image, str(path))
    return path


def _gzip_nrrd(path: Path, sizes: str, inflated_bytes: int) -> Path:
    path.write_text(f"NRRD0004\ntype: short\ndimension: 3\nsizes: {sizes}\nendian: little\nencoding: gzip\n"
                    "space: left-posterior-superior\nspace directions: (0.1,0,0) (0,0.1,0) (0,0,0.1)\n\n")
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(64 << 20)
    with open(path, "ab") as f:
        for start in range(0, inflated_bytes, len(zeros)):
            f.write(packer.compress(zeros[: min(len(zeros), inflated_bytes - start)]))
        f.write(packer.flush())
    return path


def gzip_bomb(folder: Path) -> Path:
    return _gzip_nrrd(folder / "bomb.nrrd", "1600 1600 1600", 1600**3 * 2)


def gzip_liar(folder: Path) -> Path:
    return _gzip_nrrd(folder / "liar.nrrd", "64 64 64", 2 << 30)


CASES = {"5mm-1m": five_mm, "5mm-31cm": lambda f: five_mm(f, 5.0, 63),
         "20mm-1m": lambda f: five_mm(f, 20.0, 50), "nifti-metre": nifti_metres,
         "gzip-bomb": gzip_bomb, "gzip-liar": gzip_liar}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", metavar="DIR", help="make the files here and keep them")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="hostile-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{'case':<12}{'file MB':>9}{'exit':>6}{'peak MB':>9}{'s':>7}  message")
    worst = 0.0
    for name in args.cases:
        source = CASES[name](folder)
        result = _measured(source, folder / "out")
        worst = max(worst, result["peak_mb"])
        print(f"{name:<12}{source.stat().st_size / 2**20:>9.1f}{result['exit']:>6}{result['peak_mb']:>9.0f}"
              f"{result['seconds']:>7.1f}  {result['message']}", flush=True)
    print(f"worst peak {worst:.0f} MB ({'under' if worst < LIMIT_MB else 'OVER'} the {LIMIT_MB} MB limit)")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


def _measured(source: Path, output: Path) -> dict:
    """Run the child and take its own peak RSS (getrusage of the reaped child, not of this process)."""
    args = [sys.executable, "-m", "TeethSegmentationLib", "segment", str(source), "-o", str(output), "--events",
            "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    return {"exit": os.waitstatus_to_exitcode(status), "seconds": time.perf_counter() - start,
            "peak_mb": usage.ru_maxrss / 1024, "message": events[-1].get("message", "") if events else ""}


if __name__ == "__main__":
    main()
