"""Merging the watershed's regions that are one tooth, and dropping lone fragments."""

from __future__ import annotations

import numpy as np

from TeethSegmentationLib.fdi import PRIMARY_CLASS_OFFSET
from TeethSegmentationLib.instances.foreground import SparseForeground, neighbour_offsets
from TeethSegmentationLib.instances.occlusal import OcclusalPlane
from TeethSegmentationLib.instances.options import InstanceOptions
from TeethSegmentationLib.instances.regions import label_sums, root_direction
from TeethSegmentationLib.instances.roots import parted_roots

# Same-type neighbours are one tooth when the shallower centre rises less than this share of a neck above
# their common boundary.
NO_NECK_SHARE = 0.75
# Neighbours whose sizes differ more than this ratio count as unequal (a crown and its parted root).
UNEQUAL_SIZE_RATIO = 0.35
# Two regions lie on top of each other when their offset along the occlusal normal, times this, exceeds
# their offset across it.
STACKED_SLOPE = 0.6


def adjacency(labels: np.ndarray, sparse: SparseForeground) -> dict[tuple[int, int], tuple[int, float]]:
    """{(a, b): (contact faces, saddle depth)} of touching regions 0 < a < b, from the 6-neighbourhood (the depth
    is 0 at the contacts network's contacts). Voxels labelled 0 (fragments the merges dropped) belong to no tooth
    and touch none."""
    count = int(labels.max()) + 1
    keys, depths = [], []
    parting = sparse.parting  # a contact between two teeth is a neck, however deep it lies
    for offset, _length in neighbour_offsets(sparse.shape, np.ones(3), full=False):
        if offset < 0:
            continue
        neighbour = sparse.lookup[sparse.flat + offset]
        valid = neighbour >= 0
        a, b = labels[valid], labels[neighbour[valid]]
        touch = (a != b) & (a > 0) & (b > 0)
        a, b = a[touch], b[touch]
        depth = np.minimum(parting[valid][touch], parting[neighbour[valid]][touch])
        keys.append(np.minimum(a, b).astype(np.int64) * count + np.maximum(a, b))
        depths.append(depth)
    if not keys or not sum(len(k) for k in keys):
        return {}
    key, depth = np.concatenate(keys), np.concatenate(depths)
    order = np.argsort(key, kind="stable")
    key, depth = key[order], depth[order]
    unique, start, contact = np.unique(key, return_index=True, return_counts=True)
    saddle = np.maximum.reduceat(depth, start)
    return {
        (int(k // count), int(k % count)): (int(c), float(s)) for k, c, s in zip(unique, contact, saddle, strict=True)
    }


class _Unions:
    """Union-find over regions, keeping each root's size, deepest point, type sums and position sums."""

    def __init__(self, labels: np.ndarray, peak: np.ndarray, types: np.ndarray, ras: np.ndarray) -> None:
        count = int(labels.max()) + 1
        self.size = np.bincount(labels, minlength=count).astype(np.float64)
        self.peak = peak.astype(np.float64)
        self.type_sum = label_sums(labels, types, count)
        self.position = label_sums(labels, ras, count)
        self.root = list(range(count))

    def find(self, x: int) -> int:
        root = self.root
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.root[b] = a
        self.size[a] += self.size[b]
        self.peak[a] = max(self.peak[a], self.peak[b])
        self.type_sum[a] += self.type_sum[b]
        self.position[a] += self.position[b]

    def centroid(self, a: int) -> np.ndarray:
        return self.position[a] / self.size[a]

    def main_type(self, a: int) -> int:
        return int(np.argmax(self.type_sum[a]))


def merge_regions(
    labels: np.ndarray,
    sparse: SparseForeground,
    types: np.ndarray,
    ras: np.ndarray,
    plane: OcclusalPlane,
    opts: InstanceOptions,
    voxel_mm3: float,
    spacing: np.ndarray,
    peak: np.ndarray,
) -> np.ndarray:
    """Union regions that are one tooth; drop lone fragments. Touching regions are one tooth when there is
    no neck between them, when one is a fragment, or when they lie on top of each other along the occlusal
    normal (crown and root parted at the cervical neck) with the same type or very unequal sizes. With two
    arches only fragments merge across the occlusal plane; fused bites left over are cut by the plane later.
    A root parted from its crown by a thin gap joins that crown (:mod:`roots`) before the fragments merge
    (a fragment would otherwise join the neighbour it touches)."""
    regions = _Unions(labels, peak, types, ras)
    edges = adjacency(labels, sparse)
    for (a, b), (_contact, saddle) in sorted(edges.items(), key=lambda e: -e[1][1]):
        ra, rb = regions.find(a), regions.find(b)
        if ra != rb and _one_tooth(regions, ra, rb, saddle, plane, opts):
            regions.union(ra, rb)
    _rejoin_roots(regions, labels, sparse, ras, spacing, plane)
    _merge_fragments(regions, edges, opts, voxel_mm3)
    final = np.array([regions.find(r) for r in range(len(regions.root))])
    final[0] = 0
    lone = regions.size[final] < opts.min_tooth_mm3 / voxel_mm3
    final[lone] = 0
    _, compact = np.unique(final, return_inverse=True)
    if final.min() > 0:  # no background label among them
        compact = compact + 1
    return compact.astype(np.int32)[labels]


def _rejoin_roots(
    regions: _Unions, labels: np.ndarray, sparse: SparseForeground, ras: np.ndarray, spacing: np.ndarray,
    plane: OcclusalPlane,
) -> None:
    grouped = np.array([regions.find(r) for r in range(len(regions.root))], dtype=labels.dtype)[labels]
    apical = 0.0 if plane.two_arches else root_direction(grouped, ras, plane.normal)
    for root, crown in parted_roots(grouped, regions.peak, sparse, ras, spacing, plane, apical):
        regions.union(crown, root)


def _one_tooth(
    regions: _Unions, a: int, b: int, saddle: float, plane: OcclusalPlane, opts: InstanceOptions
) -> bool:
    """Whether two touching regions (roots) are parts of one tooth."""
    size, peak = regions.size, regions.peak
    types = regions.main_type(a), regions.main_type(b)
    same = types[0] == types[1]
    shallower = min(peak[a], peak[b])
    if same:
        no_neck = shallower - saddle < NO_NECK_SHARE * opts.neck_depth(shallower)
    else:
        no_neck = saddle >= opts.merge_other_type * shallower
    # A primary tooth over its permanent successor is stacked and unequal, as a crown and its parted root are; but
    # a crown and its root are of one dentition, so such a pair joins only where no neck parts them.
    unequal = min(size[a], size[b]) < UNEQUAL_SIZE_RATIO * max(size[a], size[b])
    unequal = unequal and not _dentitions_differ(types, regions.type_sum.shape[1])
    return _same_jaw(regions, a, b, plane) and (no_neck or ((same or unequal) and _stacked(regions, a, b, plane)))


def _dentitions_differ(types: tuple[int, int], classes: int) -> bool:
    """Of two regions' main types (of ``classes`` types), one primary and the other permanent (a 14-class model's
    13 types; never with 8)."""
    return classes > PRIMARY_CLASS_OFFSET and (types[0] >= PRIMARY_CLASS_OFFSET) != (types[1] >= PRIMARY_CLASS_OFFSET)


def _same_jaw(regions: _Unions, a: int, b: int, plane: OcclusalPlane) -> bool:
    if not plane.two_arches:
        return True
    above = [bool(regions.centroid(r) @ plane.normal > plane.height) for r in (a, b)]
    return above[0] == above[1]


def _stacked(regions: _Unions, a: int, b: int, plane: OcclusalPlane) -> bool:
    offset = regions.centroid(a) - regions.centroid(b)
    along = abs(float(offset @ plane.normal))
    across = float(np.linalg.norm(offset - along * plane.normal * np.sign(offset @ plane.normal)))
    return STACKED_SLOPE * along > across


def _merge_fragments(
    regions: _Unions, edges: dict[tuple[int, int], tuple[int, float]], opts: InstanceOptions, voxel_mm3: float
) -> None:
    """Regions too small to be a tooth join the neighbour they touch most."""
    find, size = regions.find, regions.size
    roots = sorted({find(r) for r in range(1, len(regions.root))})
    median = float(np.median(size[roots])) if roots else 0.0
    small = max(opts.min_tooth_mm3 / voxel_mm3, opts.fragment_fraction * median)
    for r in sorted(roots, key=lambda r: size[r]):
        r = find(r)
        if size[r] >= small:
            continue
        contact: dict[int, int] = {}
        for (a, b), (faces, _saddle) in edges.items():
            if r in (find(a), find(b)):
                other = find(b if find(a) == r else a)
                if other != r:
                    contact[other] = contact.get(other, 0) + faces
        if contact:
            regions.union(max(contact, key=contact.get), r)
