"""Time `segment` stage by stage (seconds, peak RSS) on a phantom or a synthetic volume (not a test).

    .venv/bin/python scripts/benchmark_segment.py                       # realistic crop phantom
    .venv/bin/python scripts/benchmark_segment.py --fov head            # ~600x600x450 head at 0.25 mm
    .venv/bin/python scripts/benchmark_segment.py --fov both --baseline # issue 17's checks in one run
    .venv/bin/python scripts/benchmark_segment.py --fov head --synthetic --shape 600 600 450
    python scripts/benchmark_segment.py --fov both --baseline --device cuda --warmup  # the GPU path

With the shipped default model the pipeline runs as a user runs it, the real networks' output feeding the
instance step, and a phantom's result is scored against its truth (per-tooth Dice, identification). Without
it (or with ``--start-filters``, 18 for the top of the reference method's range) the networks are freshly
initialised and find nothing, so each stage's real network runs (its cost is what is timed) and its
probabilities are then replaced by an oracle: the phantom's truth, smoothed, with noise. The oracle's own
seconds are taken off its stage. Without truth (``--synthetic``) untrained networks answer 'bright is tooth,
type 1'. Phantoms are cached on disk
(``--cache``): a head phantom takes a minute or two to generate. Each variant runs in its own
process so that the peak RSS is its own. For a head phantom it also times ``teethseg segment`` as a user runs it:
the default model's real networks, from process start to exit.
On a GPU (``--device cuda``) the first pass of a process also pays for CUDA's start and cuDNN's kernel choice:
``--warmup`` runs the pipeline once untimed first and reports that cold pass beside the warm one.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from TeethSegmentationLib import fdi as fdi_labels  # noqa: E402
from TeethSegmentationLib.errors import InputError  # noqa: E402
from TeethSegmentationLib.io.read_write import write_volume  # noqa: E402
from TeethSegmentationLib.io.resample import resample_to_reference  # noqa: E402
from TeethSegmentationLib.io.volume import Volume  # noqa: E402
from TeethSegmentationLib.nets.devices import PRECISIONS  # noqa: E402
from TeethSegmentationLib.nets.model_file import DEFAULT_MODEL_PATH, TeethModel, load_model, new_model  # noqa: E402


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


class Oracle:
    """Truth-derived probabilities on any grid: smoothed one-hot of the truth classes plus noise."""

    def __init__(self, truth: Volume, seed: int = 0) -> None:
        self.truth, self.rng, self.seconds = truth, np.random.default_rng(seed), {"teeth": 0.0, "types": 0.0}

    def _classes(self, grid: Volume) -> np.ndarray:
        return fdi_labels.fdi_map_to_classes(resample_to_reference(self.truth, grid, order=0).array).astype(np.uint8)

    def teeth(self, grid: Volume) -> np.ndarray:
        start = time.perf_counter()
        prob = ndimage.gaussian_filter((self._classes(grid) > 0).astype(np.float32), 0.7)
        self.seconds["teeth"] += time.perf_counter() - start
        return prob

    def types(self, grid: Volume, predicted: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        classes = self._classes(grid)
        probs = np.empty((9, *grid.shape), np.float32)
        for c in range(9):
            probs[c] = ndimage.gaussian_filter((classes == c).astype(np.float32), 1.0)
            probs[c] += self.rng.uniform(0, 0.15, grid.shape).astype(np.float32)
        probs /= probs.sum(axis=0)
        skipped = predicted[0] == 1  # windows the pipeline did not run: background there too
        probs[:, skipped] = 0
        probs[0, skipped] = 1
        self.seconds["types"] += time.perf_counter() - start
        return probs.astype(predicted.dtype)


def use_oracle(oracle: Oracle) -> None:
    """Let the real networks run, then answer with the oracle's probabilities."""
    from TeethSegmentationLib.inference import pipeline as segment

    real_teeth, real_types = segment.predict_teeth, segment.predict_types

    def predict_teeth(model, image, *args, **kwargs):
        prob = real_teeth(model, image, *args, **kwargs)
        return prob.with_array(oracle.teeth(image))

    def predict_types(model, image, *args, **kwargs):
        return oracle.types(image, real_types(model, image, *args, **kwargs))

    segment.predict_teeth, segment.predict_types = predict_teeth, predict_types


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


