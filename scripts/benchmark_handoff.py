"""GUI-thread time to hand a volume to the engine and to take its result back (not a test).

    .venv/bin/python scripts/benchmark_handoff.py                      # 600 x 600 x 450 int16, as a head CBCT
    .venv/bin/python scripts/benchmark_handoff.py --shape 400 400 300 --repeats 3
    .venv/bin/python scripts/benchmark_handoff.py --load               # also: 32 teeth back into segments

Runs Slicer's real volume storage node (slicer-core) through ``mrml.export_volume_to_nrrd``, uncompressed
as the module writes the engine's input, and gzip-compressed for comparison; prints seconds, MB written and
the peak RSS. With ``--load``, a label map of 32 box teeth on the same grid is loaded as the module loads
the engine's result (``load_fdi_labelmap_as_segments``), without and with the 3D surfaces. The folder is a
fresh temporary one (use ``--folder`` for another disk).
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
    """Slicer's MRML scene with the logics the module uses (as Testing/conftest.py sets it up)."""
    import slicer

    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    logics = {}
    for name in ("Volumes", "Terminologies", "Segmentations", "SubjectHierarchy"):
        logic = getattr(slicer, f"vtkSlicer{name}{'Module' if name != 'Volumes' else ''}Logic")()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app)
        app.SetModuleLogic(name, logic)
        logics[name.lower()] = logic
    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace(
        **{key: types.SimpleNamespace(logic=lambda logic=logic: logic) for key, logic in logics.items()})
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


def _teeth_labelmap(shape: tuple[int, int, int]) -> np.ndarray:
    """32 boxes of 24 x 24 x 40 voxels (6 x 6 x 10 mm at 0.25 mm) in two arches, FDI-valued, K, J, I."""
    fdi = np.zeros(shape[::-1], np.uint8)
    for row, quadrants in enumerate(((1, 2), (4, 3))):
        k = shape[2] // 2 - 60 + 70 * row
        for slot, number in enumerate([10 * quadrants[0] + t for t in range(8, 0, -1)]
                                      + [10 * quadrants[1] + t for t in range(1, 9)]):
            i = shape[0] // 2 - 8 * 28 + slot * 28
            fdi[k:k + 40, 250:274, i:i + 24] = number
    return fdi


def _time_load(mrml, slicer, volume, folder: Path) -> None:
    labelmap = slicer.util.addVolumeFromArray(_teeth_labelmap(volume.GetImageData().GetDimensions()),
                                              nodeClassName="vtkMRMLLabelMapVolumeNode")
    labelmap.CopyOrientation(volume)
    path = mrml._write_node(labelmap, folder / "result.teeth.nrrd")
    for show_3d in (False, True):
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        started = time.perf_counter()
        mrml.load_fdi_labelmap_as_segments(path, node, volume, None, show_3d=show_3d)
        print(json.dumps({"load_teeth": node.GetSegmentation().GetNumberOfSegments(), "surfaces": show_3d,
                          "seconds": round(time.perf_counter() - started, 2)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(600, 600, 450), metavar=("I", "J", "K"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--load", action="store_true", help="also time loading 32 teeth back as segments")
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
        if args.load:
            _time_load(mrml, slicer, node, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": round(peak_mb)}))


if __name__ == "__main__":
    main()
