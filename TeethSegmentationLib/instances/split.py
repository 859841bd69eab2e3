"""Single teeth from the networks' probabilities: split touching teeth, one type per tooth, FDI numbers.

Steps of :func:`label_teeth` (all geometry in RAS millimetres, spacing = column norms of ijk_to_ras):

1. Foreground = probability > threshold, specks below ``min_speck_mm3`` dropped, cropped to its box.
2. Markers = connected "cores" (deeper than ``core_mm`` inside the foreground) of one smoothed argmax
   type each: touching neighbours of different types are split by the type boundary, touching
   neighbours of the same type (11 and 21) by the thin neck where their cores separate.
3. Every foreground voxel follows the steepest ascent of the distance map to a marker (a drainage
   watershed, vectorised with pointer jumping); voxels that reach none take a labelled neighbour's label.
4. Regions that are one tooth are merged: fragments too small to be a tooth go to the neighbour they
   touch most, and neighbours whose common boundary is nearly as deep as the shallower one's centre
   (no neck between them) become one.
5. Each region's type is the vote of its mean type probabilities; an instance that straddles the
   occlusal plane (an upper and a lower tooth fused at the bite) is cut by the plane.
6. :mod:`fdi_assignment` numbers the teeth (jaws, arch, midline, dynamic programme).
7. Instances far wider along the arch than a tooth at their place (neighbours of one type fused at a
   broad contact) are cut at their thinnest cross-sections, and the teeth are numbered again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from TeethSegmentationLib.events import NullReporter, Reporter
from TeethSegmentationLib.instances import numbering as fdi_assignment


@dataclass
class InstanceOptions:
    threshold: float = 0.5  # foreground probability
    min_speck_mm3: float = 20.0  # connected components smaller than this are dropped
    smooth_mm: float = 1.5  # box filter on the type probabilities before the per-voxel argmax
    core_mm: float = 1.5  # marker cores lie deeper than this inside the foreground
    neck_mm: float = 0.5  # a core splits into two markers where both parts rise above the neck by at least
    neck_fraction: float = 0.25  # neck_mm and this fraction of their depth (touching central incisors)
    neck_step_mm: float = 0.2
    min_marker_mm3: float = 4.0
    min_tooth_mm3: float = 40.0  # smaller regions are fragments (merged into a neighbour, dropped when alone)
    fragment_fraction: float = 0.3  # ... and so are regions below this fraction of the median region
    merge_other_type: float = 0.99  # different types merge when the boundary is this deep x the shallower centre
    straddle_margin_mm: float = 1.5  # an instance with >= straddle_fraction of its voxels this far on
    straddle_fraction: float = 0.2  # both sides of the occlusal plane is cut by the plane
    side_sigma_mm: float = 2.5  # softness of the side prior around the midline
    wide_ratio: float = 1.6  # an instance this many times wider along the arch than a tooth there is fused teeth
    contact_dip: float = 0.75  # ... when its cross-section at the cut is at most this fraction of both sides' peaks


@dataclass
class ToothInstance:
    fdi: int
    type: int
    confidence: float  # mean probability of the assigned type x mean foreground probability, 0..1
    voxel_count: int
    centroid_ras: tuple[float, float, float]
    instance_id: int = 0  # value in InstanceResult.instance_map
    volume_mm3: float = 0.0
    type_probabilities: tuple[float, ...] = ()  # mean over the tooth of types 1..8, normalised
    jaw: str = ""  # "upper" or "lower"
    arch_position_mm: float = 0.0  # signed arc length from the midline, + towards the patient's right

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InstanceResult:
    fdi_map: np.ndarray  # uint8 [i, j, k], 0 background, FDI numbers
    teeth: list[ToothInstance]  # numbered teeth, sorted by FDI number
    instance_map: np.ndarray | None = None  # uint16 [i, j, k], every instance incl. unnumbered ones
    unassigned: list[ToothInstance] = field(default_factory=list)  # fdi 0, not in fdi_map
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Sparse:
    """The foreground voxels of a padded crop, as compact arrays (one entry per voxel)."""

    shape: tuple[int, int, int]  # padded crop shape
    lo: np.ndarray  # ijk of padded voxel (0, 0, 0) in the input grid
    flat: np.ndarray  # flat indices into the padded crop
    lookup: np.ndarray  # padded-crop-sized int32: compact index or -1
    dist: np.ndarray  # mm to the background


def label_teeth(
    teeth_prob: np.ndarray,
    type_probs: np.ndarray,
    ijk_to_ras: np.ndarray,
    reporter: Reporter | None = None,
    **options: Any,
) -> InstanceResult:
    """FDI-numbered teeth from a foreground probability [i,j,k] and a 9-class softmax [9,i,j,k] on one grid."""
    opts = InstanceOptions(**options)
    reporter = reporter or NullReporter()
    teeth_prob, type_probs, affine = _check_inputs(teeth_prob, type_probs, ijk_to_ras)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    mask = _foreground(teeth_prob, opts.threshold, max(1, int(round(opts.min_speck_mm3 / voxel_mm3))))
    if mask is None:
        return _empty(teeth_prob.shape, ["No teeth were found (no foreground above the threshold)."])
    sparse = _sparse(mask, spacing)
    timings["foreground"] = _lap(clock)
    reporter.progress("instances", 0.1, "splitting touching teeth")

    types = _gather_types(type_probs, sparse)
    smooth_type = _smoothed_argmax(type_probs, sparse, spacing, opts.smooth_mm)
    markers = _markers(sparse, smooth_type, opts, max(1, int(round(opts.min_marker_mm3 / voxel_mm3))))
    labels = _drain(sparse, markers, spacing)
    timings["split"] = _lap(clock)
    reporter.progress("instances", 0.5, "merging fragments")

    ras = _ras_points(sparse, affine)
    plane = _plane(labels, ras)
    labels = _merge_regions(labels, sparse, types, ras, plane, opts, voxel_mm3)
    fg = teeth_prob.reshape(-1)[_input_flat(sparse, teeth_prob.shape)].astype(np.float32)
    if plane[2]:
        labels = _cut_straddling(labels, ras, plane, opts, voxel_mm3)
    stats = _stats(labels, types, fg, ras)
    timings["merge"] = _lap(clock)
    reporter.progress("instances", 0.8, "numbering")

    known_plane = (plane[0], plane[1]) if plane[2] else None
    assignment = fdi_assignment.assign_fdi(
        stats["centroid"], stats["types"], _apex_skew(labels, ras, plane[0]), opts.side_sigma_mm, known_plane
    )
    labels, split = _split_fused_central_incisors(labels, ras, stats, assignment, voxel_mm3, opts)
    if split:
        stats = _stats(labels, types, fg, ras)
        assignment = fdi_assignment.assign_fdi(
            stats["centroid"], stats["types"], _apex_skew(labels, ras, plane[0]), opts.side_sigma_mm, known_plane
        )
    labels, split = _split_wide_instances(labels, ras, assignment, voxel_mm3, opts)
    if split:
        stats = _stats(labels, types, fg, ras)
        assignment = fdi_assignment.assign_fdi(
            stats["centroid"], stats["types"], _apex_skew(labels, ras, plane[0]), opts.side_sigma_mm, known_plane
        )
    result = _result(teeth_prob.shape, sparse, labels, stats, assignment, voxel_mm3)
    timings["number"] = _lap(clock)
    result.timings = timings
    for message in result.warnings:
        reporter.log(message, "warning")
    reporter.progress("instances", 1.0, f"{len(result.teeth)} teeth numbered")
    return result


def _lap(start: float) -> float:
    return round(time.perf_counter() - start, 4)


def _check_inputs(teeth_prob: Any, type_probs: Any, ijk_to_ras: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    teeth_prob = np.asarray(teeth_prob)
    type_probs = np.asarray(type_probs)
    affine = np.asarray(ijk_to_ras, dtype=np.float64)
    if teeth_prob.ndim != 3:
        raise ValueError(f"teeth_prob must be a 3-D array [i, j, k], not shape {teeth_prob.shape}.")
    if type_probs.shape != (9, *teeth_prob.shape):
        raise ValueError(
            f"type_probs must have shape (9, {', '.join(map(str, teeth_prob.shape))}), not {type_probs.shape}."
        )
    if affine.shape != (4, 4) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError("ijk_to_ras must be an invertible 4x4 matrix.")
    return teeth_prob, type_probs, affine


def _empty(shape: tuple[int, ...], warnings: list[str]) -> InstanceResult:
    return InstanceResult(np.zeros(shape, np.uint8), [], np.zeros(shape, np.uint16), [], warnings)


# ---------------------------------------------------------------------------------------- foreground


def _foreground(teeth_prob: np.ndarray, threshold: float, min_voxels: int) -> np.ndarray | None:
    mask = teeth_prob > threshold
    if not mask.any():
        return None
    components, count = ndi.label(mask)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    if not keep[1:].any():
        return None
    return keep[components]


def _sparse(mask: np.ndarray, spacing: np.ndarray) -> _Sparse:
    """Crop to the mask's box, pad by one voxel (every voxel then has all 26 neighbours), distance map."""
    nonzero = (
        np.nonzero(mask.any(axis=(1, 2)))[0],
        np.nonzero(mask.any(axis=(0, 2)))[0],
        np.nonzero(mask.any(axis=(0, 1)))[0],
    )
    lo = np.array([a[0] for a in nonzero])
    hi = np.array([a[-1] + 1 for a in nonzero])
    crop = np.pad(mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], 1)
    dist = ndi.distance_transform_edt(crop, sampling=spacing).astype(np.float32)
    flat = np.flatnonzero(crop)
    lookup = np.full(crop.size, -1, dtype=np.int32)
    lookup[flat] = np.arange(len(flat), dtype=np.int32)
    return _Sparse(crop.shape, lo - 1, flat, lookup, dist.reshape(-1)[flat])


