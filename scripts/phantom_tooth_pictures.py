"""Slices through single phantom teeth: for each chosen tooth an axial slice through the crown, one below
the furcation, and a vertical section along the arch (mesio-distal, the sagittal view of a posterior
tooth) and across it (bucco-lingual, the sagittal view of an incisor).

    python scripts/phantom_tooth_pictures.py OUT.png [--family A] [--seed 3] [--spacing 0.2]

Planes follow each tooth's own axis (the phantom records it in ``info["teeth"]``); the label's outline is
drawn in colour over the grey values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from TeethSegmentationLib.atomic import save_figure  # noqa: E402
from TeethSegmentationLib.phantom import make_phantom  # noqa: E402

TEETH = (16, 14, 13, 11, 46, 44, 43, 41)
HALF = 8.0  # mm either side of the tooth axis


def _sample(volume, origin: np.ndarray, spacing: np.ndarray, centre, e1, e2, half1, half2, step, order):
    a = np.arange(-half1, half1 + 1e-6, step)
    b = np.arange(-half2, half2 + 1e-6, step)
    pts = centre[None, None, :] + a[:, None, None] * e1[None, None, :] + b[None, :, None] * e2[None, None, :]
    ijk = (pts - origin) / spacing
    return ndimage.map_coordinates(volume, ijk.reshape(-1, 3).T, order=order, mode="nearest").reshape(len(a), len(b))


def panels(case, fdi_number: int, step: float):
    geo = case.info["teeth"][str(fdi_number)]
    image = case.image.array.astype(np.float32)
    labels = case.labels.array
    origin, spacing = case.image.origin, case.image.spacing
    cej, w, u, v = (np.array(geo[k]) for k in ("cej", "axis", "distal", "buccal"))
    depth = geo["trunk_mm"] + 0.35 * (geo["root_mm"] - geo["trunk_mm"])
    mid = (geo["crown_mm"] - geo["root_mm"]) / 2  # the vertical sections' centre; w = 0 at the CEJ
    half_w = (geo["crown_mm"] + geo["root_mm"]) / 2 + 1.5
    out = []
    for name, c, e1, e2, h1, h2, shift in (
        ("axial, crown", cej + w * 0.45 * geo["crown_mm"], u, v, HALF, HALF, 0.0),
        (f"axial, {depth:.0f} mm below CEJ", cej - w * depth, u, v, HALF, HALF, 0.0),
        ("mesio-distal section", cej + w * mid, u, w, HALF, half_w, mid),
        ("bucco-lingual section", cej + w * mid, v, w, HALF, half_w, mid),
    ):
        grey = _sample(image, origin, spacing, c, e1, e2, h1, h2, step, 1)
        lab = _sample(labels, origin, spacing, c, e1, e2, h1, h2, step, 0) == fdi_number
        out.append((name, grey, lab, (-h1, h1, shift - h2, shift + h2)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("--family", default="A")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--spacing", type=float, default=0.2)
    parser.add_argument("--teeth", type=int, nargs="+", default=list(TEETH))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    case = make_phantom(
        args.seed,
        size="realistic",
        fov="crop",
        grey="hu",
        spacing=args.spacing,
        convention="ras_identity",
        family=args.family,
        missing=False,
        metal=False,
    )
    teeth = [n for n in args.teeth if str(n) in case.info["teeth"]]
    fig = Figure(figsize=(10, 2.6 * len(teeth)), dpi=80)
    for row, n in enumerate(teeth):
        for col, (name, grey, lab, extent) in enumerate(panels(case, n, args.spacing)):
            ax = fig.add_subplot(len(teeth), 4, 4 * row + col + 1)
            ax.imshow(grey.T, cmap="gray", vmin=-500, vmax=3000, origin="lower", extent=extent)
            ax.contour(lab.T.astype(float), levels=[0.5], colors="yellow", linewidths=0.8, extent=extent)
            ax.set_title(f"{n}: {name}", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle(
        f"Phantom family {args.family}, seed {args.seed}, {args.spacing} mm: sections along each tooth's own axes\n"
        "axial: right = distal, up = buccal; sections: up = occlusal, 0 = cemento-enamel junction",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.965))
    save_figure(fig, args.output)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
