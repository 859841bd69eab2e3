"""Cutting instances that are several teeth fused: across the bite, at the midline, and along the arch."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from TeethSegmentationLib.instances import numbering
from TeethSegmentationLib.instances.numbering import Assignment
from TeethSegmentationLib.instances.occlusal import OcclusalPlane, crossed_regions
from TeethSegmentationLib.instances.options import InstanceOptions
from TeethSegmentationLib.instances.regions import RegionStats

MIN_HALF_SHARE = 0.3  # a central incisor is cut at the midline when the smaller side holds this share of it
MIN_PART_SHARE = 0.25  # each part of a wide instance cut along the arch holds at least this share of it
# ... in a mixed dentition: a resorbing primary incisor fused to the teeth beside it holds 15-25 % of them (the
# dev children, seeds 46000+).
MIN_PART_SHARE_MIXED = 0.15
BITE_WINDOW_MM = 3.0  # a child's cut across the bite lies this near the occlusal plane
SPAN_SAMPLE = 2000  # voxels a tooth enough for the span's percentiles (the arc foot points are costly)


def cut_straddling(
    labels: np.ndarray, ras: np.ndarray, plane: OcclusalPlane, opts: InstanceOptions, voxel_mm3: float
) -> np.ndarray:
    """Cut instances lying far on both sides of the occlusal plane (upper and lower teeth fused at the bite)."""
    cut = crossed_regions(labels, ras, plane, opts, voxel_mm3)
    if not cut.any():
        return labels
    height = ras @ plane.normal - plane.height
    labels = labels.copy()
    next_label = len(cut) + 1
    for index in np.flatnonzero(cut):
        labels[(labels == index + 1) & (height < 0)] = next_label
        next_label += 1
    return labels


def split_fused_central_incisors(
    labels: np.ndarray,
    ras: np.ndarray,
    stats: RegionStats,
    assignment: Assignment,
    voxel_mm3: float,
    opts: InstanceOptions,
) -> tuple[np.ndarray, bool]:
    """An arch whose only central incisor lies across the midline holds both, fused: cut it at the midline.
    In a mixed dentition each layer (erupted, developing) is an arch of its own: the two permanent central
    incisors forming side by side above or below the primary ones fuse as the erupted pair does."""
    changed = False
    for jaw, fit in assignment.fits.items():
        members = np.flatnonzero(assignment.upper == jaw)
        layers = [members] if assignment.developing is None else [members[assignment.developing[members] == d]
                                                                    for d in (False, True)]
        for layer in layers:
            incisors = [i for i in layer if stats.main_type(i) == 0]
            if len(incisors) != 1 or abs(assignment.arch_position_mm[incisors[0]]) > opts.side_sigma_mm:
                continue
            voxels = np.flatnonzero(labels == incisors[0] + 1)
            side = numbering.arch_positions(ras[voxels], fit) > 0
            smaller = min(side.sum(), (~side).sum())
            if smaller >= MIN_HALF_SHARE * len(voxels) and smaller * voxel_mm3 >= opts.min_tooth_mm3:
                labels = labels.copy() if not changed else labels
                labels[voxels[side]] = labels.max() + 1
                changed = True
    return labels, changed


def split_wide_instances(
    labels: np.ndarray, ras: np.ndarray, assignment: Assignment, voxel_mm3: float, opts: InstanceOptions
) -> tuple[np.ndarray, bool]:
    """Cut instances much wider along the arch than a tooth at their place (neighbours of one type fused
    at a broad contact, which no neck separates) into 2 or 3 teeth, at the thinnest cross-sections.

    Width = the span of the voxels' arc positions; "a tooth at their place" = the typical crown width
    there, times the jaw's median ratio of the two (the patient's size and the span's own bias)."""
    changed = False
    mixed = assignment.developing is not None
    next_label = int(labels.max()) + 1
    members_voxels = instance_voxels(labels)
    for jaw, fit in assignment.fits.items():
        members = np.flatnonzero(assignment.upper == jaw)
        if len(members) < 4 or not fit.fitted:
            continue
        voxels = [members_voxels[m] for m in members]
        spans = np.array([arch_span(v, ras, fit) for v in voxels])
        expected = numbering.expected_width_mm(assignment.arch_position_mm[members], bool(jaw))
        ratio = spans / expected / jaw_span_ratio(spans, expected)
        for member_voxels, r in zip(voxels, ratio, strict=True):
            if r < opts.wide_ratio:
                continue
            # The wider, the surer it is fused: a shallower dip is then taken for the contact.
            dip = min(opts.contact_dip + 0.1 * (r - opts.wide_ratio), 0.9)
            arc = numbering.arch_positions(ras[member_voxels], fit)
            # A child's primary teeth are narrower than the permanent widths r is taken against: round up.
            most = int(np.clip(np.ceil(r) if mixed else np.round(r), 2, 3))
            share = MIN_PART_SHARE_MIXED if mixed else MIN_PART_SHARE
            parts = _parts_along_arch(arc, most, dip, max(opts.min_tooth_mm3 / voxel_mm3, share * len(arc)))
            if parts is None:
                continue
            sizes = np.bincount(parts)
            labels = labels if changed else labels.copy()
            for part in range(1, len(sizes)):
                labels[member_voxels[parts == part]] = next_label
                next_label += 1
            changed = True
    return labels, changed


