"""FDI numbers for a mixed dentition: primary teeth, erupted permanent teeth and permanent teeth still
developing in their crypts, from per-instance summaries (like :mod:`numbering`).

:func:`assign_teeth` is the entry point. The mixed rules run only with a 14-class model (``primary_probs``
given), when at least ``MIN_PRIMARY`` instances are mostly primary or there are more instances than an adult
has teeth (``MIXED_COUNT``); otherwise :func:`numbering.assign_fdi` numbers the teeth exactly as before, so an
adult scan keeps today's labels and never gets a 5x-8x number (except a tooth the adults' numbering leaves
without a number and the network reads as primary: :func:`retained_primary`, a retained primary canine). The
adults' numbering also decides when the teeth's roots deny the two jaws the mixed rules found
(``numbering.roots_contradict``: one arch in two layers, as when network slips make an adult's upper-only scan
look like a child's).

1. Jaws: the occlusal normal comes from the teeth's long axes (:func:`long_axis_normal`; refitted to the
   primary teeth when there are ``MIN_LAYER`` of them, for the numbering to the primary molars alone, unless
   that turns it by more than ``MAX_REFIT_TURN_DEG``), and the plane lies in the widest, most even gap (by the
   regions' sizes) between the centroids of the primary teeth (always erupted), else of all teeth
   (:func:`split_layers`); the same rule places the plane for the merges and cuts (:func:`child_plane`), its tilt
   refitted to all primary teeth. An erupted tooth on the plane that
   sits on top of an erupted tooth of its jaw goes to the other jaw when that has room there
   (:func:`settle_crowded`: an upper primary incisor over the lower incisors by its overbite).
2. Developing: a permanent tooth in its crypt has its occlusal end (crown tip) deep in the bone, more than
   ``DEVELOPING_DEPTH_MM`` beyond its jaw's occlusal level. The level is a low quantile of the depths of
   the jaw's crown tips, so the erupted teeth set it even at 6 years, when half the teeth are still
   forming; an erupting tooth (tip a few mm short of the level) counts as erupted, unless it erupts beneath
   another erupted tooth of its jaw at the same place (:func:`beneath_another`: its tip or its centroid much
   deeper) and the network reads it as permanent: a successor still behind its predecessor, or a germ whose
   region took a sliver of it. (Read as primary, it is rather a piece of that tooth.)
3. Erupted layer: the arch is fitted through the erupted teeth, which the adults' dynamic programme
   aligns to the 16 places with each place's probability = its permanent + its primary type's (a primary
   second molar holds the second premolar's place, in front of the first permanent molar). No third molar
   has erupted in a child's mouth: that type's probability on an erupted tooth counts for the primary second
   molar, which looks like a permanent molar.
4. Developing layer: projected onto the same arch and aligned to the permanent places that no erupted
   molar holds, by the place along the arch and the types: a premolar under a primary molar, a canine above
   or below the primary canine, a second molar behind the first. A forming "third molar" with no second
   molar in front of it is the second molar (:func:`second_molars_first`). Depth separates them from the erupted teeth
   above them, the place along the arch numbers them. A deep piece read as a primary incisor or canine is no
   germ but a primary tooth's root: it gets no number here.
5. Primary or permanent: an erupted tooth at places 1-5 is primary when a forming tooth shares its place
   (its successor beneath it) or when its primary probability outweighs the permanent one. The successor
   decides where the network cannot: a primary incisor differs from a permanent one mostly in size.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from TeethSegmentationLib.fdi import PRIMARY_TYPES, fdi_from
from TeethSegmentationLib.instances import numbering
from TeethSegmentationLib.instances.numbering import Assignment
from TeethSegmentationLib.instances.occlusal import OcclusalPlane, crossed_regions, roots_deny
from TeethSegmentationLib.instances.options import InstanceOptions
from TeethSegmentationLib.instances.regions import label_sums

# Instances mostly primary before the scan is read as a child's: an adult family-B upper-only scan had three
# (a 12-year-old with two primary teeth left is numbered as an adult, those two as permanent ones).
MIN_PRIMARY = 4
MIN_LAYER = 8  # primary teeth that can refit the plane's tilt on their own (fewer: the long axes' tilt stands)
# The long axes give the normal within 2-11 degrees in the phantoms' children. A refit to the primary teeth that
# turns it further has fitted a few teeth's heights, not the bite: 4 + 5 primary teeth of dev 6-year-olds
# turned it 27-38 degrees and sent the back of the lower arch to the upper jaw.
MAX_REFIT_TURN_DEG = 12.0
# The numbering's refit takes the tilt from the primary molars when there are this many: the bite is a plane only
# at the back (the functional occlusal plane runs through the molars' contacts), while the incisors and canines
# overlap by their overbite and, fused across it in one instance, drew a 6-year-old's plane 14 degrees off (dev
# 46110: both upper primary central incisors numbered as lower ones). Molars alone: dev children 32 -> 25 wrong;
# canines with them: 32 -> 35 (their cusps overlap in the bite too).
MIN_POSTERIOR = 4
MIXED_COUNT = 36  # instances: 32 permanent teeth and a few pieces or supernumeraries are still an adult
DEVELOPING_DEPTH_MM = 4.0
SUCCESSOR_MM = 5.0  # a retained primary tooth and its impacted successor lie this near along the arch
# A retained primary tooth that the network reads half as permanent still holds this share of its type
# probability as primary (a 12-year-old dev child's retained lower primary molars: 0.28-0.50); every tooth of
# the 14 adult dev scans held at most 0.17.
RETAINED_SHARE = 0.2
LEVEL_QUANTILE = 0.25


def is_mixed(type_probs: np.ndarray, primary_probs: np.ndarray | None) -> bool:
    """Whether at least MIN_PRIMARY instances are mostly primary (their primary probabilities sum past half),
    or there are more instances than an adult has teeth (``MIXED_COUNT``: a mixed dentition holds up to 48,
    primary teeth over their forming successors). Only a 14-class model (``primary_probs`` given) reads a
    scan as a child's."""
    if primary_probs is None or len(primary_probs) == 0:
        return False
    if len(primary_probs) >= MIXED_COUNT:
        return True
    primary = np.asarray(primary_probs, dtype=np.float64).sum(axis=1)
    permanent = np.asarray(type_probs, dtype=np.float64).sum(axis=1)
    return int(np.count_nonzero(primary > permanent)) >= MIN_PRIMARY


