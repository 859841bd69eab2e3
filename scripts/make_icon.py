"""Draw TeethSegmentation/Resources/Icons/TeethSegmentation.png (128x128): a stylised molar.

    python scripts/make_icon.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import PathPatch  # noqa: E402
from matplotlib.path import Path as MplPath  # noqa: E402

OUTPUT = Path(__file__).resolve().parent.parent / "TeethSegmentation" / "Resources" / "Icons" / "TeethSegmentation.png"

# A molar outline: crown with two cusps on top, two roots below (x, y in 0..1).
TOOTH = [
    (0.18, 0.62), (0.14, 0.86), (0.32, 0.94), (0.42, 0.90), (0.50, 0.86), (0.58, 0.90), (0.68, 0.94), (0.86, 0.86),
    (0.82, 0.62), (0.78, 0.40), (0.74, 0.10), (0.64, 0.08), (0.58, 0.30), (0.50, 0.40), (0.42, 0.30), (0.36, 0.08),
    (0.26, 0.10), (0.22, 0.40), (0.18, 0.62),
]


def tooth_path() -> MplPath:
    codes = [MplPath.MOVETO] + [MplPath.CURVE3] * (len(TOOTH) - 2) + [MplPath.CURVE3]
    return MplPath(TOOTH, codes[: len(TOOTH)])


def main() -> None:
    fig = plt.figure(figsize=(1.28, 1.28), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.add_patch(PathPatch(tooth_path(), facecolor="#f7f3e3", edgecolor="#2a6fb0", linewidth=3.5))
    ax.text(0.5, 0.62, "11", ha="center", va="center", fontsize=22, fontweight="bold", color="#2a6fb0")
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUTPUT, dpi=100, transparent=True)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
