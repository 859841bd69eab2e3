"""Time `segment` stage by stage against a straightforward float32 full-volume pass (not a test).

    .venv/bin/python scripts/benchmark_segment.py                         # realistic crop
    .venv/bin/python scripts/benchmark_segment.py --fov head --shape 600 600 450

The networks have the seed's architecture (the default model when it exists, else freshly
initialised). An untrained network finds nothing, so each is wrapped: the real network runs (its
cost is what is timed) and the logits come from a threshold of the normalised image, which gives
a realistic teeth box. Each variant runs in its own process so that the peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from TeethSegmentationLib.modelfile import DEFAULT_MODEL_PATH, TeethModel, load_model, new_model  # noqa: E402
from TeethSegmentationLib.volume import Volume  # noqa: E402


class TimedThreshold(nn.Module):
    """Runs ``net`` (for its cost) but answers 'bright is tooth, type 1'."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.config, self.divisor = net, net.config, net.divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.net(x)
        score = 20 * (x[:, :1] - 0.5)
        if self.config["out_channels"] == 1:
            return score
        return torch.cat([-score, score, *([torch.zeros_like(score)] * 7)], dim=1)


def synthetic(shape: tuple[int, int, int], spacing: float, seed: int = 0) -> Volume:
    """Soft tissue, a bony arch and 28 bright teeth along it (upper and lower), with noise."""
    rng = np.random.default_rng(seed)
    array = rng.standard_normal(shape, dtype=np.float32) * 30 + 200
    centre = (np.array(shape) - 1) / 2 * spacing
    i, j, k = (np.arange(n, dtype=np.float32) * spacing for n in shape)
    for jaw, dz in ((1, 6.0), (-1, -6.0)):
        for index in range(14):
            angle = np.pi * (0.08 + 0.84 * index / 13)
            x = centre[0] + 24 * np.cos(angle)
            y = centre[1] - 10 + 22 * np.sin(angle)
            z = centre[2] + dz
            sl = [slice(max(0, int((c - 6) / spacing)), int((c + 6) / spacing) + 1) for c in (x, y, z)]
            d = (((i[sl[0], None, None] - x) / 3.0) ** 2 + ((j[None, sl[1], None] - y) / 3.0) ** 2
                 + ((k[None, None, sl[2]] - z) / 5.0) ** 2)
            array[sl[0], sl[1], sl[2]][d <= 1] = 2000 + jaw * 50
    return Volume(array.astype(np.int16), np.diag([spacing, spacing, spacing, 1.0]), space="LPS")


def make_input(args: argparse.Namespace) -> Volume:
    if args.fov == "crop":
        try:
            from TeethSegmentationLib.phantom import make_phantom

            made = make_phantom(args.seed, size="realistic", fov="crop")
            volume = made[0] if isinstance(made, tuple) else getattr(made, "image", made)
            if isinstance(volume, Volume):
                return volume
        except (ImportError, TypeError, AttributeError):
            pass
    return synthetic(tuple(args.shape), args.spacing, args.seed)


def seed_model() -> TeethModel:
    model = load_model(DEFAULT_MODEL_PATH) if DEFAULT_MODEL_PATH.exists() else new_model()
    model.teeth_net = TimedThreshold(model.teeth_net)
    model.types_net = TimedThreshold(model.types_net)
    return model.eval()


def standin_instances(teeth_prob, type_probs, ijk_to_ras, reporter=None):
    """Connected components numbered 11, 12, ... (used only while instances.py is missing)."""
    from types import SimpleNamespace

    from scipy import ndimage

    components, count = ndimage.label(teeth_prob > 0.5)
    fdi_numbers = [10 * q + t for q in (1, 2, 3, 4) for t in range(1, 8)]
    lut = np.zeros(count + 1, np.uint8)
    lut[1:] = [fdi_numbers[n % len(fdi_numbers)] for n in range(count)]
    centres = ndimage.center_of_mass(teeth_prob > 0.5, components, range(1, count + 1))
    teeth = [SimpleNamespace(fdi=int(lut[n + 1]), type=1, confidence=1.0, voxel_count=0,
                             centroid_ras=ijk_to_ras[:3, :3] @ np.array(c) + ijk_to_ras[:3, 3])
             for n, c in enumerate(centres)]
    return SimpleNamespace(fdi_map=lut[components], teeth=teeth)


