"""Single teeth from the networks' probabilities: split touching teeth, one type per tooth, FDI numbers.

Steps of :func:`label_teeth` (all geometry in RAS millimetres, spacing = column norms of ijk_to_ras):

1. Foreground = probability > threshold, specks below ``min_speck_mm3`` dropped, cropped to its box
   (:mod:`foreground`).
2. Markers = connected "cores" (deeper than ``core_mm`` inside the foreground) of one smoothed argmax
   type each: touching neighbours of different types are split by the type boundary, touching
   neighbours of the same type (11 and 21) by the thin neck where their cores separate (:mod:`watershed`).
   A tooth-sized set of one type without a core that would drain only into teeth of another class (a
   premolar's root beside a canine, its restored crown called background) gets a marker of its own.
3. Every foreground voxel follows the steepest ascent of the distance map to a marker (a drainage
   watershed, vectorised with pointer jumping); voxels that reach none take a labelled neighbour's label.
4. Regions that are one tooth are merged (:mod:`merge`): fragments too small to be a tooth go to the
   neighbour they touch most, and neighbours whose common boundary is nearly as deep as the shallower
   one's centre (no neck between them) become one.
5. Each region's type is the vote of its mean type probabilities; an instance that straddles the
   occlusal plane (:mod:`occlusal`; an upper and a lower tooth fused at the bite) is cut by the plane.
6. :mod:`numbering` numbers the teeth (jaws, arch, midline, dynamic programme).
7. Instances far wider along the arch than a tooth at their place (neighbours of one type fused at a
   broad contact) are cut at their thinnest cross-sections (:mod:`fused`), and the teeth are numbered again.
   In a child's scan, also a resorbing upper primary incisor fused to the tip of a lower incisor (cut at
   their neck across the bite) and permanent central incisors fused in their crypts.
8. Unnumbered pieces beside a numbered tooth, at its place along the arch, join it (:mod:`pieces`), and so
   do roots parted from a numbered tooth by a thin gap; what still has no number is kept as an unnumbered
   tooth (label 100, 101, ...). A lateral incisor or canine that forks apically into its own root and one typed
   as its mesial neighbour gives that root back (:mod:`neighbour_roots`: crowded incisors' roots fused).
9. A child's scan (the mixed numbering ran) goes through steps 3-8 once more, with a marker added in each
   unmarked region of one incisor or canine type: a resorbing primary lateral incisor's core is too small
   for a marker of its own, and it drained into the teeth beside it. The second pass stands only if it leaves
   no more instances unnumbered than the first (a new region that gets no number was no tooth).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from TeethSegmentationLib.events import NullReporter, Reporter
from TeethSegmentationLib.fdi import (
    NUM_CLASSES,
    NUM_CLASSES_MIXED,
    PRIMARY_CLASS_OFFSET,
    UNNUMBERED_LABEL_BASE,
    UNNUMBERED_LABEL_MAX,
    is_primary,
    unnumbered_label,
    unnumbered_name,
)
from TeethSegmentationLib.instances import confidence, fused, mixed, numbering
from TeethSegmentationLib.instances.foreground import (
    SparseForeground,
    foreground_mask,
    gather_types,
    smoothed_argmax,
    sparse_foreground,
)
from TeethSegmentationLib.instances.merge import adjacency, merge_regions
from TeethSegmentationLib.instances.neighbour_roots import return_neighbour_roots
from TeethSegmentationLib.instances.numbering import Assignment
from TeethSegmentationLib.instances.occlusal import OcclusalPlane, find_occlusal_plane
from TeethSegmentationLib.instances.options import InstanceOptions
from TeethSegmentationLib.instances.pieces import join_parted_roots, join_pieces, join_stacked
from TeethSegmentationLib.instances.regions import RegionStats, apex_skew, label_sums, region_peaks, region_stats
from TeethSegmentationLib.instances.watershed import (
    drain,
    markers,
    other_class_markers,
    steepest_ascent,
    unmarked_markers,
)

# With a 14-class model: a resorbed lower primary incisor holds 40-50 mm3, a fifth of a child's median tooth.
CHILD_SIZES = {"min_tooth_mm3": 20.0, "fragment_fraction": 0.1}
# A child's scan is split again with a marker in each unmarked region of these classes (permanent and primary
# incisors and canines): small, resorbing anterior teeth too shallow for a core (watershed.unmarked_markers).
# Molars are left out: their unmarked type regions are corners of bigger teeth (dev children: all 13 classes
# made 3 of 21 scans worse, these six 1).
ANTERIOR_CLASSES = (1, 2, 3, PRIMARY_CLASS_OFFSET + 1, PRIMARY_CLASS_OFFSET + 2, PRIMARY_CLASS_OFFSET + 3)
# The second pass keeps the first pass's occlusal plane when its own regions move it more than this at the teeth's
# centre: new small regions in the bite moved two 6-year-olds' by 5-6 mm (dev seeds 46003, 46006), while where the
# new plane was the better one it had moved under 1 mm (dev seed 46012, 8.5 years).
PLANE_SHIFT_MM = 3.0


@dataclass
class ToothInstance:
    fdi: int
    type: int
    confidence: float  # calibrated probability that the number and outline are right, 0..1 (:mod:`confidence`)
    voxel_count: int
    centroid_ras: tuple[float, float, float]
    instance_id: int = 0  # value in InstanceResult.instance_map
    volume_mm3: float = 0.0
    type_probabilities: tuple[float, ...] = ()  # mean over the tooth of types 1..8, normalised
    jaw: str = ""  # "upper" or "lower"
    arch_position_mm: float = 0.0  # signed arc length from the midline, + towards the patient's right
    label: int = 0  # value in InstanceResult.fdi_map: the FDI number, or fdi.unnumbered_label(k)
    numbered: bool = True  # False: a tooth that could not get a free FDI number (fdi 0)
    features: tuple[float, ...] = ()  # confidence.FEATURES, what the confidence is calibrated from
    developing: bool = False  # a permanent tooth still in its crypt (mixed dentition, see instances.mixed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InstanceResult:
    fdi_map: np.ndarray  # uint8 [i, j, k], 0 background, FDI numbers, unnumbered teeth 100, 101, ...
    teeth: list[ToothInstance]  # numbered teeth, sorted by FDI number
    instance_map: np.ndarray | None = None  # uint16 [i, j, k], every instance
    unassigned: list[ToothInstance] = field(default_factory=list)  # unnumbered teeth (fdi 0), in label order
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class _Pass(NamedTuple):
    """One pass from the watershed's regions to numbered teeth (:func:`_teeth`)."""

    labels: np.ndarray
    stats: RegionStats
    assignment: Assignment
    loose: int  # instances left unnumbered before parted roots joined their teeth (the second pass's guard)
    plane: OcclusalPlane


