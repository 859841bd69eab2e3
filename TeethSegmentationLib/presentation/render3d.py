"""A 3D picture of the tooth surfaces, rendered offscreen with matplotlib (no OpenGL, works headless)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from TeethSegmentationLib.atomic import save_figure
from TeethSegmentationLib.fdi import label_color

MAX_TRIANGLES_PER_TOOTH = 1500


def polydata_triangles(polydata: Any) -> np.ndarray:
    """(n, 3, 3) triangle corners of a vtkPolyData, decimated so the picture stays quick to draw."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkFiltersCore import vtkQuadricDecimation, vtkTriangleFilter

    tri = vtkTriangleFilter()
    tri.SetInputData(polydata)
    tri.Update()
    poly = tri.GetOutput()
    if poly.GetNumberOfPolys() > MAX_TRIANGLES_PER_TOOTH:
        dec = vtkQuadricDecimation()
        dec.SetInputData(poly)
        dec.SetTargetReduction(1.0 - MAX_TRIANGLES_PER_TOOTH / poly.GetNumberOfPolys())
        dec.Update()
        poly = dec.GetOutput()
    if poly.GetNumberOfPolys() == 0:
        return np.zeros((0, 3, 3))
    points = vtk_to_numpy(poly.GetPoints().GetData())
    cells = vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    return points[cells]


def _shade(triangles: np.ndarray, rgb: tuple[float, float, float], light: np.ndarray) -> np.ndarray:
    """Lambert shading with a little ambient light, one colour per triangle."""
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    intensity = 0.35 + 0.65 * np.abs(normals @ light)
    return np.clip(np.asarray(rgb)[None, :] * intensity[:, None], 0, 1)


def draw_surfaces(ax: Any, surfaces_ras: dict[int, Any], elevation: float = 12.0, azimuth: float = -90.0) -> None:
    """Draw each tooth (vtkPolyData in RAS mm) into a matplotlib 3D axis, coloured by type (unnumbered teeth
    grey), seen from the front."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    light = np.array([0.3, -1.0, 0.6])  # RAS: from the front, a little above and to the right
    light /= np.linalg.norm(light)
    lows, highs = [], []
    for fdi, poly in sorted(surfaces_ras.items()):
        triangles = polydata_triangles(poly)
        if len(triangles) == 0:
            continue
        collection = Poly3DCollection(triangles, facecolors=_shade(triangles, label_color(fdi), light), linewidths=0)
        ax.add_collection3d(collection)
        lows.append(triangles.reshape(-1, 3).min(axis=0))
        highs.append(triangles.reshape(-1, 3).max(axis=0))
    if lows:
        lo, hi = np.min(lows, axis=0), np.max(highs, axis=0)
        centre, half = (lo + hi) / 2, (hi - lo).max() / 2
        for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre, strict=True):
            setter(c - half, c + half)
    ax.view_init(elev=elevation, azim=azimuth)
    ax.set_axis_off()


def render_surfaces(surfaces_ras: dict[int, Any], path: str | os.PathLike, title: str | None = None) -> Path:
    """PNG of the tooth surfaces from the front and from below (occlusal view of the upper arch)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5.5), dpi=90)
    for n, (elev, azim, name) in enumerate(((10.0, -90.0, "Front"), (70.0, -90.0, "From above"))):
        ax = fig.add_subplot(1, 2, n + 1, projection="3d")
        draw_surfaces(ax, surfaces_ras, elev, azim)
        ax.set_title(name, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)
