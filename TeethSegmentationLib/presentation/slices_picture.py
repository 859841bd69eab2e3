"""A PNG picture of a scan with its FDI labels: two axial slices (upper and lower crowns), a coronal and a
sagittal slice, in anatomical orientation whatever the file's axis convention (matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from TeethSegmentationLib.atomic import save_figure
from TeethSegmentationLib.fdi import (
    ALL_FDI_NUMBERS,
    PRIMARY_TYPE_NAMES,
    TYPE_NAMES,
    UNNUMBERED_LABEL_BASE,
    UNNUMBERED_LABEL_MAX,
    color,
    is_primary,
    label_color,
)
from TeethSegmentationLib.io.orientation import reorient_to_ras
from TeethSegmentationLib.io.read_write import read_volume
from TeethSegmentationLib.io.volume import Volume, bounding_box
from TeethSegmentationLib.nets.normalize import Normalization, intensity_window

ALPHA = 0.45
DISPLAY_WINDOW = Normalization(low_percentile=1.0, high_percentile=99.5)  # grey levels of the pictures


def _slice_indices(labels: np.ndarray | None, shape: tuple[int, ...]) -> dict[str, int]:
    """Axial slices through the widest part of the upper and lower crowns, coronal through the molars,
    sagittal through a central incisor; the middle of the volume where there are no labels."""
    mid = {"upper": shape[2] // 2, "lower": shape[2] // 2, "coronal": shape[1] // 2, "sagittal": shape[0] // 2}
    if labels is None or not labels.any():
        return mid

    def centroid(mask: np.ndarray) -> np.ndarray | None:
        idx = np.argwhere(mask[::2, ::2, ::2]) * 2
        return idx.mean(axis=0) if len(idx) else None

    upper_mask = (labels >= 11) & (labels <= 28)
    lower_mask = (labels >= 31) & (labels <= 48)
    for key, mask, sign in (("upper", upper_mask, 1), ("lower", lower_mask, -1)):
        box = bounding_box(mask)
        if box is not None:  # the crowns are at the occlusal end: a quarter of the tooth height from the tips
            bottom, top = int(box[0][2]), int(box[1][2]) - 1
            tips = bottom if sign > 0 else top
            mid[key] = int(np.clip(tips + sign * 0.22 * (top - bottom), 0, shape[2] - 1))
    molars = np.isin(labels, [16, 26, 36, 46, 17, 27, 37, 47])
    primary_molars = np.isin(labels, [54, 64, 74, 84])  # a child's: the coronal cut shows the premolars beneath
    if primary_molars.any():
        molars = primary_molars
    incisors = np.isin(labels, [11, 21, 31, 41])
    c = centroid(molars)
    if c is not None:
        mid["coronal"] = int(c[1])
    c = centroid(labels == 11) if (labels == 11).any() else centroid(incisors)
    if c is not None:
        mid["sagittal"] = int(c[0])
    return mid


def _overlay(label_slice: np.ndarray) -> np.ndarray:
    lut = np.zeros((256, 4), dtype=np.float32)
    for n in (*ALL_FDI_NUMBERS, *range(UNNUMBERED_LABEL_BASE, UNNUMBERED_LABEL_MAX + 1)):
        lut[n, :3] = label_color(n)  # a primary tooth in its place's colour, paler; unnumbered teeth grey
        lut[n, 3] = ALPHA
    return lut[label_slice]


def render_slices(image: Volume, labels: Volume | None, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write a PNG of four slices with the labels overlaid (colour = tooth type) and a legend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    img = reorient_to_ras(image)
    lab = reorient_to_ras(labels).array if labels is not None else None
    arr = img.array
    low, high = intensity_window(arr, DISPLAY_WINDOW)
    idx = _slice_indices(lab, arr.shape)
    lo = img.origin
    hi = img.origin + (np.array(arr.shape) - 1) * img.spacing
    views = [
        ("Axial (upper crowns)", arr[:, :, idx["upper"]], None if lab is None else lab[:, :, idx["upper"]], 0, 1),
        ("Axial (lower crowns)", arr[:, :, idx["lower"]], None if lab is None else lab[:, :, idx["lower"]], 0, 1),
        ("Coronal", arr[:, idx["coronal"], :], None if lab is None else lab[:, idx["coronal"], :], 0, 2),
        ("Sagittal", arr[idx["sagittal"], :, :], None if lab is None else lab[idx["sagittal"], :, :], 1, 2),
    ]
    fig = Figure(figsize=(12, 10.5), dpi=90)
    for n, (name, grey, lab2d, h_axis, v_axis) in enumerate(views):
        ax = fig.add_subplot(2, 2, n + 1)
        extent = (lo[h_axis], hi[h_axis], lo[v_axis], hi[v_axis])
        ax.imshow(grey.T, cmap="gray", vmin=low, vmax=high, origin="lower", extent=extent, interpolation="nearest")
        if lab2d is not None:
            ax.imshow(_overlay(lab2d.T), origin="lower", extent=extent, interpolation="nearest")
        # Radiological convention: the patient's right on the viewer's left; sagittal faces left.
        ax.invert_xaxis()
        letters = {0: ("R", "L"), 1: ("A", "P"), 2: ("S", "I")}
        ax.set_xlabel(f"{letters[h_axis][0]}  <-  mm  ->  {letters[h_axis][1]}", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.tick_params(labelsize=7)
    if lab is not None:
        values = [int(v) for v in np.unique(lab[::2, ::2, ::2]) if v in ALL_FDI_NUMBERS]
        present = sorted({(is_primary(v), v % 10) for v in values})
        handles = [
            Patch(
                color=color(50 + t if primary else t), label=f"{t} {(PRIMARY_TYPE_NAMES if primary else TYPE_NAMES)[t]}"
            )
            for primary, t in present
        ]
        if handles:
            fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return save_figure(fig, path)


def preview_files(
    image_path: str | os.PathLike, labels_path: str | os.PathLike | None, png_path: str | os.PathLike
) -> Path:
    """The same picture from files (any format ``read_volume`` reads)."""
    image = read_volume(image_path)
    labels = read_volume(labels_path) if labels_path else None
    return render_slices(image, labels, png_path, title=Path(image_path).name)
