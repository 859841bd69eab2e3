"""GUI-thread time to hand a volume to the engine: the scene -> NRRD write the module does at Segment (not a test).

    .venv/bin/python scripts/benchmark_handoff.py                      # 600 x 600 x 450 int16, as a head CBCT
    .venv/bin/python scripts/benchmark_handoff.py --shape 400 400 300 --repeats 3

Runs Slicer's real volume storage node (slicer-core) through ``mrml.export_volume_to_nrrd``, uncompressed
as the module writes the engine's input, and gzip-compressed for comparison; prints seconds, MB written and
the peak RSS. The folder is a fresh temporary one (use ``--folder`` for another disk).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np


def _scene():
    import slicer

    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace()
    return slicer, scene


def _volume(slicer, shape: tuple[int, int, int]):
    """A CBCT-like int16 volume: grey noise with a bright block (gzip has something to chew on)."""
    rng = np.random.default_rng(0)
    array = rng.normal(300, 80, size=shape[::-1]).astype(np.int16)  # K, J, I
    k, j, i = (s // 4 for s in shape[::-1])
    array[k:3 * k, j:3 * j, i:3 * i] += 1200
    node = slicer.util.addVolumeFromArray(array, nodeClassName="vtkMRMLScalarVolumeNode")
    node.SetSpacing(0.25, 0.25, 0.25)
    return node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(600, 600, 450), metavar=("I", "J", "K"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from TeethSegmentationLib import mrml

    slicer, _scene_node = _scene()
    node = _volume(slicer, tuple(args.shape))
    folder = Path(tempfile.mkdtemp(prefix="handoff-", dir=args.folder))
    try:
        for compress in (False, True):
            seconds = []
            for repeat in range(args.repeats):
                started = time.perf_counter()
                path = mrml.export_volume_to_nrrd(node, folder / f"input{repeat}.nrrd", compress=compress)
                seconds.append(time.perf_counter() - started)
                size_mb = path.stat().st_size / 1e6
                path.unlink()
            figures = {"shape": list(args.shape), "compressed": compress, "seconds": [round(s, 2) for s in seconds],
                       "best_s": round(min(seconds), 2), "file_mb": round(size_mb, 1)}
            print(json.dumps(figures), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": round(peak_mb)}))


if __name__ == "__main__":
    main()