@dataclass
class _Voxels:
    """What the numbering needs of the compact foreground voxels."""

    types: np.ndarray  # (N, 8) type probabilities (with a 14-class model: permanent + primary of each place)
    fg: np.ndarray  # (N,) foreground probability
    ras: np.ndarray  # (N, 3) RAS mm
    smooth_type: np.ndarray  # (N,) smoothed argmax type (foreground.smoothed_argmax)
    both: np.ndarray | None = None  # (N, 13): a 14-class model's permanent and primary types side by side


def label_teeth(
    teeth_prob: np.ndarray,
    type_probs: np.ndarray,
    ijk_to_ras: np.ndarray,
    reporter: Reporter | None = None,
    options: InstanceOptions | None = None,
    log_warnings: bool = True,
    contacts: np.ndarray | None = None,
) -> InstanceResult:
    """FDI-numbered teeth from a foreground probability [i,j,k] and a 9-class softmax [9,i,j,k] on one grid
    (or a 14-class one [14,i,j,k] whose classes 9..13 are the primary types: see :mod:`mixed`). ``contacts``
    (the contacts network's probability [i,j,k], when the model has one) marks where two teeth touch: no marker
    core reaches into a contact, and two regions that meet at one are not one tooth for want of a neck.

    The warnings are in the result and, unless ``log_warnings`` is False (a caller that logs them itself),
    logged through ``reporter``."""
    opts = options or InstanceOptions()
    if len(np.shape(type_probs)) == 4 and len(type_probs) == NUM_CLASSES_MIXED and options is None:
        opts = replace(opts, **CHILD_SIZES)  # a child's teeth: resorbed primary incisors are teeth, not fragments
    reporter = reporter or NullReporter()
    teeth_prob, type_probs, affine = _check_inputs(teeth_prob, type_probs, ijk_to_ras)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    mask = foreground_mask(teeth_prob, opts.threshold, _voxels(opts.min_speck_mm3, voxel_mm3))
    if mask is None:
        return _empty(teeth_prob.shape, ["No teeth were found (no foreground above the threshold)."])
    # A worker works out the distance map and the ascent on it while this thread gathers and smooths the types
    # and then finds the markers (scipy and numpy let go of the GIL): the two take about as long.
    with ThreadPoolExecutor(1) as pool:
        touching = None if contacts is None else _contacts(contacts, teeth_prob.shape, opts.contact_threshold)
        sparse = sparse_foreground(mask, spacing, pool, touching)
        ascent = pool.submit(steepest_ascent, sparse, spacing)
        timings["foreground"] = _lap(clock)
        reporter.progress("instances", 0.1, "splitting touching teeth")
        types, both = _voxel_types(type_probs, sparse)
        smooth_type = smoothed_argmax(type_probs, sparse, spacing, opts.smooth_mm)
        marker_labels = markers(sparse, smooth_type, opts, _voxels(opts.min_marker_mm3, voxel_mm3))
        ascent = ascent.result()
    regions = drain(sparse, marker_labels, spacing, ascent.copy())
    more = other_class_markers(sparse, smooth_type, marker_labels, regions, _voxels(opts.min_tooth_mm3, voxel_mm3))
    if more.max(initial=0) > marker_labels.max(initial=0):  # a tooth that lost its core: drained again
        marker_labels, regions = more, drain(sparse, more, spacing, ascent.copy())
    fg = teeth_prob.reshape(-1)[sparse.input_flat(teeth_prob.shape)].astype(np.float32)
    voxels = _Voxels(types, fg, sparse.ras_points(affine), smooth_type, both)
    timings["split"] = _lap(clock)
    reporter.progress("instances", 0.5, "merging fragments")
    first = _teeth(regions, sparse, voxels, opts, voxel_mm3, spacing, reporter)
    if first.assignment.developing is not None:  # a child's scan: numbered again with its small anterior teeth marked
        first = _child_pass(first, sparse, smooth_type, marker_labels, ascent, voxels, opts, voxel_mm3, spacing,
                            reporter)
    else:
        adult = (options or InstanceOptions()).min_tooth_mm3  # the caller's, or an adult's: not a child's
        first = _without_lone_specks(first, sparse, voxels, opts, voxel_mm3, adult)
    labels, stats, assignment = first.labels, first.stats, first.assignment
    result = _result(teeth_prob.shape, sparse, labels, stats, assignment, voxel_mm3)
    timings["number"] = _lap(clock)
    result.timings = timings
    for message in result.warnings if log_warnings else []:
        reporter.log(message, "warning")
    reporter.progress("instances", 1.0, f"{len(result.teeth)} teeth numbered")
    return result