def _input_flat(sparse: _Sparse, shape: tuple[int, ...]) -> np.ndarray:
    """Flat indices of the compact voxels in the input grid."""
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape)) + sparse.lo[:, None]
    return np.ravel_multi_index(tuple(ijk), shape)


def _ras_points(sparse: _Sparse, affine: np.ndarray) -> np.ndarray:
    ijk = np.stack(np.unravel_index(sparse.flat, sparse.shape), axis=1) + sparse.lo
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _gather_types(type_probs: np.ndarray, sparse: _Sparse) -> np.ndarray:
    """(N, 8) type probabilities 1..8 of the compact voxels, float32."""
    index = _input_flat(sparse, type_probs.shape[1:])
    return np.stack([type_probs[c].reshape(-1)[index] for c in range(1, 9)], axis=1).astype(np.float32)


def _smoothed_argmax(type_probs: np.ndarray, sparse: _Sparse, spacing: np.ndarray, smooth_mm: float) -> np.ndarray:
    """Type 1..8 per compact voxel after a box filter of about ``smooth_mm`` (removes the per-voxel speckle)."""
    size = tuple(max(1, int(round(smooth_mm / s)) | 1) for s in spacing)
    shape = np.array(sparse.shape) - 2
    box = tuple(slice(int(a) + 1, int(a) + 1 + int(n)) for a, n in zip(sparse.lo, shape, strict=True))
    inner = np.unravel_index(sparse.flat, sparse.shape)
    inner = tuple(i - 1 for i in inner)
    best = np.full(len(sparse.flat), -1.0, dtype=np.float32)
    result = np.zeros(len(sparse.flat), dtype=np.uint8)
    for c in range(1, 9):
        channel = type_probs[c][box].astype(np.float32)
        if max(size) > 1:
            channel = ndi.uniform_filter(channel, size=size, mode="nearest")
        value = channel[inner]
        better = value > best
        best[better], result[better] = value[better], c
    return result