def prepare_input(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """(input NRRD, truth .npz or None), generated once into ``args.cache``."""
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if args.synthetic:
        stem = f"synthetic_{'x'.join(map(str, args.shape))}_{args.spacing}_{args.seed}"
    else:
        stem = f"phantom_{args.fov}_{args.spacing}_{args.seed}"
    image, truth = cache / f"{stem}.nrrd", cache / f"{stem}.truth.npz"
    if image.exists():
        return image, (truth if truth.exists() else None)
    start = time.perf_counter()
    if args.synthetic:
        write_volume(synthetic(tuple(args.shape), args.spacing, args.seed), image)
        return image, None
    from TeethSegmentationLib.phantom import make_phantom

    case = make_phantom(args.seed, size="realistic", fov=args.fov, spacing=args.spacing)
    print(f"generated {stem} {case.image.shape} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    np.savez(truth, labels=case.labels.array, ijk_to_ras=case.labels.ijk_to_ras, space=case.labels.space)
    write_volume(case.image, image)
    return image, truth


def load_truth(path: Path) -> Volume:
    data = np.load(path)
    return Volume(data["labels"], data["ijk_to_ras"], str(data["space"]))


def trained_model(args: argparse.Namespace) -> TeethModel | None:
    """The shipped default model, unless ``--start-filters`` asks for fresh networks or it cannot be read."""
    if not DEFAULT_MODEL_PATH.exists() or args.start_filters:
        return None
    try:
        return load_model(DEFAULT_MODEL_PATH).eval()
    except InputError as e:  # being written by a training run, say
        print(f"default model not usable ({e}); fresh networks instead", file=sys.stderr)
        return None


def fresh_model(args: argparse.Namespace, oracle: bool) -> TeethModel:
    model = new_model(teeth_arch={"start_filters": args.start_filters or 9})
    if not oracle:
        model.teeth_net = TimedThreshold(model.teeth_net)
        model.types_net = TimedThreshold(model.types_net)
    return model.eval()


def scored(report: dict, truth: Volume) -> dict:
    """The result against the phantom's truth, scored like ``evaluate`` (without the surface distance: two
    distance maps of a whole head)."""
    from TeethSegmentationLib.io.read_write import read_volume
    from TeethSegmentationLib.metrics import evaluate_pair

    found = read_volume(report["outputs"]["teeth"])
    scores = evaluate_pair(found.array, truth.array, found.spacing, with_hd95=False)
    return {k: round(float(scores[k]), 3) for k in ("dice_binary", "dice_per_tooth", "identification_accuracy")}


def run_pipeline(args: argparse.Namespace) -> dict:
    import tempfile

    from TeethSegmentationLib.inference.outputs import segment_file
    from TeethSegmentationLib.inference.pipeline import SegmentOptions

    source, truth = Path(args.image), Path(args.truth) if args.truth else None
    model = trained_model(args)
    oracle = Oracle(load_truth(truth), args.seed) if truth and model is None else None
    if oracle:
        use_oracle(oracle)
    model = model or fresh_model(args, oracle is not None)
    options = SegmentOptions(device=args.device, precision=args.precision, stl=not args.no_stl)
    with tempfile.TemporaryDirectory() as tmp:
        cold = None
        if args.warmup:
            start = time.perf_counter()
            segment_file(source, Path(tmp) / "warmup", model, options)
            cold = time.perf_counter() - start
        start = time.perf_counter()
        report = segment_file(source, Path(tmp) / "out", model, options)
        total = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before scoring (a head's truth: 1-3 GB)
        known = (oracle.truth if oracle else load_truth(truth)) if truth else None
        scores = scored(report, known) if known is not None and not oracle else {}
    timings = dict(report["timings_s"])
    if oracle:
        for stage, seconds in oracle.seconds.items():
            timings[stage] = round(timings[stage] - seconds, 3)
            total -= seconds
    row = {"timings": timings, "total": total, "teeth": report["tooth_count"], "shape": report["input_shape"],
           "networks": "oracle" if oracle else ("fresh" if isinstance(model.teeth_net, TimedThreshold) else "shipped"),
           "peak_rss_mb": round(peak, 1), "device": report.get("device", args.device), **scores}
    if cold is not None:
        row["cold_total"] = round(cold, 3)
    if truth:
        row["found"] = sorted(t["fdi"] for t in report["teeth"])
        row["truth_teeth"] = int(len(set(np.unique(known.array)) - {0}))
    return row


def run_baseline(args: argparse.Namespace) -> dict:
    """The reference method's two networks (stage 1 with 18 start filters, 430 k parameters; stage 2 with 9,
    108 k), float32 in the channels-last layout, each in one pass over the whole volume at 0.5 mm: the yardstick
    of issue 17. Also their
    FLOPs (torch's counter) and the rate the CPU reached."""
    from torch.utils.flop_counter import FlopCounterMode

    from TeethSegmentationLib.io.orientation import reorient_to_ras
    from TeethSegmentationLib.io.read_write import read_volume
    from TeethSegmentationLib.io.resample import resample_to_spacing
    from TeethSegmentationLib.nets.normalize import normalize
    from TeethSegmentationLib.nets.unet import UNet, pad_to_multiple

    timings, flops, untimed = {}, {}, 0.0  # untimed: GPU warm-up passes and FLOP counting
    device = torch.device(args.device)
    start = time.perf_counter()
    fine = resample_to_spacing(reorient_to_ras(read_volume(args.image)), 0.5, order=1)
    x = torch.from_numpy(normalize(fine.array))[None, None].to(device)
    timings["resample"] = time.perf_counter() - start
    nets = {"teeth": UNet(1, 1, start_filters=18), "types": UNet(1, 9, start_filters=9)}
    with torch.inference_mode():
        for name, net in nets.items():
            padded, crop = pad_to_multiple(x, net.eval().divisor)
            net.to(device)
            if device.type == "cpu":  # their fastest float32 layout on the CPU: a fair yardstick
                net.to(memory_format=torch.channels_last_3d)
                padded = padded.contiguous(memory_format=torch.channels_last_3d)
            else:  # a first pass outside the clock: CUDA's start and cuDNN's choices are not the networks' cost
                t0 = time.perf_counter()
                net(padded)
                torch.cuda.synchronize(device)
                untimed += time.perf_counter() - t0
            t0 = time.perf_counter()
            net(padded)[(slice(None), slice(None), *crop)].cpu()
            timings[name] = time.perf_counter() - t0
            t0 = time.perf_counter()
            with FlopCounterMode(display=False) as counter:
                net(padded[..., :32, :32, :32])
            flops[name] = counter.get_total_flops() / 32**3 * padded[0, 0].numel()
            untimed += time.perf_counter() - t0
    rates = {k: f"{flops[k] / 1e9:.0f} GFLOP at {flops[k] / timings[k] / 1e9:.0f} GFLOP/s" for k in nets}
    return {"timings": {k: round(v, 3) for k, v in timings.items()}, "total": time.perf_counter() - start - untimed,
            "shape": list(fine.shape), "flops": rates}


def child(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run_pipeline(args) if args.variant == "pipeline" else run_baseline(args)
    result.setdefault("peak_rss_mb", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    result["torch_threads"] = torch.get_num_threads()
    print(json.dumps(result))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fov", choices=("crop", "head", "both"), default="crop", help="both: crop, then head")
    parser.add_argument("--synthetic", action="store_true", help="bright ellipsoids instead of a phantom")
    parser.add_argument("--shape", type=int, nargs=3, default=None, help="synthetic volume shape")
    parser.add_argument("--spacing", type=float, default=None, help="mm (phantom's own for crop, 0.25 for head)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--start-filters", type=int, default=0, help="stage-1 start filters (default model: 9)")
    parser.add_argument("--cache", default="/tmp/teethseg-bench", help="folder for generated inputs")
    parser.add_argument("--baseline", action="store_true", help="also time the reference networks' float32 pass")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS)
    parser.add_argument("--no-stl", action="store_true", help="leave the STL surfaces out")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--prepare", action="store_true", help="only generate the inputs into --cache")
    parser.add_argument("--warmup", action="store_true", help="run the pipeline once untimed first (GPU: CUDA start)")
    parser.add_argument("--variant", choices=("pipeline", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--truth", help=argparse.SUPPRESS)
    return parser.parse_args()


def for_fov(args: argparse.Namespace, fov: str) -> argparse.Namespace:
    """The arguments of one field of view, with its default shape and spacing."""
    args = argparse.Namespace(**{**vars(args), "fov": fov})
    args.shape = args.shape or ([160, 130, 100] if fov == "crop" else [600, 600, 450])
    if args.spacing is None and (fov == "head" or args.synthetic):
        args.spacing = 0.4 if fov == "crop" else 0.25
    return args


def main() -> None:
    args = parse()
    if args.variant:
        return child(for_fov(args, args.fov))
    for fov in ("crop", "head") if args.fov == "both" else (args.fov,):
        one = for_fov(args, fov)
        if args.prepare:
            prepare_input(one)
            continue
        one.baseline = args.baseline and (fov == "crop" or args.fov != "both")  # the aim compares crops
        image, truth = prepared_apart(one)
        rows = run_fov(one, image, truth)
        if "baseline" in rows:
            ratio = rows["pipeline"]["total"] / rows["baseline"]["total"]
            print(f"pipeline / reference networks: {ratio:.2f} (issue 17's aim: <= 0.5 for a crop with STL)")
        if fov == "head":
            row = rows["pipeline"]
            print(f"whole head: {row['total']:.2f} s, peak {row['peak_rss_mb']:.0f} MB (issue 17's aim: <= 6 s, "
                  "<= 1500 MB; without the process start)")
            if not args.synthetic:
                cli = command_line_row(image, stl=not args.no_stl, device=args.device)
                command = f"teethseg segment{'' if args.no_stl else ' --stl'} --device {args.device}"
                print(f"whole head, `{command}` with the default model, from start to exit: {cli['seconds']:.2f} s, "
                      f"peak {cli['peak_rss_mb']:.0f} MB")


def command_line_row(image: Path, stl: bool, device: str = "cpu") -> dict:
    """``teethseg segment`` on ``image`` as a user runs it (the default model's real networks, process start
    and exit included): seconds and peak RSS, measured by a small parent process of its own."""
    out = Path(tempfile.mkdtemp(prefix="teethseg-bench-cli-"))
    cli = [sys.executable, "-m", "TeethSegmentationLib", "segment", str(image), "--output", str(out)]
    cli += ["--device", device]
    probe = (
        "import json, resource, subprocess, sys, time; start = time.perf_counter(); "
        "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode; "
        "print(json.dumps({'seconds': time.perf_counter() - start, 'code': code, "
        "'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
    )
    try:
        done = subprocess.run([sys.executable, "-c", probe, *cli, *(["--stl"] if stl else [])],
                              capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    if row["code"]:
        raise SystemExit(f"teethseg segment failed with exit code {row['code']}")
    return row


def prepared_apart(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """``prepare_input`` in a fresh process: Linux passes a parent's peak RSS on to the children it starts (across
    fork and exec), so a parent that drew a head phantom (2.9 GB) would inflate every variant's peak."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(prepare_input, args).result()


def run_fov(args: argparse.Namespace, image: Path, truth: Path | None) -> dict[str, dict]:
    """Each variant in its own process (its own peak RSS); prints the stage table; the rows."""
    rows = {}
    for variant in ("pipeline",) + (("baseline",) if args.baseline else ()):
        cmd = [sys.executable, __file__, "--variant", variant, "--image", str(image), "--seed", str(args.seed),
               "--threads", str(args.threads), "--start-filters", str(args.start_filters), "--fov", args.fov]
        cmd += ["--precision", args.precision, "--device", args.device] + (["--no-stl"] if args.no_stl else [])
        cmd += ["--warmup"] if args.warmup and variant == "pipeline" else []
        cmd += ["--truth", str(truth)] if truth else []
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(done.returncode)
        rows[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"input {image.name}")
    for variant, row in rows.items():
        stages = "  ".join(f"{k} {v:.2f}s" for k, v in row["timings"].items())
        print(f"{variant:>9}: total {row['total']:6.2f} s  peak RSS {row['peak_rss_mb']:7.0f} MB  "
              f"threads {row['torch_threads']}  | {stages}")
        keys = ("networks", "device", "cold_total", "dice_binary", "dice_per_tooth", "identification_accuracy",
                "teeth", "truth_teeth", "shape", "found", "flops")
        extra = {k: row[k] for k in keys if k in row}
        print(f"{'':>11}{extra}")
    return rows


if __name__ == "__main__":
    main()
