"""The demo: a realistic synthetic CBCT segmented by the shipped model, with STL, metrics and a picture."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from TeethSegmentationLib.atomic import save_figure
from TeethSegmentationLib.events import NullReporter, Reporter, StageReporter
from TeethSegmentationLib.io.read_write import read_volume
from TeethSegmentationLib.metrics import evaluate_pair
from TeethSegmentationLib.nets.model_file import load_model


def write_demo_case(folder: Path, seed: int) -> tuple[Path, Path]:
    from TeethSegmentationLib.phantom import make_phantom

    return make_phantom(seed, size="realistic", fov="crop").write(folder / "demo.nrrd", folder / "demo.labels.nrrd")


def render_picture(image_path: Path, labels_path: Path, output: Path, title: str) -> dict[str, str]:
    """demo_slices.png (slices with FDI colours), demo_3d.png (surfaces) and demo.png (both)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    from TeethSegmentationLib.io.stl import label_surfaces
    from TeethSegmentationLib.presentation.render3d import render_surfaces
    from TeethSegmentationLib.presentation.slices_picture import render_slices

    labels = read_volume(labels_path)
    slices = render_slices(read_volume(image_path), labels, output / "demo_slices.png", title=title)
    surfaces = render_surfaces(label_surfaces(labels, space="RAS"), output / "demo_3d.png", title="Tooth surfaces")
    top, bottom = imread(slices), imread(surfaces)
    fig = Figure(figsize=(12, 10.5 + 5.5 * bottom.shape[0] / bottom.shape[1] * 12 / 12), dpi=90)
    heights = [top.shape[0] / top.shape[1], bottom.shape[0] / bottom.shape[1]]
    for n, picture in enumerate((top, bottom)):
        ax = fig.add_axes((0, sum(heights[n + 1 :]) / sum(heights), 1, heights[n] / sum(heights)))
        ax.imshow(picture)
        ax.set_axis_off()
    combined = save_figure(fig, output / "demo.png")
    return {"picture": str(combined), "slices": str(slices), "surfaces": str(surfaces)}


def run_demo(
    output: str | os.PathLike,
    seed: int = 2026,
    model_path: str | None = None,
    device: str = "auto",
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    from TeethSegmentationLib.inference.outputs import segment_file
    from TeethSegmentationLib.inference.pipeline import SegmentOptions
    from TeethSegmentationLib.nets.devices import resolve_device

    reporter = reporter or NullReporter()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    reporter.progress("phantom", 0.0, "generating a realistic synthetic CBCT")
    image_path, truth_path = write_demo_case(output / "input", seed)
    reporter.progress("phantom", 1.0, f"{image_path}")
    model = load_model(model_path, resolve_device(device))
    report = segment_file(
        image_path, output, model, SegmentOptions(device=device, stl=True), StageReporter(reporter, "segment")
    )
    prediction, truth = read_volume(report["outputs"]["teeth"]), read_volume(truth_path)
    metrics = evaluate_pair(prediction.array, truth.array, truth.spacing)
    (output / "demo.metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    reporter.progress("picture", 0.0, "rendering demo.png")
    seconds = sum(v for k, v in report.get("timings_s", {}).items() if k != "write")
    title = (
        f"{len(report['teeth'])} teeth in {seconds:.1f} s - Dice {metrics['dice_binary'] or 0:.3f}, "
        f"identification {metrics['identification_accuracy'] or 0:.2f}"
    )
    pictures = render_picture(image_path, Path(report["outputs"]["teeth"]), output, title)
    reporter.progress("picture", 1.0, pictures["picture"])
    summary = {
        k: metrics[k]
        for k in ("dice_binary", "dice_per_tooth", "dice_types", "identification_accuracy", "hd95_mm")
        if k in metrics
    }
    return {
        "output": str(output),
        "teeth": len(report["teeth"]),
        "metrics": summary,
        "timings_s": report.get("timings_s"),
        **pictures,
        "outputs": report["outputs"],
        "mean_confidence": float(np.mean([t["confidence"] for t in report["teeth"]])) if report["teeth"] else 0.0,
    }
