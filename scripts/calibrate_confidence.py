"""Fit the per-tooth confidence (instances/confidence.py) on phantoms never used for training (not a test).

    python scripts/calibrate_confidence.py                        # 4 fit + 2 check cases per family and fov
    python scripts/calibrate_confidence.py --fit-cases 6 --check-cases 3 --fovs crop lower upper

Each phantom (seeds 50000..., used by neither training 100..., its validation 10000..., nor
validate_families.py 30000...; families A and B) is segmented in-process by the default model, and each
numbered tooth is scored *right* when the true tooth it overlaps most has its number and their Dice is at
least 0.7 (a right number on a split or fused outline is not right). A logistic map of the tooth's
features (confidence.FEATURES), each weight kept to its sign (a monotone map), is fitted on the fit cases;
its bias is then lowered, if needed, until the fit teeth with confidence >= 0.8 are right >= 97 % of the
time. The reliability tables of the old confidence (type x foreground probability), of the parameters in
confidence.py now and of the new fit, on the fit and on the held-out check cases, are printed with the
parameters to put into confidence.py (after a change of the instance rules: whether those in use still hold).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from TeethSegmentationLib.inference.pipeline import SegmentOptions, segment_volume  # noqa: E402
from TeethSegmentationLib.instances import confidence  # noqa: E402
from TeethSegmentationLib.io.read_write import read_volume  # noqa: E402
from TeethSegmentationLib.nets.model_file import DEFAULT_MODEL_PATH, load_model  # noqa: E402
from TeethSegmentationLib.phantom import make_phantom  # noqa: E402
from TeethSegmentationLib.training.lineage import file_digest  # noqa: E402

SEED = 50_000
FOVS = ("crop", "lower", "upper", "jaws")
RIGHT_DICE = 0.7
TARGET = (0.8, 0.97)  # teeth with confidence >= 0.8 are right at least 97 % of the time
BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0001)


def phantom_files(work: Path, family: str, fov: str, seed: int) -> tuple[Path, Path]:
    image, labels = work / f"{family}_{fov}_{seed}.nrrd", work / f"{family}_{fov}_{seed}.labels.nrrd"
    if not labels.exists():
        make_phantom(seed, size="realistic", fov=fov, family=family).write(image, labels)
    return image, labels


def case_rows(model, image: Path, labels: Path) -> list[dict]:
    """One row per numbered tooth: its features, old confidence and whether it is right."""
    found = []
    result = segment_volume(
        read_volume(image), model, SegmentOptions(device="cpu"), on_instances=lambda *seen: found.append(seen[-1])
    )
    pred, truth = result.fdi.array.astype(np.int64), read_volume(labels).array.astype(np.int64)
    table = np.bincount(truth.ravel() * 256 + pred.ravel(), minlength=256 * 256).reshape(256, 256)
    rows = []
    for tooth in found[0].teeth:
        f = int(tooth.fdi)
        covered = table[1:, f]
        if covered.sum() == 0:
            right = False
        else:
            best = int(np.argmax(covered)) + 1
            dice = 2 * table[f, f] / (table[f].sum() + table[:, f].sum())
            right = best == f and dice >= RIGHT_DICE
        p_type, fg = tooth.type_probabilities[tooth.type - 1], float(np.exp(tooth.features[2]))
        fg = fg / (1 + fg)
        rows.append({"fdi": f, "features": list(tooth.features), "old": p_type * fg, "right": bool(right)})
    return rows


def collect(args: argparse.Namespace) -> dict[str, list[dict]]:
    cache = args.work / f"rows_{file_digest(args.model)[:12]}.json"  # per model: the rows are its predictions
    data = json.loads(cache.read_text()) if cache.exists() else {}
    model = load_model(args.model)
    for fov in args.fovs:
        for family in args.families:
            for n in range(args.fit_cases + args.check_cases):
                seed = SEED + 1000 * FOVS.index(fov) + n
                key = f"{family}_{fov}_{seed}_{'fit' if n < args.fit_cases else 'check'}"
                if key in data:
                    continue
                data[key] = case_rows(model, *phantom_files(args.work, family, fov, seed))
                right = sum(r["right"] for r in data[key])
                print(f"{key}: {right}/{len(data[key])} teeth right", file=sys.stderr, flush=True)
                cache.write_text(json.dumps(data))
    return data


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Logistic weights kept to confidence.SIGNS (a monotone map) and a bias; light L2."""

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta[:-1] + theta[-1]
        p = 1 / (1 + np.exp(-z))
        nll = float(np.sum(np.logaddexp(0, z) - y * z)) + 0.01 * float(theta[:-1] @ theta[:-1])
        grad = np.append(x.T @ (p - y) + 0.02 * theta[:-1], np.sum(p - y))
        return nll, grad

    bounds = [(0, None) if s > 0 else (None, 0) for s in confidence.SIGNS] + [(None, None)]
    result = minimize(loss, np.append(np.array(confidence.SIGNS) * 0.1, 0.0), jac=True, bounds=bounds,
                      method="L-BFGS-B")
    return result.x[:-1], float(result.x[-1])


def safe_bias(x: np.ndarray, y: np.ndarray, weights: np.ndarray, bias: float) -> float:
    """The bias, lowered in steps until the teeth at >= 0.8 are right >= 97 % of the time."""
    for step in np.arange(0, 10, 0.05):
        conf = confidence.calibrated(x, weights, bias - step)
        high = conf >= TARGET[0]
        if not high.any() or y[high].mean() >= TARGET[1]:
            return bias - float(step)
    return bias - 10.0


def reliability(conf: np.ndarray, y: np.ndarray, title: str) -> str:
    lines = [f"{title}: {len(y)} teeth, {y.mean():.3f} right", f"{'confidence':<14}{'teeth':>7}{'mean':>8}{'right':>8}"]
    for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
        inside = (conf >= lo) & (conf < hi)
        if inside.any():
            lines.append(f"{lo:.1f}-{min(hi, 1.0):.1f}{'':<7}{inside.sum():>7d}{conf[inside].mean():>8.3f}"
                         f"{y[inside].mean():>8.3f}")
    high = conf >= TARGET[0]
    lines.append(f">= {TARGET[0]}: {high.sum()} teeth, right {y[high].mean() if high.any() else float('nan'):.3f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "calibrate_confidence")
    parser.add_argument("--fit-cases", type=int, default=4)
    parser.add_argument("--check-cases", type=int, default=2)
    parser.add_argument("--fovs", nargs="+", default=["crop", "lower", "upper"], choices=FOVS)
    parser.add_argument("--families", nargs="+", default=["A", "B"], choices=["A", "B"])
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = collect(args)
    parts = {}
    for part in ("fit", "check"):
        rows = [r for key, rs in data.items() if key.endswith(part) for r in rs]
        parts[part] = (np.array([r["features"] for r in rows]).reshape(-1, len(confidence.FEATURES)),
                       np.array([r["right"] for r in rows], dtype=float), np.array([r["old"] for r in rows]))
    x, y, old = parts["fit"]
    weights, bias = fit(x, y)
    bias = safe_bias(x, y, weights, bias)
    for part, (xp, yp, oldp) in parts.items():
        if len(yp):
            print(reliability(oldp, yp, f"old confidence (type x foreground), {part} cases"), "\n")
            print(reliability(confidence.calibrated(xp), yp, f"as in confidence.py now, {part} cases"), "\n")
            print(reliability(confidence.calibrated(xp, weights, bias), yp, f"calibrated, {part} cases"), "\n")
    print(f"WEIGHTS = {tuple(round(float(w), 4) for w in weights)}\nBIAS = {bias:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