def _without_lone_specks(
    first: _Pass, sparse: SparseForeground, voxels: _Voxels, opts: InstanceOptions, voxel_mm3: float,
    min_tooth_mm3: float,
) -> _Pass:
    """An adult's scan (numbered as one) without its instances under ``min_tooth_mm3`` that touch no other
    instance, numbered again; a warning says where each one was. A 14-class model splits every scan with a
    child's sizes (a resorbed primary incisor is a tooth), but no adult tooth is that small: on the 64 adult dev
    scans the only such instances were fragments of implants, numbered as the missing tooth beside them."""
    labels, stats = first.labels, first.stats  # stats' rows 0..n-1: labels 1..n
    volume = stats.count * voxel_mm3
    small = set((np.flatnonzero(volume < min_tooth_mm3) + 1).tolist())
    if not small:
        return first
    touching = {label for pair in adjacency(labels, sparse) for label in pair}
    lone = sorted(small - touching)
    if not lone:
        return first
    messages = [
        f"A speck of {volume[label - 1]:.0f} mm3 near RAS {_ras_point(stats.centroid[label - 1])}, smaller than an "
        "adult's tooth and touching none, was left out." for label in lone
    ]
    kept = np.where(np.isin(labels, lone), 0, labels)
    labels = np.unique(kept, return_inverse=True)[1].astype(labels.dtype)  # kept holds 0 now, which stays 0
    stats, assignment = _number(labels, voxels, first.plane, opts)
    assignment.warnings.extend(messages)
    return first._replace(labels=labels, stats=stats, assignment=assignment)


