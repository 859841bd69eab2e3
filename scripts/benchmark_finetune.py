"""Fine-tuning on two corrected scans of a phantom family the shipped model never saw: time and accuracy.

Not a test: prints figures. (1) writes two "corrected" scans of the far family (their exact truth, as
.seg.nrrd like a Slicer export), four more test scans of that family, and in-family validation
phantoms (the shipped model's own validation seeds); (2) runs ``finetune`` with its defaults, timed;
(3) segments the test scans and the in-family phantoms with the shipped and the new model.

    python scripts/benchmark_finetune.py [--work build/benchmark_finetune] [--threads 2]

The far family: ``--family B`` of the phantom generator when it has one, else the most different
settings it has (8-bit windowed grey values on a 0.3 mm grid; the shipped model saw 0.4-0.5 mm crops).
Targets (issue 15): <= 120 s on 2 cores; per-tooth Dice >= 0.92 and identification >= 0.98 on the four;
in-family per-tooth Dice drop <= 0.01.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from TeethSegmentationLib.events import TerminalReporter  # noqa: E402
from TeethSegmentationLib.inference.pipeline import SegmentOptions, segment_volume  # noqa: E402
from TeethSegmentationLib.io.read_write import read_volume, write_volume  # noqa: E402
from TeethSegmentationLib.io.seg_nrrd import write_segmentation  # noqa: E402
from TeethSegmentationLib.io.volume import Volume  # noqa: E402
from TeethSegmentationLib.metrics import evaluate_pair  # noqa: E402
from TeethSegmentationLib.nets.model_file import DEFAULT_MODEL_PATH, load_model  # noqa: E402
from TeethSegmentationLib.phantom import make_phantom  # noqa: E402
from TeethSegmentationLib.training.finetune import FinetuneConfig, finetune  # noqa: E402
from TeethSegmentationLib.training.lineage import file_digest  # noqa: E402

FAR_SEED = 70_000  # never used by the default model's training (100+) or validation (10000+)
IN_FAMILY_SEED = 10_000  # the model card's crop validation seeds


def far_settings() -> dict:
    if "family" in inspect.signature(make_phantom).parameters:
        return {"fov": "crop", "family": "B"}
    return {"fov": "crop", "grey": "uint8", "spacing": 0.3}


def phantoms(folder: Path, seed: int, count: int, settings: dict) -> list[tuple[Volume, Volume]]:
    """(image, truth) of ``count`` phantoms, generated once and kept in ``folder`` for later runs."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for i in range(count):
        image, truth = folder / f"case{seed + i}.nrrd", folder / f"case{seed + i}.labels.nrrd"
        if not truth.exists():
            make_phantom(seed + i, size="realistic", **settings).write(image, truth)
        cases.append((read_volume(image), read_volume(truth)))
    return cases


def scores(model, cases, device: str = "cpu") -> dict:
    found = []
    for image, truth in cases:
        predicted = segment_volume(image, model, SegmentOptions(device=device)).fdi.array
        found.append(evaluate_pair(predicted, truth.array, image.spacing))
    return {
        key: round(float(np.mean([f[key] for f in found])), 4)
        for key in ("dice_binary", "dice_per_tooth", "identification_accuracy")
    }


def shipped_scores(work: Path, name: str, cases, device: str = "cpu") -> dict:
    """The shipped model's scores, computed once per work folder, model file (by digest) and device."""
    path = work / f"shipped_{name}_{file_digest(DEFAULT_MODEL_PATH)[:12]}{'' if device == 'cpu' else '_' + device}.json"
    if not path.exists():
        path.write_text(json.dumps(scores(load_model(), cases, device)))
    return json.loads(path.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "benchmark_finetune")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--test-cases", type=int, default=4)
    parser.add_argument("--in-family", type=int, default=3)
    parser.add_argument("--options", default="{}", help="FinetuneConfig fields as JSON, to try other recipes")
    parser.add_argument("--far-seed", type=int, default=FAR_SEED,
                        help="first far-family seed (training scans; test scans from +100): others to try recipes on")
    parser.add_argument("--in-family-seed", type=int, default=IN_FAMILY_SEED)
    parser.add_argument("--prepare", action="store_true", help="only write the scans into --work")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N: fine-tuning and scoring")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = far_settings()
    data = args.work / "corrected"
    data.mkdir(parents=True, exist_ok=True)
    for i, (image, truth) in enumerate(phantoms(args.work / "far_train", args.far_seed, 2, settings)):
        write_volume(image, data / f"scan{i}.nrrd")
        write_segmentation(truth, data / f"scan{i}.seg.nrrd")
    tests = phantoms(args.work / "far_test", args.far_seed + 100, args.test_cases, settings)
    in_family = phantoms(args.work / "in_family", args.in_family_seed, args.in_family, {"fov": "crop"})
    if args.prepare:
        return 0
    output = args.work / "finetuned.pt"
    start, cpu = time.perf_counter(), time.process_time()
    config = FinetuneConfig(data_dir=str(data), output=str(output), device=args.device, **json.loads(args.options))
    result = finetune(config, TerminalReporter())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    tuned = load_model(output)
    figures = {
        "far_family": settings,
        "threads": args.threads,
        "device": args.device,
        "finetune_seconds": round(seconds, 1),
        "finetune_cpu_seconds": round(cpu, 1),  # / threads = the wall time on an idle machine
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "held_back": result["figure"],
        "better": result["better"],
        "epochs_run": result["epochs_run"],
        "options": json.loads(args.options),
        "far_before": shipped_scores(args.work, "far", tests, args.device),
        "far_after": scores(tuned, tests, args.device),
        "in_family_before": shipped_scores(args.work, "in_family", in_family, args.device),
        "in_family_after": scores(tuned, in_family, args.device),
    }
    figures["in_family_drop"] = round(
        figures["in_family_before"]["dice_per_tooth"] - figures["in_family_after"]["dice_per_tooth"], 4
    )
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