def assign_teeth(
    centroids: np.ndarray,
    type_probs: np.ndarray,
    apex_skew: np.ndarray,
    side_sigma_mm: float = 2.5,
    plane: tuple[np.ndarray, float] | None = None,
    primary_probs: np.ndarray | None = None,
    extent: np.ndarray | None = None,
    axis_normal: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
) -> Assignment:
    """FDI numbers of N instances: the adults' :func:`numbering.assign_fdi`, or the mixed dentition's rules.

    ``type_probs`` (N, 8) and ``primary_probs`` (N, 5): mean probabilities of the permanent and primary types;
    ``extent`` (N, 2): the lowest and highest height of each instance's voxels along the occlusal normal (mm);
    ``axis_normal``: the occlusal normal from the teeth's long axes (:func:`long_axis_normal`; mixed rules only);
    ``sizes``: the instances' voxel counts, which weigh the layers that part the jaws (:func:`split_layers`).
    """
    if extent is None or not is_mixed(type_probs, primary_probs):
        found = numbering.assign_fdi(centroids, type_probs, apex_skew, side_sigma_mm, plane)
        no_primary = primary_probs is None or extent is None
        return found if no_primary else retained_primary(found, type_probs, primary_probs, extent)
    found = assign_mixed(centroids, type_probs, primary_probs, apex_skew, extent, side_sigma_mm, plane, axis_normal,
                         sizes)
    if found.upper.any() and not found.upper.all() and numbering.roots_contradict(np.asarray(apex_skew), found.upper):
        return numbering.assign_fdi(centroids, type_probs, apex_skew, side_sigma_mm, None)  # one arch, two layers
    return found