def _ras_point(point: np.ndarray) -> tuple[float, float, float]:
    """A RAS point as the report gives it (mm, to the micrometre)."""
    return tuple(round(float(c), 3) for c in point)


def _contacts(contacts: np.ndarray, shape: tuple[int, ...], threshold: float) -> np.ndarray:
    """The voxels the contacts network puts between two teeth."""
    contacts = np.asarray(contacts)
    if contacts.shape != tuple(shape):
        raise ValueError(f"contacts {contacts.shape} and foreground {tuple(shape)} are not on one grid")
    return contacts > threshold


def _child_pass(
    first: _Pass, sparse: SparseForeground, smooth_type: np.ndarray, marker_labels: np.ndarray, ascent: np.ndarray,
    voxels: _Voxels, opts: InstanceOptions, voxel_mm3: float, spacing: np.ndarray, reporter: Reporter,
) -> _Pass:
    """A child's scan split and numbered again with a marker in each unmarked anterior type region: first with
    each jaw's regions apart (upper and lower primary lateral incisors touch across the bite, are typed alike and
    only the upper one has a core), where two arches were found; then, if that leaves more instances unnumbered
    than the first pass (``first``, what :func:`_teeth` returned), with the regions whole. The first of these
    that does not stands; else ``first``. Both keep the first pass's occlusal plane where theirs moved far
    (PLANE_SHIFT_MM)."""
    assignment = first.assignment
    upper = voxels.ras @ assignment.normal > assignment.plane_offset
    for jaw in (upper, None) if assignment.two_arches else (None,):
        child_markers = unmarked_markers(sparse, smooth_type, marker_labels, ANTERIOR_CLASSES,
                                         _voxels(opts.min_tooth_mm3, voxel_mm3), jaw)
        if child_markers.max(initial=0) == marker_labels.max(initial=0):
            continue
        again = _teeth(drain(sparse, child_markers, spacing, ascent.copy()), sparse, voxels, opts, voxel_mm3, spacing,
                       reporter, first.plane)
        if again.loose <= first.loose:  # a new region left unnumbered was no tooth
            return again
    return first


def _teeth(
    labels: np.ndarray,
    sparse: SparseForeground,
    voxels: _Voxels,
    opts: InstanceOptions,
    voxel_mm3: float,
    spacing: np.ndarray,
    reporter: Reporter,
    plane: OcclusalPlane | None = None,
) -> _Pass:
    """From the watershed's regions to numbered teeth: merge, cut across the bite, number, cut fused teeth,
    join parts, give neighbours' roots back, numbering again after each change. Also returns how many instances
    were left unnumbered before parted roots joined their teeth (the second pass's guard counts new regions that
    got no number, and a region that joins a tooth as its root still got none) and the occlusal plane, found from
    the regions unless ``plane`` is given (the first pass's) and the regions' own moved more than
    ``PLANE_SHIFT_MM`` at the teeth's centre."""
    ras = voxels.ras
    peak = region_peaks(labels, sparse.dist)
    found = find_occlusal_plane(labels, ras, peak)
    if voxels.both is not None:
        found = mixed.child_plane(found, labels, ras, voxels.both, opts, voxel_mm3)
    plane = found if plane is None or not _moved(plane, found, ras) else plane
    types = voxels.types if voxels.both is None else voxels.both
    labels = merge_regions(labels, sparse, types, ras, plane, opts, voxel_mm3, spacing, peak)
    if plane.two_arches:
        labels = fused.cut_straddling(labels, ras, plane, opts, voxel_mm3)
    stats, assignment = _number(labels, voxels, plane, opts)
    reporter.progress("instances", 0.8, "numbering")
    labels, split = fused.split_fused_central_incisors(labels, ras, stats, assignment, voxel_mm3, opts)
    if split:
        stats, assignment = _number(labels, voxels, plane, opts)
    labels, split = fused.split_wide_instances(labels, ras, assignment, voxel_mm3, opts)
    if split:
        stats, assignment = _number(labels, voxels, plane, opts)
    labels, split = fused.split_across_bite(labels, ras, assignment, voxel_mm3, opts)
    if split:
        stats, assignment = _number(labels, voxels, plane, opts)
    # Loose pieces join their teeth before the stacked joins too: a join frees a number, and the renumbering
    # would give it to a piece still beside its tooth (a premolar's cusp; every tooth behind it moved one).
    labels, joined = join_pieces(labels, sparse, assignment, ras)
    if joined:
        stats, assignment = _number(labels, voxels, plane, opts)
    labels, joined = join_stacked(labels, sparse, ras, assignment)
    if joined:
        stats, assignment = _number(labels, voxels, plane, opts)
    labels, joined = join_pieces(labels, sparse, assignment, ras)
    if joined:
        stats, assignment = _number(labels, voxels, plane, opts)
    loose = _unnumbered(assignment)
    labels, joined = join_parted_roots(labels, sparse, ras, spacing, assignment)
    if joined:
        stats, assignment = _number(labels, voxels, plane, opts)
    labels, moved = return_neighbour_roots(labels, sparse, ras, assignment, voxels.smooth_type, voxel_mm3)
    if moved:
        stats, assignment = _number(labels, voxels, plane, opts)
    return _Pass(labels, stats, assignment, loose, plane)