def run_pipeline(args: argparse.Namespace) -> dict:
    import tempfile

    from TeethSegmentationLib import segment
    from TeethSegmentationLib.segment import SegmentOptions, segment_file
    from TeethSegmentationLib.volume import write_volume

    try:
        import TeethSegmentationLib.instances  # noqa: F401

        instances = "instances.label_teeth"
    except ImportError:
        segment.label_instances = lambda p, t, m, r: standin_instances(p, t, m, r)
        instances = "stand-in (connected components)"
    volume = make_input(args)
    with tempfile.TemporaryDirectory() as tmp:
        source = write_volume(volume, Path(tmp) / "bench.nrrd")
        start = time.perf_counter()
        report = segment_file(source, Path(tmp) / "out", seed_model(), SegmentOptions(device="cpu"))
        total = time.perf_counter() - start
    return {"timings": report["timings_s"], "total": total, "teeth": report["tooth_count"],
            "shape": list(volume.shape), "spacing": [round(float(s), 3) for s in volume.spacing],
            "instances": instances}


def run_baseline(args: argparse.Namespace) -> dict:
    """Stage 1 (18 filters) and stage 2 (9 filters) float32 on the whole volume at 0.5 mm, in one pass each."""
    from TeethSegmentationLib.model import pad_to_multiple
    from TeethSegmentationLib.normalize import normalize
    from TeethSegmentationLib.volume import reorient_to_ras, resample_to_spacing

    volume = make_input(args)
    model = new_model()
    timings = {}
    start = time.perf_counter()
    fine = resample_to_spacing(reorient_to_ras(volume), 0.5, order=1)
    x = torch.from_numpy(normalize(fine.array, model.normalization))[None, None]
    timings["resample"] = time.perf_counter() - start
    with torch.inference_mode():
        for name, net in (("teeth", model.teeth_net.eval()), ("types", model.types_net.eval())):
            t0 = time.perf_counter()
            padded, crop = pad_to_multiple(x, net.divisor)
            net(padded)[(slice(None), slice(None), *crop)]
            timings[name] = time.perf_counter() - t0
    return {"timings": {k: round(v, 3) for k, v in timings.items()}, "total": time.perf_counter() - start,
            "shape": list(fine.shape)}


def child(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_pipeline(args) if args.variant == "pipeline" else run_baseline(args)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["torch_threads"] = torch.get_num_threads()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fov", choices=("crop", "head"), default="crop")
    parser.add_argument("--shape", type=int, nargs=3, default=None)
    parser.add_argument("--spacing", type=float, default=None, help="mm (default 0.4 for crop, 0.3 for head)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--variant", choices=("pipeline", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.shape = args.shape or ([160, 130, 100] if args.fov == "crop" else [600, 600, 450])
    args.spacing = args.spacing or (0.4 if args.fov == "crop" else 0.3)
    if args.variant:
        return child(args)
    rows = {}
    for variant in ("pipeline",) + (() if args.skip_baseline else ("baseline",)):
        cmd = [sys.executable, __file__, "--variant", variant, "--fov", args.fov, "--shape", *map(str, args.shape),
               "--spacing", str(args.spacing), "--seed", str(args.seed), "--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(done.returncode)
        rows[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"input {args.fov}: {args.shape} voxels of {args.spacing} mm")
    for variant, row in rows.items():
        stages = "  ".join(f"{k} {v:.2f}s" for k, v in row["timings"].items())
        print(f"{variant:>9}: total {row['total']:6.2f} s  peak RSS {row['peak_rss_mb']:7.0f} MB  "
              f"threads {row['torch_threads']}  | {stages}")
        extra = {k: row[k] for k in ("teeth", "instances", "shape") if k in row}
        print(f"{'':>11}{extra}")


if __name__ == "__main__":
    main()