def split_across_bite(
    labels: np.ndarray, ras: np.ndarray, assignment: Assignment, voxel_mm3: float, opts: InstanceOptions
) -> tuple[np.ndarray, bool]:
    """A child's scan only (mixed numbering ran): cut an instance at a neck across the bite, within
    ``BITE_WINDOW_MM`` of the occlusal plane, where a tooth of each jaw (each at least ``min_tooth_mm3``) are
    fused. A resorbing upper primary incisor sits on the plane, on the tip of the lower incisor that
    overlaps it, too near the plane and too small for :func:`cut_straddling`."""
    if assignment.developing is None:
        return labels, False
    height = ras @ assignment.normal - assignment.plane_offset
    smallest = opts.min_tooth_mm3 / voxel_mm3
    changed, next_label = False, int(labels.max()) + 1
    for m, voxels in enumerate(instance_voxels(labels)):
        h = height[voxels]
        if len(h) < 2 * smallest or h.max() <= 0 or h.min() >= 0:
            continue
        cut = neck_across(h, opts.contact_dip)
        if cut is None or min((h > cut).sum(), (h < cut).sum()) < smallest:
            continue
        if np.median(h[h > cut]) <= 0 or np.median(h[h < cut]) >= 0:
            continue  # both parts in one jaw: a crown and its root, not two teeth
        labels = labels if changed else labels.copy()
        # The part on the far side of the plane from the instance's bulk is the other jaw's tooth.
        far = h < cut if assignment.upper[m] else h > cut
        labels[voxels[far]] = next_label
        next_label += 1
        changed = True
    return labels, changed


def neck_across(height: np.ndarray, dip: float, bin_mm: float = 0.25) -> float | None:
    """The height of the deepest neck (local minimum of the voxels per height bin, at most ``dip`` x the
    peaks on both sides) within ``BITE_WINDOW_MM`` of the plane (height 0), or None."""
    necks = _necks(height, dip, -BITE_WINDOW_MM, BITE_WINDOW_MM, bin_mm)
    return float(min(necks)[1]) if necks else None


def instance_voxels(labels: np.ndarray) -> list[np.ndarray]:
    """The voxel indices of each instance: entry m holds label m + 1's."""
    count = int(labels.max()) + 1
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(count + 1))
    return [order[bounds[m + 1] : bounds[m + 2]] for m in range(count - 1)]


def _necks(values: np.ndarray, dip: float, lo: float, hi: float, bin_mm: float) -> list[tuple[float, float]]:
    """(depth, centre) of each neck of a 1-D voxel cloud between ``lo`` and ``hi``: a local minimum of the
    smoothed voxels per bin at most ``dip`` x the peaks on both sides (depth = that ratio)."""
    edges = np.arange(values.min(), values.max() + 2 * bin_mm, bin_mm)
    counts = ndi.gaussian_filter1d(np.histogram(values, edges)[0].astype(float), 2.0)
    centres = (edges[:-1] + edges[1:]) / 2
    necks = []
    for c in range(1, len(counts) - 1):
        if lo <= centres[c] <= hi and counts[c] <= counts[c - 1] and counts[c] <= counts[c + 1]:
            depth = counts[c] / max(min(counts[:c].max(), counts[c + 1 :].max()), 1e-6)
            if depth <= dip:
                necks.append((depth, centres[c]))
    return necks


def jaw_span_ratio(spans: np.ndarray, expected: np.ndarray) -> float:
    """A jaw's median ratio of its teeth's spans along the arch to their typical widths, kept to 0.6-1.5: the
    patient's size and the span's own bias, what a tooth's span is compared with."""
    return float(np.clip(np.median(np.asarray(spans) / np.asarray(expected)), 0.6, 1.5))


def arch_span(voxels: np.ndarray, ras: np.ndarray, fit: numbering.ArchFit) -> float:
    """Extent along the arch ``fit`` of the voxels ``voxels`` (indices into ``ras``), from a sample of them (mm)."""
    return _span(numbering.arch_positions(ras[voxels[:: max(1, len(voxels) // SPAN_SAMPLE)]], fit))


def _span(arc: np.ndarray) -> float:
    """Extent along the arch, robust to stray voxels: 3rd to 97th percentile."""
    return float(np.percentile(arc, 97) - np.percentile(arc, 3))


def _parts_along_arch(arc: np.ndarray, most: int, dip: float, smallest: float) -> np.ndarray | None:
    """:func:`cut_along_arch` into ``most`` parts, else fewer (down to 2), the first whose every part holds
    ``smallest`` voxels: three fused teeth whose third is only a sliver are still two teeth. None: no cut."""
    for k in range(most, 1, -1):
        parts = cut_along_arch(arc, k, dip)
        sizes = np.bincount(parts)
        if len(sizes) >= 2 and sizes.min() >= smallest:
            return parts
    return None


def cut_along_arch(arc: np.ndarray, k: int, dip: float, bin_mm: float = 0.25, min_gap_mm: float = 3.0) -> np.ndarray:
    """Part index of each voxel, cut at up to k-1 contacts: local minima of the voxels per arc-length bin
    (inside the 12-88 % quantiles) at most ``dip`` x the peaks on both sides, deepest first, ``min_gap_mm``
    apart. All zeros when no contact is seen."""
    lo, hi = np.quantile(arc, [0.12, 0.88])
    cuts: list[float] = []
    for _depth, centre in sorted(_necks(arc, dip, lo, hi, bin_mm)):
        if len(cuts) < k - 1 and all(abs(centre - other) >= min_gap_mm for other in cuts):
            cuts.append(centre)
    return np.digitize(arc, np.sort(cuts)) if cuts else np.zeros(len(arc), dtype=int)
