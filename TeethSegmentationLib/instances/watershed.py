"""Splitting touching teeth: markers (deep same-type cores, parted at necks) and a drainage watershed."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from TeethSegmentationLib.fdi import TYPE_CLASSES
from TeethSegmentationLib.instances.foreground import SparseForeground, neighbour_offsets
from TeethSegmentationLib.instances.options import InstanceOptions
from TeethSegmentationLib.instances.regions import index_groups

UNMARKED_PEAK_MM = 0.5  # an unmarked type region's marker: its voxels this near its deepest one


def markers(sparse: SparseForeground, smooth_type: np.ndarray, opts: InstanceOptions, min_voxels: int) -> np.ndarray:
    """Compact int32 marker labels (0 = none): connected same-type cores deeper than ``core_mm`` (outside the
    contacts, with a contacts network), each split further where it still has two deep parts joined by a neck
    (two touching central incisors)."""
    result = np.zeros(len(sparse.flat), dtype=np.int32)
    core = sparse.parting > opts.core_mm  # deep, and not where the contacts network puts two teeth touching
    count = 0
    for t in range(1, int(smooth_type.max(initial=0)) + 1):  # types 1..8, with a 14-class model 1..13
        for part in connected_parts(np.flatnonzero(core & (smooth_type == t)), sparse):
            if len(part) < min_voxels:
                continue
            for piece in _split_by_necks(part, sparse, opts.core_mm, opts, min_voxels):
                count += 1
                result[piece] = count
    return result


def unmarked_markers(
    sparse: SparseForeground, smooth_type: np.ndarray, marker_labels: np.ndarray, types: tuple[int, ...],
    min_voxels: int, jaw: np.ndarray | None = None,
) -> np.ndarray:
    """``marker_labels`` plus a marker for each connected set of one of ``types`` (smoothed argmax) of at least
    ``min_voxels`` that holds no marker: its deepest voxels (within 0.5 mm of its peak depth). With ``jaw``
    (a boolean per compact voxel: above the occlusal plane) a set is taken in each jaw apart.

    A child's resorbing primary lateral incisor is typed apart from its neighbours, but its core deeper than
    ``core_mm`` holds 30 voxels, under a marker's 32 (the dev children, seeds 46000+): without a marker it
    drains into the central incisor and the canine beside it. At 6-7 years the upper and lower primary lateral
    incisors touch across the bite, are typed alike, and one marker drained both (dev seeds 46002-46006)."""
    result = marker_labels.copy()
    count = int(result.max(initial=0))
    sides = [None] if jaw is None else [jaw, ~jaw]
    for t, side in ((t, side) for t in types for side in sides):
        members = np.flatnonzero((smooth_type == t) if side is None else (smooth_type == t) & side)
        if len(members) < min_voxels:
            continue
        for part in connected_parts(members, sparse):
            if len(part) < min_voxels or result[part].any():
                continue
            count += 1
            result[_deepest(part, sparse)] = count
    return result


def other_class_markers(
    sparse: SparseForeground, smooth_type: np.ndarray, marker_labels: np.ndarray, regions: np.ndarray,
    min_voxels: int,
) -> np.ndarray:
    """``marker_labels`` plus a marker for each connected set of one permanent type (smoothed argmax) of at least
    ``min_voxels`` that holds no marker and drains (``regions``: :func:`drain` of ``marker_labels``) only into
    markers of permanent types of another class (incisor, canine, premolar, molar: ``fdi.TYPE_CLASSES``): its
    deepest voxels, as in :func:`unmarked_markers`.

    Such a set is a tooth that lost its core: a crowned or root-filled premolar whose restored crown stage 2 called
    background leaves a root about 3 mm thick, typed premolar, whose part deeper than ``core_mm`` is too small for
    a marker (dev B heads 40032 and 40017); it drained into the canine beside it, which took its number. Parts of
    one tooth typed apart are of one class (a molar's halves voting 6 and 7, a premolar's 4 and 5): on dev B jaws
    40051 a marker for every unmarked set of a type split three teeth. A set draining into a primary-typed marker
    (a child's) is left to the child pass (:func:`unmarked_markers`)."""
    result = marker_labels.copy()
    count = int(result.max(initial=0))
    marker_type = np.zeros(max(count, int(regions.max(initial=0))) + 1, dtype=np.int64)
    marked = np.flatnonzero(marker_labels)
    marker_type[marker_labels[marked]] = smooth_type[marked]
    for t, tooth_class in TYPE_CLASSES.items():
        for part in connected_parts(np.flatnonzero(smooth_type == t), sparse):
            if len(part) < min_voxels or result[part].any():
                continue
            into = {TYPE_CLASSES.get(int(m), "primary") for m in np.unique(marker_type[regions[part]]) if m > 0}
            if into and not into & {tooth_class, "primary"}:
                count += 1
                result[_deepest(part, sparse)] = count
    return result


def _deepest(part: np.ndarray, sparse: SparseForeground) -> np.ndarray:
    """The voxels of ``part`` within UNMARKED_PEAK_MM of its deepest one: a marker for a set without a core."""
    depth = sparse.dist[part]
    return part[depth >= depth.max() - UNMARKED_PEAK_MM]


def connected_parts(members: np.ndarray, sparse: SparseForeground) -> list[np.ndarray]:
    """The 6-connected parts of the compact voxels ``members``, each as compact indices (none for none)."""
    if len(members) == 0:
        return []
    values, _ = _components(sparse.flat[members], sparse.shape)
    return [members[group] for group in index_groups(values)]


def _components(flat: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, int]:
    """(component label of each voxel, count): the 6-connected components of the voxels ``flat`` (flat indices
    into ``shape``), labelled in their bounding box only. Raster order within the box is raster order in the
    whole grid, so the labels are the ones a whole-grid ``ndi.label`` gives, at a fraction of the cost."""
    ijk = np.unravel_index(flat, shape)
    lo = [int(a.min()) for a in ijk]
    local = tuple(a - low for a, low in zip(ijk, lo, strict=True))
    box = np.zeros(tuple(int(a.max()) + 1 for a in local), dtype=bool)
    box[local] = True
    components, n = ndi.label(box)
    return components[local], n


def _split_by_necks(
    part: np.ndarray, sparse: SparseForeground, level: float, opts: InstanceOptions, min_voxels: int
) -> list[np.ndarray]:
    """Compact index sets of the deep parts of ``part`` that raising the level separates (dynamics >= neck_mm)."""
    ijk = np.stack(np.unravel_index(sparse.flat[part], sparse.shape), axis=1)
    lo = ijk.min(axis=0)
    box = np.zeros(tuple(ijk.max(axis=0) - lo + 1), dtype=np.float32)
    index = tuple((ijk - lo).T)
    dist = sparse.dist[part]  # a core part lies outside the contacts: its parting depth is its depth
    box[index] = dist
    peak = float(dist.max())
    for next_level in np.arange(level + opts.neck_step_mm, peak - opts.neck_mm + 1e-6, opts.neck_step_mm):
        components, n = ndi.label(box > next_level)
        if n < 2:
            continue
        values = components[index]
        peaks = np.zeros(n + 1)
        np.maximum.at(peaks, values, dist)
        sizes = np.bincount(values, minlength=n + 1)
        deep = [
            c
            for c in range(1, n + 1)
            if peaks[c] - next_level >= opts.neck_depth(peaks[c]) and sizes[c] >= min_voxels
        ]
        if len(deep) >= 2:
            pieces = []
            for c in deep:
                pieces.extend(_split_by_necks(part[values == c], sparse, float(next_level), opts, min_voxels))
            return pieces
    return [part]


def steepest_ascent(sparse: SparseForeground, spacing: np.ndarray) -> np.ndarray:
    """Each compact voxel's steepest uphill neighbour on the distance map (itself where none rises). It needs
    only the distance map, so the instance step works it out in the distance map's worker, beside the markers."""
    n = len(sparse.flat)
    parent = np.arange(n, dtype=np.int64)
    slope = np.zeros(n, dtype=np.float32)
    # Depth on the whole crop, 0 on the background: a background neighbour's rise is then < 0 and never wins,
    # so only the neighbours that do win need the compact lookup.
    depth = np.zeros(int(np.prod(sparse.shape)), dtype=np.float32)
    depth[sparse.flat] = sparse.dist
    for offset, length in neighbour_offsets(sparse.shape, spacing):
        around = sparse.flat + offset
        rise = (depth[around] - sparse.dist) / length
        better = np.flatnonzero(rise > slope)
        slope[better], parent[better] = rise[better], sparse.lookup[around[better]]
    return parent


def drain(
    sparse: SparseForeground, marker_labels: np.ndarray, spacing: np.ndarray, ascent: np.ndarray | None = None
) -> np.ndarray:
    """Watershed by steepest ascent of the distance map (``ascent``, from :func:`steepest_ascent` unless
    given; it is changed in place); marker voxels are sinks. Compact labels."""
    parent = steepest_ascent(sparse, spacing) if ascent is None else ascent
    is_marker = marker_labels > 0
    parent[is_marker] = np.flatnonzero(is_marker)
    for _ in range(64):  # pointer jumping: each round doubles the path followed
        grand = parent[parent]
        if np.array_equal(grand, parent):
            break
        parent = grand
    labels = marker_labels[parent]
    return _fill_unlabelled(labels, sparse, spacing)


def _fill_unlabelled(labels: np.ndarray, sparse: SparseForeground, spacing: np.ndarray) -> np.ndarray:
    """Voxels that drained to no marker take a labelled neighbour's label; leftovers become new regions."""
    offsets = neighbour_offsets(sparse.shape, spacing, full=False)
    for _ in range(200):
        todo = np.flatnonzero(labels == 0)
        if len(todo) == 0:
            return labels
        found = np.zeros(len(todo), dtype=labels.dtype)
        for offset, _length in offsets:
            neighbour = sparse.lookup[sparse.flat[todo] + offset]
            value = np.where(neighbour >= 0, labels[np.maximum(neighbour, 0)], 0)
            found = np.where(found == 0, value, found)
        if not found.any():
            break
        labels[todo] = found
    todo = labels == 0
    grid = np.zeros(sparse.shape, dtype=bool)
    grid.reshape(-1)[sparse.flat[todo]] = True
    components, _ = ndi.label(grid)
    labels[todo] = components.reshape(-1)[sparse.flat[todo]] + labels.max()
    return labels
