"""Roots parted from their crowns: a crownless, root-shaped region joins the crown it continues.

A thin dark gap (a fracture line, the cemento-enamel junction, a furcation the network left dark) parts a
root from its crown into a separate connected component, which no merge of touching regions can mend, and
which would otherwise become a tooth of its own (and take a neighbour's number) or be dropped. A region R
joins a region C when all of these hold:

- R lies within ``ROOT_GAP_MM`` of C (not touching, or barely: the merges had their chance);
- R is smaller than C (``ROOT_SIZE_SHARE``) and thinner (``ROOT_THINNER``: a root, not a crown or a germ);
- R lies beyond C along the occlusal normal, on the apical side (upper teeth's roots point up), and more
  along the normal than across it (it continues the tooth's axis, not the arch);
- both lie on the same side of the occlusal plane when two arches are known.

Among several crowns R may continue, the nearest wins. Chains (a root in two pieces) join in turn.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from TeethSegmentationLib.instances.foreground import SparseForeground
from TeethSegmentationLib.instances.occlusal import OcclusalPlane
from TeethSegmentationLib.instances.regions import label_sums

ROOT_GAP_MM = 1.5  # the widest gap between a root and its crown that is still one tooth
ROOT_SIZE_SHARE = 0.8  # a root piece holds at most this share of its crown piece's voxels
ROOT_THINNER = 0.75  # ... and thinner: its deepest point at most this x the crown piece's deepest
ROOT_STACKED_SLOPE = 0.8  # its centroid offset along the normal, x this, exceeds the offset across it


def parted_roots(
    labels: np.ndarray,
    peak: np.ndarray,
    sparse: SparseForeground,
    ras: np.ndarray,
    spacing: np.ndarray,
    plane: OcclusalPlane,
    apical: float,
) -> list[tuple[int, int]]:
    """(root piece, crown piece) label pairs, in the order to join them. ``peak``: each label's deepest
    point (mm inside the foreground; roots are thin, crowns thick). ``apical`` is +1 when the roots
    point along the normal (upper teeth), -1 against it, 0 when unknown (a single arch of unclear
    direction); with two arches each region's side of the plane decides."""
    count = int(labels.max()) + 1
    size = np.bincount(labels, minlength=count).astype(np.float64)
    centroid = label_sums(labels, ras, count) / np.maximum(size, 1)[:, None]
    height = centroid @ plane.normal
    depth = np.asarray(peak, dtype=np.float64)[:count]
    if plane.two_arches:
        side = np.where(height > plane.height, 1.0, -1.0)
    else:
        side = np.full(count, float(apical))
    steps = gap_steps(spacing)
    pairs = []
    for r in np.argsort(size, kind="stable"):  # smallest first: root tips before whole roots
        if r == 0 or size[r] == 0:
            continue
        crowns = [
            c for c in range(1, count) if c != r and size[c] and root_of(r, c, size, centroid, depth, side, plane)
        ]
        if not crowns:
            continue
        best = nearest_crown(r, crowns, neighbours_within(labels, sparse, r, steps), centroid, plane.normal)
        if best is not None:
            labels = np.where(labels == r, best, labels)
            _join(best, r, size, centroid)
            pairs.append((int(r), int(best)))
    return pairs


def gap_steps(spacing: np.ndarray) -> int:
    """Dilation steps that reach across a gap of ``ROOT_GAP_MM`` (a gap of steps - 1 empty voxels)."""
    return int(np.ceil(ROOT_GAP_MM / float(np.min(spacing)))) + 1


def nearest_crown(
    r: int, crowns: list[int], near: dict[int, int], centroid: np.ndarray, normal: np.ndarray
) -> int | None:
    """Of the ``crowns`` root piece r continues, the nearest one ``near`` reaches (:func:`neighbours_within`); of
    crowns as near, the one whose axis it continues best. None when none is reached."""
    reached = [(near[c], off_axis_mm(r, c, centroid, normal), c) for c in crowns if c in near]
    return min(reached)[2] if reached else None


def root_of(
    r: int, c: int, size: np.ndarray, centroid: np.ndarray, depth: np.ndarray, side: np.ndarray,
    plane: OcclusalPlane, thinner: float = ROOT_THINNER,
) -> bool:
    """Whether region r is a root piece that continues region c's tooth apically: smaller, at most ``thinner``
    x as deep, further along the axis than across it, on c's apical side (``side``: +1 where the roots point
    along the normal, -1 against it, 0 unknown) and, with two arches, on c's side of the plane."""
    if size[r] > ROOT_SIZE_SHARE * size[c] or depth[r] > thinner * depth[c]:
        return False
    offset = centroid[r] - centroid[c]
    along = float(offset @ plane.normal)
    if ROOT_STACKED_SLOPE * abs(along) <= off_axis_mm(r, c, centroid, plane.normal):
        return False
    if plane.two_arches and side[r] != side[c]:
        return False
    return side[c] == 0 or along * side[c] > 0


def off_axis_mm(r: int, c: int, centroid: np.ndarray, normal: np.ndarray) -> float:
    """How far region r's centroid lies from region c's across ``normal`` (mm)."""
    offset = centroid[r] - centroid[c]
    return float(np.linalg.norm(offset - (offset @ normal) * normal))


def _join(keep: int, gone: int, size: np.ndarray, centroid: np.ndarray) -> None:
    """Update the kept region's summaries after ``gone`` joined it (its depth stays the crown's)."""
    total = size[keep] + size[gone]
    centroid[keep] = (centroid[keep] * size[keep] + centroid[gone] * size[gone]) / total
    size[keep], size[gone] = total, 0


def neighbours_within(labels: np.ndarray, sparse: SparseForeground, r: int, steps: int) -> dict[int, int]:
    """{other label: smallest dilation step (voxels) that reaches it} of region r, within ``steps`` voxels."""
    members = np.flatnonzero(labels == r)
    ijk = np.stack(np.unravel_index(sparse.flat[members], sparse.shape), axis=1)
    lo = np.maximum(ijk.min(axis=0) - steps, 0)
    hi = np.minimum(ijk.max(axis=0) + steps + 1, sparse.shape)
    box = np.zeros(tuple(hi - lo), dtype=bool)
    box[tuple((ijk - lo).T)] = True
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij"), axis=-1)
    compact = sparse.lookup[np.ravel_multi_index(tuple(grid.reshape(-1, 3).T), sparse.shape)].reshape(box.shape)
    found: dict[int, int] = {}
    reached = box
    for step in range(1, steps + 1):
        reached = ndi.binary_dilation(reached)
        shell = compact[reached & (compact >= 0)]
        for other in np.unique(labels[shell]):
            found.setdefault(int(other), step)
    return found