def retained_primary(
    found: Assignment, type_probs: np.ndarray, primary_probs: np.ndarray, extent: np.ndarray
) -> Assignment:
    """A scan numbered as an adult's may keep a primary tooth or two: a retained primary canine over its
    impacted successor, at 12 years or for life. A tooth the adults' numbering left without a free number takes
    its primary number (jaw and side from the numbering, place from its primary types) when its primary types
    outweigh its permanent ones and its successor is numbered at its place (within ``SUCCESSOR_MM`` along the
    arch) with its crown tip more than ``DEVELOPING_DEPTH_MM`` deeper in the jaw. When they do not outweigh them
    but hold at least ``RETAINED_SHARE`` of its type probability, the place comes from its one successor: a
    retained primary molar that the network reads half as a permanent molar or premolar. A piece of an adult's
    tooth that merely looks primary has no such successor, and :mod:`pieces` joins it to its tooth."""
    fdi = np.asarray(found.fdi).copy()
    prim, perm = np.asarray(primary_probs, dtype=np.float64), np.asarray(type_probs, dtype=np.float64)
    depth = tip_depths(extent, found.upper)
    for i in np.flatnonzero(fdi == 0):
        successors = {int(fdi[j]) for j in _successors(i, fdi, found, depth)}
        if prim[i].sum() > perm[i].sum():
            side = "right" if found.arch_position_mm[i] >= 0 else "left"
            number = fdi_from(bool(found.upper[i]), side, int(np.argmax(prim[i])) + 1, primary=True)
        elif prim[i].sum() >= RETAINED_SHARE * (prim[i].sum() + perm[i].sum()) and len(successors) == 1:
            number = next(iter(successors)) + 40
        else:
            continue
        if number - 40 in successors and number not in fdi:
            fdi[i] = number
    return replace(found, fdi=fdi)


def _successors(i: int, fdi: np.ndarray, found: Assignment, depth: np.ndarray) -> np.ndarray:
    """The numbered permanent teeth of tooth i's jaw at places 1-5 within ``SUCCESSOR_MM`` of it along the arch,
    with their crown tips more than ``DEVELOPING_DEPTH_MM`` deeper in the jaw: teeth that could succeed it."""
    position = found.arch_position_mm
    return np.flatnonzero(
        (fdi > 0) & (fdi < 50) & (fdi % 10 <= len(PRIMARY_TYPES)) & (found.upper == found.upper[i])
        & (np.abs(position - position[i]) < SUCCESSOR_MM) & (depth - depth[i] > DEVELOPING_DEPTH_MM)
    )


def split_layers(heights: np.ndarray, primary: np.ndarray, sizes: np.ndarray | None = None) -> float:
    """The occlusal plane's height in a child's scan: the widest, most even gap between the centroids of the
    primary teeth (always erupted; with at least ``MIN_PRIMARY`` of them on each side), else between all
    centroids. Only the centroids: in a closed bite the crowns of the two jaws overlap in height by a few mm
    (cusps interlock, an upper incisor overlaps the lower one, a lower canine rises into the upper embrasure),
    so a plane that avoids cutting crowns can land among the upper primary molars. (A jaw's forming teeth make
    a layer of their own; the bone between it and the erupted teeth dips the voxels' profile as the bite does,
    so the adults' plane may fall there.)

    ``sizes`` (the regions' voxel counts) weigh how even a gap is: the resorbing roots of lower primary molars,
    parted from their crowns by the premolar crypt beneath, are ten small pieces in a layer of their own, and
    counted like teeth they made the gap above them the widest even one (dev 6-year-olds 46110, 46125: the
    lower primary crowns went to the upper jaw)."""
    heights = np.asarray(heights, dtype=np.float64)
    weights = np.ones(len(heights)) if sizes is None else np.asarray(sizes, dtype=np.float64)
    if primary.sum() >= 2 * MIN_PRIMARY:
        h = heights[primary]
        cut = _balanced_gap(h, weights[primary])
        if min((h > cut).sum(), (h < cut).sum()) >= MIN_PRIMARY:
            return cut
    return _balanced_gap(heights, weights)


