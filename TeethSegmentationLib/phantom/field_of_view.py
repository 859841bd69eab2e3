"""The box a phantom scan covers (crop, jaws, whole head, one arch) and the voxel grid laid over it."""

from __future__ import annotations

import numpy as np

from TeethSegmentationLib.phantom.dentition import Dentition, ToothPlan
from TeethSegmentationLib.phantom.grid import Grid
from TeethSegmentationLib.phantom.tooth import local_box


def field_of_view(rng: np.random.Generator, dent: Dentition, fov: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    boxes = np.array([local_box(p, margin=0.0) for p in dent.teeth])
    lo, hi = boxes[:, 0].min(axis=0), boxes[:, 1].max(axis=0)
    cut = None
    if fov == "crop":
        lo, hi = lo - rng.uniform(1, 5, 3), hi + rng.uniform(1, 5, 3)
        if rng.random() < 0.25:  # the scan misses part of the dentition
            cut = str(rng.choice(["posterior", "right", "left", "top", "bottom"]))
            axis, end = {"posterior": (1, 0), "right": (0, 1), "left": (0, 0), "top": (2, 1), "bottom": (2, 0)}[cut]
            amount = rng.uniform(5, 14)
            if end:
                hi[axis] -= amount
            else:
                lo[axis] += amount
    elif fov == "jaws":
        half = np.abs(np.concatenate([lo[:1], hi[:1]])).max() + rng.uniform(15, 25)
        lo = np.array([-half, lo[1] - rng.uniform(35, 45), lo[2] - rng.uniform(15, 25)])
        hi = np.array([half, hi[1] + rng.uniform(15, 22), hi[2] + rng.uniform(20, 35)])
    elif fov in ("lower", "upper"):
        return (*single_arch_box(rng, dent, fov == "upper"), None)
    else:
        front = hi[1] + rng.uniform(15, 30)
        lo = np.array([-75.0, front - 150.0, -62.0]) + rng.uniform(-3, 3, 3)
        hi = np.array([75.0, front, 50.0]) + rng.uniform(-3, 3, 3)
    return lo, hi, cut


def pick_grid(rng, lo, hi, size: str, fov: str, spacing: np.ndarray | None) -> Grid:
    extent = float(np.max(hi - lo))
    if spacing is None:
        if size == "tiny":
            base = max(extent / int(rng.integers(58, 63)), 1.0 if fov in ("crop", "lower", "upper") else 0.0)
        elif size == "small":
            base = extent / int(rng.integers(86, 94))
        else:
            base = rng.uniform(0.25, 0.35) if fov == "head" else rng.uniform(0.4, 0.5)
        spacing = np.full(3, base)
        if size != "tiny" and rng.random() < 0.25:
            spacing[2] *= rng.uniform(1.05, 1.5)  # anisotropic: thicker slices
    return Grid.around(lo, hi, spacing)


def _crown_z(plan: ToothPlan) -> np.ndarray:
    """World z of the corners of the box around a crown (a bound of the crown's z extent)."""
    corners = np.array(
        [[su * plan.md / 2, sv * plan.bl / 2, w] for su in (-1, 1) for sv in (-1, 1) for w in (0, plan.crown)]
    )
    return (plan.centre + corners @ plan.frame.T)[:, 2]


def single_arch_box(rng: np.random.Generator, dent: Dentition, upper: bool) -> tuple[np.ndarray, np.ndarray]:
    """One arch with its bone (maxilla up to the sinus floor, or the mandible down to its lower border); the
    box stops short of the other arch's crowns, so that no voxel of an opposing tooth is in the scan."""
    own = [p for p in dent.teeth if p.upper == upper]
    other = [p for p in dent.teeth if p.upper != upper]
    boxes = np.array([local_box(p, margin=0.0) for p in own])
    lo, hi = boxes[:, 0].min(axis=0), boxes[:, 1].max(axis=0)
    half = np.abs(np.concatenate([lo[:1], hi[:1]])).max() + rng.uniform(4, 14)
    lo = np.array([-half, lo[1] - rng.uniform(4, 14), lo[2]])
    hi = np.array([half, hi[1] + rng.uniform(4, 12), hi[2]])
    if upper:
        hi[2] += rng.uniform(8, 20)  # above the apices: the sinus floor and nasal floor
        limit = max([float(_crown_z(p).max()) for p in other], default=lo[2] - 5) + 0.6
        lo[2] = max(lo[2] - rng.uniform(1, 4), limit)
    else:
        lo[2] -= rng.uniform(12, 20)  # down to the lower border of the mandible
        limit = min([float(_crown_z(p).min()) for p in other], default=hi[2] + 5) - 0.6
        hi[2] = min(hi[2] + rng.uniform(1, 4), limit)
    return lo, hi