def _moved(plane: OcclusalPlane, found: OcclusalPlane, ras: np.ndarray) -> bool:
    """Whether ``found`` lies more than PLANE_SHIFT_MM from ``plane`` at the teeth's centre."""
    centre = ras.mean(axis=0)
    return bool(abs((centre @ found.normal - found.height) - (centre @ plane.normal - plane.height)) > PLANE_SHIFT_MM)


def _voxel_types(type_probs: np.ndarray, sparse: SparseForeground) -> tuple:
    """(types, both) of the compact voxels: the statistics see each place's type (a 14-class model's permanent +
    primary); ``both`` (None with 9 classes) keeps its 13 types apart, for the splits and merges (a primary tooth
    and its successor beneath it) and the numbering (instances.mixed). Columns are contiguous (gather_types)."""
    if len(type_probs) != NUM_CLASSES_MIXED:
        return gather_types(type_probs, sparse), None
    both = gather_types(type_probs, sparse, 1, NUM_CLASSES_MIXED)
    merged = both[:, :PRIMARY_CLASS_OFFSET].copy(order="F")
    merged[:, : NUM_CLASSES_MIXED - 1 - PRIMARY_CLASS_OFFSET] += both[:, PRIMARY_CLASS_OFFSET:]
    return merged, both


def _number(
    labels: np.ndarray, voxels: _Voxels, plane: OcclusalPlane, opts: InstanceOptions
) -> tuple[RegionStats, Assignment]:
    """The regions' statistics and their FDI numbers."""
    stats = region_stats(labels, voxels.types, voxels.fg, voxels.ras)
    stats.skew = apex_skew(labels, voxels.ras, plane.normal)
    skew = stats.skew
    if voxels.both is None:
        return stats, numbering.assign_fdi(stats.centroid, stats.types, skew, opts.side_sigma_mm, plane.known())
    n = len(stats.count) + 1
    sums = label_sums(labels, voxels.both, n)[1:]
    sums /= np.maximum(sums.sum(axis=1, keepdims=True), 1e-6)
    perm, prim = sums[:, :8], sums[:, 8:]
    extent = mixed.extents(labels, voxels.ras, plane.normal)
    axis = mixed.long_axis_normal(labels, voxels.ras, plane.normal) if mixed.is_mixed(perm, prim) else None
    return stats, mixed.assign_teeth(stats.centroid, perm, skew, opts.side_sigma_mm, plane.known(), prim, extent, axis,
                                     stats.count)


def _unnumbered(assignment: Assignment) -> int:
    return int(np.count_nonzero(np.asarray(assignment.fdi) == 0))


def _voxels(mm3: float, voxel_mm3: float) -> int:
    return max(1, int(round(mm3 / voxel_mm3)))


def _lap(start: float) -> float:
    return round(time.perf_counter() - start, 4)