def occlusal_layers(
    centroids: np.ndarray, primary: np.ndarray, normal: np.ndarray, tilt_known: bool = False,
    max_turn_deg: float | None = None, sizes: np.ndarray | None = None, tilt_from: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """(normal, height) of a child's occlusal plane: split at :func:`split_layers`, the normal refitted to the
    erupted layer (the primary teeth, each jaw centred on itself; only ``tilt_from`` of them when given), twice.
    With fewer than ``MIN_LAYER`` primary teeth (two per jaw leave the tilt free) the normal stays as given when
    ``tilt_known`` (the teeth's long axes gave it: :func:`long_axis_normal`), else it is refitted to all teeth.
    The forming teeth's layers tilt a normal fitted to the voxels' profile or to all centroids (by up to 40
    degrees in the phantoms). A known tilt also stands when the refit turns it by more than ``max_turn_deg``.
    ``sizes``: as for split_layers."""
    given = np.asarray(normal, dtype=np.float64)
    rich = primary.sum() >= MIN_LAYER
    if rich or not tilt_known:
        layer = (primary if tilt_from is None else tilt_from) if rich else np.ones(len(centroids), dtype=bool)
        for _ in range(2):
            upper = centroids @ normal > split_layers(centroids @ normal, primary, sizes)
            normal = numbering.occlusal_normal(centroids[layer], upper[layer])
    if tilt_known and max_turn_deg is not None and _turn_deg(normal, given) > max_turn_deg:
        normal = given
    return normal, split_layers(centroids @ normal, primary, sizes)


def _turn_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two unit normals, whichever way each points (degrees)."""
    return float(np.degrees(np.arccos(min(1.0, abs(float(np.dot(a, b)))))))


def long_axis_normal(labels: np.ndarray, ras: np.ndarray, reference: np.ndarray, min_voxels: int = 200) -> np.ndarray:
    """The occlusal normal from the teeth's long axes: erupted or forming, a tooth stands roughly upright on the
    occlusal plane, so the size- and elongation-weighted mean direction of the regions' principal axes is the
    normal (2-11 degrees off in the phantoms' children, where their layers tilted the other estimates by up to
    40). Pointed like ``reference``; regions under ``min_voxels`` (fragments) do not vote. The votes come in
    ``AXIS_ROUNDS`` rounds from the regions whose axis lies within ``AXIS_CONE_DEG`` of the estimate so far
    (at first ``reference``): a region lying on its side (two central incisors fused side by side, a primary
    molar's wide crown) has its longest axis near the plane, and a few of those rolled a dev 6-year-old's normal
    by 9-16 degrees."""
    count = int(labels.max()) + 1
    size = np.bincount(labels, minlength=count).astype(np.float64)
    mean = label_sums(labels, ras, count) / np.maximum(size, 1)[:, None]
    i, j = np.triu_indices(3)
    second = label_sums(labels, ras[:, i] * ras[:, j], count) / np.maximum(size, 1)[:, None]
    axes, weights = [], []
    for k in np.flatnonzero(size[1:] >= min_voxels) + 1:  # label 0 is no region
        cov = np.zeros((3, 3))
        cov[i, j] = second[k] - mean[k, i] * mean[k, j]
        cov = cov + np.triu(cov, 1).T
        values, vectors = np.linalg.eigh(cov)
        axes.append(vectors[:, 2])
        weights.append(size[k] * (1.0 - values[1] / max(values[2], 1e-9)))
    axes_, weights_ = np.reshape(axes, (-1, 3)), np.asarray(weights)
    normal = np.asarray(reference, dtype=np.float64)
    for _ in range(AXIS_ROUNDS):
        upright = np.abs(axes_ @ normal) >= np.cos(np.radians(AXIS_CONE_DEG))
        use = upright if upright.sum() >= 3 else np.ones(len(axes_), dtype=bool)
        votes = (weights_[use, None, None] * axes_[use, :, None] * axes_[use, None, :]).sum(axis=0)
        normal = np.linalg.eigh(votes)[1][:, 2]
    return normal if normal @ reference >= 0 else -normal


def extents(labels: np.ndarray, ras: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """(n, 2) lowest and highest height along ``normal`` of the voxels of labels 1..n (mm)."""
    n = int(labels.max()) + 1
    height = ras @ np.asarray(normal, dtype=np.float64)
    low, high = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(low, labels, height)
    np.maximum.at(high, labels, height)
    return np.stack([low, high], axis=1)[1:]


def _balanced_gap(heights: np.ndarray, weights: np.ndarray) -> float:
    """The gap between sorted heights that is widest times the smaller weight on either side of it."""
    order = np.argsort(heights)
    h, w = heights[order], np.asarray(weights, dtype=np.float64)[order]
    n = len(h)
    if n < 2:
        return float(h[0]) if n else 0.0
    below = np.cumsum(w)[:-1]
    best = int(np.argmax(np.diff(h) * np.minimum(below, w.sum() - below)))
    return float(0.5 * (h[best] + h[best + 1]))


def child_plane(
    plane: OcclusalPlane, labels: np.ndarray, ras: np.ndarray, types: np.ndarray, opts: InstanceOptions,
    voxel_mm3: float,
) -> OcclusalPlane:
    """The occlusal plane for the merges and cuts of a child's scan: with primary teeth among the split regions
    (``types``: (N, 13) permanent + primary probabilities per voxel), its height comes from the regions'
    centroid layers (:func:`split_layers`), not from the voxels' profile, unless the regions' roots deny those
    layers (one arch in two layers); otherwise ``plane`` as it is. Where the adults' plane found two arches and
    the child's would run through more regions (:func:`occlusal.crossed_regions`), the adults' plane stands: the
    bite passes between teeth. A fine-tuned model's adult crop in 36 regions (read as a child's by their count)
    got a child's plane tilted 6 degrees, which cut three upper incisors at their edges; in dev children the
    centroids' layers ran through erupted teeth."""
    count = int(labels.max()) + 1
    size = np.maximum(np.bincount(labels, minlength=count), 1)[1:, None]
    sums = label_sums(labels, types, count)[1:]
    if not is_mixed(sums[:, :8], sums[:, 8:]):
        return plane
    centroids = label_sums(labels, ras, count)[1:] / size
    primary = sums[:, 8:].sum(axis=1) > sums[:, :8].sum(axis=1)
    normal, height = occlusal_layers(centroids, primary, long_axis_normal(labels, ras, plane.normal), tilt_known=True,
                                     sizes=size[:, 0])
    above = centroids @ normal > height
    if above.any() and not above.all() and roots_deny(labels, ras @ normal, above):
        return plane  # one arch whose crowns and parted roots look like two layers: the adults' plane stands
    child = OcclusalPlane(normal, height, True)
    if plane.two_arches:
        crossed = [int(crossed_regions(labels, ras, p, opts, voxel_mm3).sum()) for p in (child, plane)]
        if crossed[0] > crossed[1]:
            return plane
    return child


def tip_depths(extent: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """How deep in its jaw each tooth's occlusal end (crown tip) lies, along the normal (mm): upper crowns point
    down (their lowest voxel), lower ones up (their highest, negated)."""
    extent = np.asarray(extent, dtype=np.float64).reshape(-1, 2)
    return np.where(upper, extent[:, 0], -extent[:, 1])


def developing_mask(extent: np.ndarray, upper: np.ndarray, depth_mm: float = DEVELOPING_DEPTH_MM) -> np.ndarray:
    """Teeth whose crown tip lies more than ``depth_mm`` deeper in their jaw than the jaw's occlusal level."""
    depth = tip_depths(extent, upper)
    out = np.zeros(len(depth), dtype=bool)
    for jaw in (True, False):
        members = upper == jaw
        if members.sum() >= 3:
            level = float(np.quantile(depth[members], LEVEL_QUANTILE))
            out[members] = depth[members] - level > depth_mm
    return out


def second_molars_first(forming_fdi: np.ndarray, taken: set[int]) -> np.ndarray:
    """Forming teeth numbered as third molars where their side of the jaw has no second molar (``taken``: the
    numbers of the jaw) are the second molars. A third molar starts to calcify at 7-10 years, when the second
    molar's crown is complete (Logan and Kronfeld, as modified by McCall and Schour: see
    :mod:`phantom.children`), so no third molar forms without a second molar in front of it; the types
    network reads a forming second molar's crown, behind the erupted first molar, as a third molar's."""
    out = np.asarray(forming_fdi).copy()
    for i, number in enumerate(out):
        if number and number % 10 == 8 and number - 1 not in taken:
            out[i] = number - 1
            taken = taken | {int(number) - 1}
    return out


NEAR_PLANE_MM = 2.5  # an erupted tooth whose centroid lies this near the plane may belong to either jaw
CROWD_MM = 3.0  # two erupted teeth of one jaw are never this near along the arch (a lower primary central: 4 mm)
# A germ whose region took a sliver of its predecessor's root or crown reaches the occlusal level, but its centroid
# stays in its crypt: 12.3-12.7 mm deeper than its predecessor's in the dev children (a forming 25 under 65, a
# forming 21 under 61). Two erupted teeth at one place lay at most 8.5 mm apart (a permanent lateral incisor
# crowded onto a primary canine).
GERM_DEEPER_MM = 10.0
# Teeth stand within about 30 degrees of the occlusal normal (proclined incisors, tipped molars): axes further
# from the estimate than this are no long axes (long_axis_normal). 30 and 40 gave the same dev figures, 50 worse.
AXIS_CONE_DEG = 40.0
AXIS_ROUNDS = 3
PRIMARY_ANTERIOR = 3  # primary types 1-3: the incisors and the canine


def settle_crowded(
    centroids: np.ndarray, upper: np.ndarray, deep: np.ndarray, normal: np.ndarray, offset: float
) -> np.ndarray:
    """Jaws of the erupted teeth that lie on the plane, by room along the arch: one that sits on top of an
    erupted tooth of its jaw (nearer than ``CROWD_MM`` along that jaw's arch) while the other jaw has room
    there belongs to the other jaw. An upper primary incisor overlaps the lower incisors by its overbite, so
    its centroid falls on either side of a plane placed between the primary teeth's centroids."""
    height = centroids @ normal - offset
    erupted = ~np.asarray(deep, dtype=bool)
    along = {}  # every tooth's place along each jaw's arch
    for jaw in (True, False):
        anchors = erupted & (upper == jaw) & (np.abs(height) >= NEAR_PLANE_MM)
        if anchors.sum() < 5:
            return upper
        along[jaw] = numbering.arch_positions(centroids, numbering.fit_arch(centroids[anchors], normal))
    out = upper.copy()
    for i in np.flatnonzero(erupted & (np.abs(height) < NEAR_PLANE_MM)):
        gap = {}
        for jaw, where in along.items():
            others = erupted & (out == jaw)
            others[i] = False
            gap[jaw] = float(np.min(np.abs(where[others] - where[i]))) if others.any() else np.inf
        if gap[bool(out[i])] < CROWD_MM <= gap[not out[i]]:
            out[i] = not out[i]
    return out


def beneath_another(
    positions: np.ndarray, tip_depth: np.ndarray, centre_depth: np.ndarray | None = None
) -> np.ndarray:
    """Teeth of one jaw that lie beneath another one: nearer than ``CROWD_MM`` along the arch (``positions``),
    with the crown tip more than ``DEVELOPING_DEPTH_MM`` deeper in the jaw (``tip_depth``). Two erupted teeth of
    one jaw never share a place, so the deeper one is a successor erupting under its predecessor: a permanent
    central incisor halfway out, its crown tip 3 mm short of the developing depth, behind the primary incisor it
    replaces (dev 8-year-olds), which otherwise competed with it for one place in the erupted layer. With
    ``centre_depth`` (how deep each centroid lies), also a tooth whose centroid lies more than ``GERM_DEEPER_MM``
    deeper: a germ whose region reached the occlusal level through a sliver of its predecessor (dev: a forming 25
    took place 5 and pushed 65, 26 and 27 one place on)."""
    near = np.abs(positions[:, None] - positions[None, :]) < CROWD_MM
    deeper = tip_depth[:, None] - tip_depth[None, :] > DEVELOPING_DEPTH_MM
    if centre_depth is not None:
        deeper |= centre_depth[:, None] - centre_depth[None, :] > GERM_DEEPER_MM
    return (near & deeper).any(axis=1)


def assign_mixed(
    centroids: np.ndarray,
    type_probs: np.ndarray,
    primary_probs: np.ndarray,
    apex_skew: np.ndarray,
    extent: np.ndarray,
    side_sigma_mm: float = 2.5,
    plane: tuple[np.ndarray, float] | None = None,
    axis_normal: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
) -> Assignment:
    """The mixed dentition's numbers (module docstring, steps 1-5); ``developing`` marks the deep teeth."""
    centroids = np.asarray(centroids, dtype=np.float64).reshape(-1, 3)
    perm, prim = np.asarray(type_probs, dtype=np.float64), np.asarray(primary_probs, dtype=np.float64)
    if axis_normal is not None:
        normal = np.asarray(axis_normal, dtype=np.float64)
    else:
        normal = numbering.occlusal_normal(centroids) if plane is None else np.asarray(plane[0], dtype=np.float64)
    extent = np.asarray(extent, dtype=np.float64).reshape(-1, 2)
    primary = prim.sum(axis=1) > perm.sum(axis=1)
    # Every primary tooth has erupted by 3 years: a deep piece read as a primary incisor or canine is a primary
    # tooth's root, not a germ, and gets no forming tooth's number (pieces.join_parted_roots may join it to its
    # crown). A forming premolar's shell of cusps can read as a primary molar (dev 6-year-olds), so not those.
    primary_root = primary & (np.argmax(prim, axis=1) < PRIMARY_ANTERIOR)
    # The guard holds for the numbering's jaws only: the merges' plane (child_plane) refitted freely splits the
    # regions better on the dev children, and guarding it too wrecked one scan (identification 0.77 -> 0.17).
    molars = primary & ~primary_root
    normal, offset = occlusal_layers(
        centroids, primary, normal, tilt_known=axis_normal is not None, max_turn_deg=MAX_REFIT_TURN_DEG, sizes=sizes,
        tilt_from=molars if molars.sum() >= MIN_POSTERIOR else None,
    )
    upper, two, warnings = centroids @ normal > offset, True, []
    deep = developing_mask(extent, upper)
    upper = settle_crowded(centroids, upper, deep, normal, offset)
    tip = tip_depths(extent, upper)
    centre = np.where(upper, 1.0, -1.0) * (centroids @ normal - offset)  # how deep in its jaw each centroid lies
    # No third molar has erupted in a child's mouth; the network gives a primary second molar (the likeness
    # of a permanent first molar, crown on short roots) that type's probability, so an erupted tooth's is the
    # primary second molar's.
    erupted_prim = prim.copy()
    erupted_prim[:, -1] += perm[:, -1]
    by_place = perm.copy()
    by_place[:, -1] = 0.0
    by_place[:, : len(PRIMARY_TYPES)] += erupted_prim
    fdi = np.zeros(len(centroids), dtype=int)
    positions = np.zeros(len(centroids))
    fits = {}
    for jaw in (True, False):
        members = np.flatnonzero(upper == jaw)
        if len(members) == 0:
            continue
        erupted = members[~deep[members]]
        fits[jaw] = numbering.fit_arch(centroids[erupted if len(erupted) >= 5 else members], normal)
        positions[members] = numbering.arch_positions(centroids[members], fits[jaw])
        beneath = beneath_another(positions[erupted], tip[erupted], centre[erupted])
        deep[erupted] |= beneath & ~primary[erupted]
        erupted, forming = members[~deep[members]], members[deep[members] & ~primary_root[members]]
        fdi[erupted] = numbering.align_arch(by_place[erupted], positions[erupted], jaw, side_sigma_mm)
        # A forming tooth may share a place 1-5 with the erupted tooth above it: its predecessor. Molars have
        # none, so their places are taken.
        molars = {int(n) for n in fdi[erupted] if n % 10 > len(PRIMARY_TYPES)}
        if len(forming):
            fdi[forming] = numbering.align_arch(perm[forming], positions[forming], jaw, side_sigma_mm, blocked=molars)
            fdi[forming] = second_molars_first(fdi[forming], {int(n) for n in fdi[members] if n})
        successors = {int(n) for n in fdi[forming] if n}
        for i in erupted:
            place = fdi[i] % 10
            if not fdi[i] or place > len(PRIMARY_TYPES):
                continue
            if fdi[i] in successors or erupted_prim[i, place - 1] > perm[i, place - 1]:
                fdi[i] += 40  # the primary tooth of that place: 15 -> 55
    return Assignment(fdi, upper, positions, normal, offset, two, warnings, fits, developing=deep & ~primary_root)