# ------------------------------------------------------------------------------------------ splitting


def _offsets(shape: tuple[int, int, int], spacing: np.ndarray, full: bool = True) -> list[tuple[int, float]]:
    """(flat offset, length in mm) of the 26 (or 6) neighbours in a C-ordered array of ``shape``."""
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    result = []
    for d in np.ndindex(3, 3, 3):
        step = np.array(d) - 1
        if not step.any() or (not full and np.abs(step).sum() != 1):
            continue
        result.append((int(step @ strides), float(np.linalg.norm(step * spacing))))
    return result


def _markers(sparse: _Sparse, smooth_type: np.ndarray, opts: InstanceOptions, min_voxels: int) -> np.ndarray:
    """Compact int32 marker labels (0 = none): connected same-type cores deeper than ``core_mm``, each split
    further where it still has two deep parts joined by a neck (two touching central incisors)."""
    markers = np.zeros(len(sparse.flat), dtype=np.int32)
    core = sparse.dist > opts.core_mm
    grid = np.zeros(sparse.shape, dtype=bool)
    count = 0
    for t in range(1, 9):
        members = np.flatnonzero(core & (smooth_type == t))
        if len(members) == 0:
            continue
        grid.reshape(-1)[sparse.flat[members]] = True
        components, n = ndi.label(grid)
        grid.reshape(-1)[sparse.flat[members]] = False
        values = components.reshape(-1)[sparse.flat[members]]
        order = np.argsort(values, kind="stable")
        bounds = np.searchsorted(values[order], np.arange(1, n + 2))
        for c in range(n):
            part = members[order[bounds[c] : bounds[c + 1]]]
            if len(part) < min_voxels:
                continue
            for piece in _split_by_necks(part, sparse, opts.core_mm, opts, min_voxels):
                count += 1
                markers[piece] = count
    return markers