def _check_inputs(teeth_prob: Any, type_probs: Any, ijk_to_ras: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    teeth_prob = np.asarray(teeth_prob)
    type_probs = np.asarray(type_probs)
    affine = np.asarray(ijk_to_ras, dtype=np.float64)
    if teeth_prob.ndim != 3:
        raise ValueError(f"teeth_prob must be a 3-D array [i, j, k], not shape {teeth_prob.shape}.")
    if type_probs.shape[1:] != teeth_prob.shape or len(type_probs) not in (NUM_CLASSES, NUM_CLASSES_MIXED):
        raise ValueError(
            f"type_probs must have shape (9 or 14, {', '.join(map(str, teeth_prob.shape))}), not {type_probs.shape}."
        )
    if affine.shape != (4, 4) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError("ijk_to_ras must be an invertible 4x4 matrix.")
    return teeth_prob, type_probs, affine


def _empty(shape: tuple[int, ...], warnings: list[str]) -> InstanceResult:
    return InstanceResult(np.zeros(shape, np.uint8), [], np.zeros(shape, np.uint16), [], warnings)


def _result(
    shape: tuple[int, ...],
    sparse: SparseForeground,
    labels: np.ndarray,
    stats: RegionStats,
    assignment: Assignment,
    voxel_mm3: float,
) -> InstanceResult:
    index = sparse.input_flat(shape)
    instance_map = np.zeros(shape, dtype=np.uint16)
    instance_map.reshape(-1)[index] = labels
    assigned = np.where(assignment.fdi > 0, assignment.fdi % 10, np.argmax(stats.types, axis=1) + 1)
    agreement = stats.skew * np.where(assignment.upper, 1.0, -1.0)  # > 0: the roots point the jaw's way
    features = confidence.tooth_features(stats.types, stats.fg, stats.count, assigned.astype(int), agreement)
    scores = confidence.calibrated(features)
    teeth = [_tooth(i, int(fdi), stats, assignment, voxel_mm3, float(scores[i]), features[i])
             for i, fdi in enumerate(assignment.fdi)]
    unnumbered = sorted((t for t in teeth if not t.fdi), key=lambda t: (t.jaw != "upper", -t.arch_position_mm))
    warnings = list(assignment.warnings) + _label_unnumbered(unnumbered)
    lut = np.zeros(len(stats.count) + 1, dtype=np.uint8)
    for tooth in teeth:
        lut[tooth.instance_id] = tooth.label
    fdi_map = np.zeros(shape, dtype=np.uint8)
    fdi_map.reshape(-1)[index] = lut[labels]
    numbered = sorted((t for t in teeth if t.fdi), key=lambda t: t.fdi)
    return InstanceResult(fdi_map, numbered, instance_map, [t for t in unnumbered if t.label], warnings)


def _label_unnumbered(unnumbered: list[ToothInstance]) -> list[str]:
    """Unnumbered teeth k = 1, 2, ... get label values fdi.unnumbered_label(k); the warnings that say so.

    Numbering runs after the fragment merges, so an instance left over here is a whole object
    (supernumerary or retained tooth, a second piece of a tooth, implant, false positive) that has no free
    permanent FDI number. Merging it would spoil a correctly outlined neighbour; dropping it would lose a
    tooth silently. It stays in the label map under its own value, for the user to number or delete."""
    warnings = []
    for k, tooth in enumerate(unnumbered, start=1):
        tooth.numbered = False
        if k > UNNUMBERED_LABEL_MAX - UNNUMBERED_LABEL_BASE + 1:
            warnings.append(f"A {tooth.jaw} tooth-like object near RAS {tooth.centroid_ras} was left out of the "
                            "label map: there are no more label values for unnumbered teeth.")
            continue
        tooth.label = unnumbered_label(k)
        warnings.append(
            f"A {tooth.jaw} tooth-like object ({tooth.volume_mm3:.0f} mm3, type {tooth.type}) near RAS "
            f"{tooth.centroid_ras} could not be given a free FDI number; it is kept as "
            f"'{unnumbered_name(tooth.label)}' (label {tooth.label})."
        )
    return warnings


def _tooth(
    i: int, fdi: int, stats: RegionStats, assignment: Assignment, voxel_mm3: float, score: float,
    features: np.ndarray,
) -> ToothInstance:
    type_ = fdi % 10 if fdi else stats.main_type(i) + 1
    developing = assignment.developing is not None and bool(assignment.developing[i]) and fdi and not is_primary(fdi)
    return ToothInstance(
        fdi=fdi,
        type=type_,
        confidence=round(score, 4),
        voxel_count=int(stats.count[i]),
        centroid_ras=_ras_point(stats.centroid[i]),
        instance_id=i + 1,
        volume_mm3=round(float(stats.count[i] * voxel_mm3), 2),
        type_probabilities=tuple(round(float(p), 4) for p in stats.types[i]),
        jaw="upper" if assignment.upper[i] else "lower",
        arch_position_mm=round(float(assignment.arch_position_mm[i]), 2),
        label=fdi,
        features=tuple(round(float(f), 4) for f in features),
        developing=bool(developing),
    )