def _neck(peak: float, opts: InstanceOptions) -> float:
    """How far both sides must rise above a neck for it to separate two teeth."""
    return max(opts.neck_mm, opts.neck_fraction * peak)


def _split_by_necks(part: np.ndarray, sparse: _Sparse, level: float, opts: InstanceOptions, min_voxels: int) -> list:
    """Compact index sets of the deep parts of ``part`` that raising the level separates (dynamics >= neck_mm)."""
    ijk = np.stack(np.unravel_index(sparse.flat[part], sparse.shape), axis=1)
    lo = ijk.min(axis=0)
    box = np.zeros(tuple(ijk.max(axis=0) - lo + 1), dtype=np.float32)
    index = tuple((ijk - lo).T)
    dist = sparse.dist[part]
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
        deep = [c for c in range(1, n + 1) if peaks[c] - next_level >= _neck(peaks[c], opts) and sizes[c] >= min_voxels]
        if len(deep) >= 2:
            pieces = []
            for c in deep:
                pieces.extend(_split_by_necks(part[values == c], sparse, float(next_level), opts, min_voxels))
            return pieces
    return [part]


def _drain(sparse: _Sparse, markers: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Watershed by steepest ascent of the distance map; marker voxels are sinks. Compact labels."""
    n = len(sparse.flat)
    parent = np.arange(n, dtype=np.int64)
    slope = np.zeros(n, dtype=np.float32)
    for offset, length in _offsets(sparse.shape, spacing):
        neighbour = sparse.lookup[sparse.flat + offset]
        valid = neighbour >= 0
        rise = np.where(valid, (sparse.dist[np.maximum(neighbour, 0)] - sparse.dist) / length, 0.0)
        better = rise > slope
        slope[better], parent[better] = rise[better], neighbour[better]
    is_marker = markers > 0
    parent[is_marker] = np.flatnonzero(is_marker)
    for _ in range(64):
        grand = parent[parent]
        if np.array_equal(grand, parent):
            break
        parent = grand
    labels = markers[parent]
    return _fill_unlabelled(labels, sparse, spacing)


def _fill_unlabelled(labels: np.ndarray, sparse: _Sparse, spacing: np.ndarray) -> np.ndarray:
    """Voxels that drained to no marker take a labelled neighbour's label; leftovers become new regions."""
    offsets = _offsets(sparse.shape, spacing, full=False)
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


# -------------------------------------------------------------------------------------------- merging


def _plane(labels: np.ndarray, ras: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """(occlusal normal, plane height along it, two arches?) from the regions' centroids and the voxel profile."""
    count = int(labels.max()) + 1
    size = np.maximum(np.bincount(labels, minlength=count), 1)[1:, None]
    centroids = np.stack([np.bincount(labels, weights=ras[:, a], minlength=count)[1:] for a in range(3)], 1) / size
    normal = fdi_assignment.occlusal_normal(centroids)
    height, two = fdi_assignment.occlusal_plane(ras @ normal)
    if not two:  # a weak dip in a closed bite: the regions' centroids (before merging) may still form two layers,
        # of similar bulk (a single arch split at the tooth necks gives a crown layer and a slighter root layer)
        upper, threshold, two, _ = fdi_assignment.split_jaws(centroids, np.zeros(len(centroids)), normal)
        bulk = np.array([size[upper].sum(), size[~upper].sum()], dtype=np.float64)
        two = (
            two
            and bulk.min() >= 0.6 * bulk.max()
            and min(upper.sum(), (~upper).sum()) >= 0.6 * max(upper.sum(), (~upper).sum())
        )
        height = threshold if two else height
    # Two arches: the gap between them tilts a normal fitted to all centroids wherever one jaw lacks teeth
    # the other has. Refit it with each jaw centred on itself, from a first split along the scanner's S axis
    # (patients are scanned about upright) or, failing that, along the first normal.
    if two:
        z_height, z_two = fdi_assignment.occlusal_plane(ras[:, 2])
        seed = (np.array([0.0, 0.0, 1.0]), z_height) if z_two else (normal, height)
        for _ in range(2):
            refit = fdi_assignment.occlusal_normal(centroids, centroids @ seed[0] > seed[1])
            refit_height, refit_two = fdi_assignment.occlusal_plane(ras @ refit)
            if not refit_two:
                break
            seed = (refit, refit_height)
        normal, height = seed
    return normal, height, two


def _adjacency(labels: np.ndarray, sparse: _Sparse) -> dict[tuple[int, int], tuple[int, float]]:
    """{(a, b): (contact faces, saddle depth)} of touching regions a < b, from the 6-neighbourhood."""
    count = int(labels.max()) + 1
    keys, depths = [], []
    for offset in _offsets(sparse.shape, np.ones(3), full=False):
        if offset[0] < 0:
            continue
        neighbour = sparse.lookup[sparse.flat + offset[0]]
        valid = neighbour >= 0
        a, b = labels[valid], labels[neighbour[valid]]
        touch = a != b
        a, b = a[touch], b[touch]
        depth = np.minimum(sparse.dist[valid][touch], sparse.dist[neighbour[valid]][touch])
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


def _merge_regions(
    labels: np.ndarray,
    sparse: _Sparse,
    types: np.ndarray,
    ras: np.ndarray,
    plane: tuple[np.ndarray, float, bool],
    opts: InstanceOptions,
    voxel_mm3: float,
) -> np.ndarray:
    """Union regions that are one tooth; drop lone fragments. Touching regions are one tooth when there is
    no neck between them, when one is a fragment, or when they lie on top of each other along the occlusal
    normal (crown and root parted at the cervical neck) with the same type or very unequal sizes. With two
    arches only fragments merge across the occlusal plane; fused bites left over are cut by the plane later."""
    count = int(labels.max()) + 1
    size = np.bincount(labels, minlength=count).astype(np.float64)
    peak = np.zeros(count)
    np.maximum.at(peak, labels, sparse.dist)
    type_sum = np.stack([np.bincount(labels, weights=types[:, c], minlength=count) for c in range(8)], axis=1)
    position = np.stack([np.bincount(labels, weights=ras[:, a], minlength=count) for a in range(3)], axis=1)
    normal, height, two_arches = plane
    edges = _adjacency(labels, sparse)
    root = list(range(count))

    def find(x: int) -> int:
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    def union(a: int, b: int) -> None:
        a, b = find(a), find(b)
        if a == b:
            return
        if size[a] < size[b]:
            a, b = b, a
        root[b] = a
        size[a] += size[b]
        peak[a] = max(peak[a], peak[b])
        type_sum[a] += type_sum[b]
        position[a] += position[b]

    def same_jaw(a: int, b: int) -> bool:
        if not two_arches:
            return True
        return bool((position[a] @ normal / size[a] > height) == (position[b] @ normal / size[b] > height))

    def stacked(a: int, b: int) -> bool:
        offset = position[a] / size[a] - position[b] / size[b]
        along = abs(float(offset @ normal))
        return 0.6 * along > float(np.linalg.norm(offset - along * normal * np.sign(offset @ normal)))

    for (a, b), (_contact, saddle) in sorted(edges.items(), key=lambda e: -e[1][1]):
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        same = int(np.argmax(type_sum[ra])) == int(np.argmax(type_sum[rb]))
        shallower = min(peak[ra], peak[rb])
        no_neck = (
            shallower - saddle < 0.75 * _neck(shallower, opts) if same else saddle >= opts.merge_other_type * shallower
        )
        unequal = min(size[ra], size[rb]) < 0.35 * max(size[ra], size[rb])
        if same_jaw(ra, rb) and (no_neck or ((same or unequal) and stacked(ra, rb))):
            union(ra, rb)

    roots = sorted({find(r) for r in range(1, count)})
    median = float(np.median(size[roots])) if roots else 0.0
    small = max(opts.min_tooth_mm3 / voxel_mm3, opts.fragment_fraction * median)
    for r in sorted(roots, key=lambda r: size[r]):
        r = find(r)
        if size[r] >= small:
            continue
        touching = [(c, find(b if find(a) == r else a)) for (a, b), (c, _s) in edges.items() if r in (find(a), find(b))]
        touching = [(c, other) for c, other in touching if other != r]
        if touching:
            contact: dict[int, int] = {}
            for c, other in touching:
                contact[other] = contact.get(other, 0) + c
            union(max(contact, key=contact.get), r)
    final = np.array([find(r) for r in range(count)])
    final[0] = 0
    lone = size[final] < opts.min_tooth_mm3 / voxel_mm3
    final[lone] = 0
    _, compact = np.unique(final, return_inverse=True)
    if final.min() > 0:  # no background label among them
        compact = compact + 1
    return compact.astype(np.int32)[labels]


# ----------------------------------------------------------------------------------- statistics, jaws


def _stats(labels: np.ndarray, types: np.ndarray, fg: np.ndarray, ras: np.ndarray) -> dict[str, np.ndarray]:
    """Per-instance (rows 0..n-1 = labels 1..n) voxel counts, centroids, mean type and foreground probabilities."""
    n = int(labels.max())
    count = np.bincount(labels, minlength=n + 1)[1:].astype(np.float64)
    safe = np.maximum(count, 1)[:, None]
    centroid = np.stack([np.bincount(labels, weights=ras[:, a], minlength=n + 1)[1:] for a in range(3)], 1) / safe
    mean_types = np.stack([np.bincount(labels, weights=types[:, c], minlength=n + 1)[1:] for c in range(8)], 1) / safe
    mean_fg = np.bincount(labels, weights=fg, minlength=n + 1)[1:] / safe[:, 0]
    total = np.maximum(mean_types.sum(axis=1, keepdims=True), 1e-6)
    return {"count": count, "centroid": centroid, "types": mean_types / total, "fg": mean_fg}


def _apex_skew(labels: np.ndarray, ras: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Skewness of each instance's voxels along the occlusal normal: > 0 when the root points superior."""
    n = int(labels.max())
    height = ras @ normal
    count = np.maximum(np.bincount(labels, minlength=n + 1), 1)
    mean = np.bincount(labels, weights=height, minlength=n + 1) / count
    centred = height - mean[labels]
    var = np.bincount(labels, weights=centred**2, minlength=n + 1) / count
    third = np.bincount(labels, weights=centred**3, minlength=n + 1) / count
    return (third / np.maximum(var, 1e-6) ** 1.5)[1:]


def _cut_straddling(
    labels: np.ndarray, ras: np.ndarray, plane: tuple[np.ndarray, float, bool], opts: InstanceOptions, voxel_mm3: float
) -> np.ndarray:
    """Cut instances lying far on both sides of the occlusal plane (upper and lower teeth fused at the bite)."""
    normal, offset, _two = plane
    n = int(labels.max())
    height = ras @ normal - offset
    count = np.bincount(labels, minlength=n + 1)[1:]
    above = np.bincount(labels, weights=height > opts.straddle_margin_mm, minlength=n + 1)[1:]
    below = np.bincount(labels, weights=height < -opts.straddle_margin_mm, minlength=n + 1)[1:]
    cut = (above >= opts.straddle_fraction * count) & (below >= opts.straddle_fraction * count)
    cut &= np.minimum(above, below) * voxel_mm3 >= opts.min_tooth_mm3
    if not cut.any():
        return labels
    labels = labels.copy()
    next_label = n + 1
    for index in np.flatnonzero(cut):
        labels[(labels == index + 1) & (height < 0)] = next_label
        next_label += 1
    return labels


def _split_fused_central_incisors(
    labels: np.ndarray, ras: np.ndarray, stats: dict, assignment: Any, voxel_mm3: float, opts: InstanceOptions
) -> tuple[np.ndarray, bool]:
    """An arch whose only central incisor lies across the midline holds both, fused: cut it at the midline."""
    changed = False
    for jaw, fit in assignment.fits.items():
        members = np.flatnonzero(assignment.upper == jaw)
        incisors = [i for i in members if int(np.argmax(stats["types"][i])) == 0]
        if len(incisors) != 1 or abs(assignment.arch_position_mm[incisors[0]]) > opts.side_sigma_mm:
            continue
        voxels = np.flatnonzero(labels == incisors[0] + 1)
        side = fdi_assignment.arch_positions(ras[voxels], fit) > 0
        smaller = min(side.sum(), (~side).sum())
        if smaller >= 0.3 * len(voxels) and smaller * voxel_mm3 >= opts.min_tooth_mm3:
            labels = labels.copy() if not changed else labels
            labels[voxels[side]] = labels.max() + 1
            changed = True
    return labels, changed


def _split_wide_instances(
    labels: np.ndarray, ras: np.ndarray, assignment: Any, voxel_mm3: float, opts: InstanceOptions
) -> tuple[np.ndarray, bool]:
    """Cut instances much wider along the arch than a tooth at their place (neighbours of one type fused
    at a broad contact, which no neck separates) into 2 or 3 teeth, at the thinnest cross-sections.

    Width = the span of the voxels' arc positions; "a tooth at their place" = the typical crown width
    there, times the jaw's median ratio of the two (the patient's size and the span's own bias)."""
    changed = False
    next_label = int(labels.max()) + 1
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(next_label + 1))
    members_voxels = {m: order[bounds[m + 1] : bounds[m + 2]] for m in range(next_label - 1)}  # instance m = label m+1
    for jaw, fit in assignment.fits.items():
        members = np.flatnonzero(assignment.upper == jaw)
        if len(members) < 4 or not fit.fitted:
            continue
        voxels = [members_voxels[m] for m in members]
        # The span from at most ~2000 voxels a tooth: percentiles need no more, the arc foot points are costly.
        spans = np.array([_span(fdi_assignment.arch_positions(ras[v[:: max(1, len(v) // 2000)]], fit)) for v in voxels])
        expected = fdi_assignment.expected_width_mm(assignment.arch_position_mm[members], bool(jaw))
        ratio = spans / expected
        ratio /= np.clip(np.median(ratio), 0.6, 1.5)
        for member_voxels, r in zip(voxels, ratio, strict=True):
            if r < opts.wide_ratio:
                continue
            # The wider, the surer it is fused: a shallower dip is then taken for the contact.
            dip = min(opts.contact_dip + 0.1 * (r - opts.wide_ratio), 0.9)
            arc = fdi_assignment.arch_positions(ras[member_voxels], fit)
            parts = _cut_along_arch(arc, int(np.clip(np.round(r), 2, 3)), dip)
            sizes = np.bincount(parts)
            if len(sizes) < 2 or sizes.min() < max(opts.min_tooth_mm3 / voxel_mm3, 0.25 * len(arc)):
                continue
            labels = labels if changed else labels.copy()
            for part in range(1, len(sizes)):
                labels[member_voxels[parts == part]] = next_label
                next_label += 1
            changed = True
    return labels, changed


def _span(arc: np.ndarray) -> float:
    """Extent along the arch, robust to stray voxels: 3rd to 97th percentile."""
    return float(np.percentile(arc, 97) - np.percentile(arc, 3))


def _cut_along_arch(arc: np.ndarray, k: int, dip: float, bin_mm: float = 0.25, min_gap_mm: float = 3.0) -> np.ndarray:
    """Part index of each voxel, cut at up to k-1 contacts: local minima of the voxels per arc-length bin
    (inside the 12-88 % quantiles) at most ``dip`` x the peaks on both sides, deepest first, ``min_gap_mm``
    apart. All zeros when no contact is seen."""
    edges = np.arange(arc.min(), arc.max() + 2 * bin_mm, bin_mm)
    counts = ndi.gaussian_filter1d(np.histogram(arc, edges)[0].astype(float), 2.0)
    centres = (edges[:-1] + edges[1:]) / 2
    lo, hi = np.quantile(arc, [0.12, 0.88])
    candidates = []
    for c in range(1, len(counts) - 1):
        if lo <= centres[c] <= hi and counts[c] <= counts[c - 1] and counts[c] <= counts[c + 1]:
            depth = counts[c] / max(min(counts[:c].max(), counts[c + 1 :].max()), 1e-6)
            if depth <= dip:
                candidates.append((depth, centres[c]))
    cuts: list[float] = []
    for _depth, centre in sorted(candidates):
        if len(cuts) < k - 1 and all(abs(centre - other) >= min_gap_mm for other in cuts):
            cuts.append(centre)
    return np.digitize(arc, np.sort(cuts)) if cuts else np.zeros(len(arc), dtype=int)


# ----------------------------------------------------------------------------------------------- result


def _result(
    shape: tuple[int, ...], sparse: _Sparse, labels: np.ndarray, stats: dict, assignment: Any, voxel_mm3: float
) -> InstanceResult:
    index = _input_flat(sparse, shape)
    instance_map = np.zeros(shape, dtype=np.uint16)
    instance_map.reshape(-1)[index] = labels
    lut = np.zeros(len(stats["count"]) + 1, dtype=np.uint8)
    lut[1:] = assignment.fdi
    fdi_map = np.zeros(shape, dtype=np.uint8)
    fdi_map.reshape(-1)[index] = lut[labels]
    teeth, unassigned = [], []
    for i, fdi in enumerate(assignment.fdi):
        type_ = int(fdi) % 10 if fdi else int(np.argmax(stats["types"][i])) + 1
        tooth = ToothInstance(
            fdi=int(fdi),
            type=type_,
            confidence=round(float(stats["types"][i][type_ - 1] * stats["fg"][i]), 4),
            voxel_count=int(stats["count"][i]),
            centroid_ras=tuple(round(float(c), 3) for c in stats["centroid"][i]),
            instance_id=i + 1,
            volume_mm3=round(float(stats["count"][i] * voxel_mm3), 2),
            type_probabilities=tuple(round(float(p), 4) for p in stats["types"][i]),
            jaw="upper" if assignment.upper[i] else "lower",
            arch_position_mm=round(float(assignment.arch_position_mm[i]), 2),
        )
        (teeth if fdi else unassigned).append(tooth)
    warnings = list(assignment.warnings)
    for tooth in unassigned:
        # Dropped, not merged: numbering runs after the fragment merges, so an instance left over here is
        # a whole object (supernumerary or retained tooth, implant, false positive) that has no permanent
        # FDI number. Merging it would spoil a correctly outlined neighbour's surface; leaving it out of
        # the label map is an omission the user sees and fixes in Segment Editor. It stays in
        # instance_map and `unassigned`.
        warnings.append(
            f"An extra {tooth.jaw} tooth-like object ({tooth.volume_mm3:.0f} mm3, type {tooth.type}) near RAS "
            f"{tooth.centroid_ras} could not be given a free FDI number and was left out of the label map."
        )
    teeth.sort(key=lambda t: t.fdi)
    return InstanceResult(fdi_map, teeth, instance_map, unassigned, warnings)
