"""FDI numbers for tooth instances: upper/lower jaw, the arch curve, the midline, and a dynamic programme.

Works on per-instance summaries only (RAS centroids, mean type probabilities, the skew of each tooth's
voxels along the occlusal normal), so it is fast and testable without volumes.

1. Jaws: the occlusal normal is the least-spread direction of the centroids (the arches are flat
   curves; a tilted head tilts it with them). Projected on it, the centroids of two arches form two
   clusters (best 1-D two-means split); a single arch forms one. A single arch is called upper or
   lower from the teeth's shape: the crown is bulky and the root tapers, so a tooth's voxels are
   skewed towards its apex (up for upper teeth).
2. Arch: in the occlusal plane, a parabola (rotated by a fitted yaw) through the centroids; its
   vertex is the midline. Each tooth gets a signed arc position, + towards the patient's right
   (RAS +x).
3. Numbers: along each arch, sorted from the right distal end to the left distal end, the teeth are
   aligned to the 16 slots (x8..x1, y1..y8) by a monotone dynamic programme: each slot at most once,
   types strictly increasing outward from the midline, gaps allowed at a per-type price. Score = log of
   the tooth's mean probability of the slot's type + a soft prior of the type from the distance to the
   midline (typical crown widths) + a soft side prior from the arc position + for each pair of
   consecutive numbered teeth, how well their distance along the arch fits their slots' typical
   distance (an open gap is a missing tooth even where the types say nothing), over a few arch sizes.
   The split between the sides is the programme's choice, so two central incisors straddling a
   slightly wrong midline still go one to each side.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

# Price (in log-probability units) of leaving a slot of type 1..8 empty: gaps are allowed but not free;
# third molars are often absent, premolars are the usual orthodontic extractions.
GAP_PRICE = np.array([1.5, 1.5, 2.0, 1.0, 1.0, 1.5, 1.2, 0.3])
# Typical mesio-distal crown widths (mm) of types 1..8; their running sums give where along the arch, from
# the midline, each type's centre lies. Used as a soft prior, so gaps and arch size move it little.
UPPER_WIDTHS_MM = np.array([8.5, 6.5, 7.5, 7.0, 6.5, 10.0, 9.0, 8.5])
LOWER_WIDTHS_MM = np.array([5.0, 5.5, 7.0, 7.0, 7.0, 11.0, 10.5, 10.0])
UNPLACED_PRICE = 8.0  # an instance left without a number costs about as much as a certain mistake
# Consecutive numbered teeth: their distance along the arch vs their slots' typical distance, a Gaussian of
# SIGMA + FRACTION x distance (crowding, spacing, rotated teeth), weighed like one log-probability.
SPACING_SIGMA_MM = 1.5
SPACING_SIGMA_FRACTION = 0.15
SPACING_WEIGHT = 1.0
ARCH_SCALES = (0.8, 0.87, 0.94, 1.0, 1.07, 1.14, 1.2)  # sizes of the arch tried, x the typical widths
PROB_FLOOR = 1e-3
BLOCKED_SCORE = -1e3  # a slot already taken: finite, so the programme's sums stay comparable
CLEAR_ROOTS = 0.15  # a median apex skew this far from 0 shows which way a group of teeth has its roots


@dataclass
class ArchFit:
    """Parabola v' = a u'^2 + b u' + c in the occlusal plane, u' rotated by ``yaw`` from the RAS-x direction."""

    origin: np.ndarray  # 3, RAS point of the plane
    e_right: np.ndarray  # 3, in-plane unit vector towards the patient's right (~ +x)
    e_front: np.ndarray  # 3, in-plane unit vector anterior (~ +y)
    yaw: float = 0.0
    coef: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fitted: bool = False


@dataclass
class Assignment:
    fdi: np.ndarray  # int, 0 = not numbered
    upper: np.ndarray  # bool
    arch_position_mm: np.ndarray  # signed arc length from the midline, + patient's right
    normal: np.ndarray  # occlusal normal (superior)
    plane_offset: float  # occlusal plane: (x . normal) == plane_offset
    two_arches: bool
    warnings: list[str] = field(default_factory=list)
    fits: dict[bool, ArchFit] = field(default_factory=dict)  # the arch curve used for each jaw (True = upper)
    developing: np.ndarray | None = None  # bool, permanent teeth still in their crypts (mixed dentition only)


def occlusal_normal(
    centroids: np.ndarray, upper: np.ndarray | None = None, weights: np.ndarray | None = None
) -> np.ndarray:
    """Least-spread direction of the centroids, pointing superior; +z where that is ill-defined.

    With ``upper`` (a first split into jaws), each jaw is centred on its own mean first: the gap between
    the arches then does not tilt the normal where one jaw lacks teeth the other has (missing molars). With
    ``weights`` (the regions' sizes) each centroid counts that much (see ``occlusal.find_occlusal_plane``)."""
    z = np.array([0.0, 0.0, 1.0])
    if len(centroids) < 4:
        return z
    w = None if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)

    def mean(rows: Any) -> np.ndarray:
        part = centroids[rows]
        return part.mean(axis=0) if w is None else np.average(part, axis=0, weights=w[rows])

    centred = centroids - mean(slice(None))
    if upper is not None and upper.any() and (~upper).any():
        centred = centroids.copy()
        for jaw in (upper, ~upper):
            centred[jaw] -= mean(jaw)
    values, vectors = np.linalg.eigh(centred.T @ centred if w is None else (centred * w[:, None]).T @ centred)
    normal = vectors[:, 0]
    if normal[2] < 0:
        normal = -normal
    flat_enough = values[0] < 0.5 * values[1]
    if not flat_enough or normal[2] < np.cos(np.radians(40)):
        return z
    return normal


def occlusal_plane(heights: np.ndarray, bin_mm: float = 0.5, dip_ratio: float = 0.85) -> tuple[float, bool]:
    """(height of the occlusal plane, two arches?) from the heights of all teeth voxels along the normal.

    The teeth's cross-section area, as a function of height, dips between the arches: to zero in an open
    bite, and still clearly in a closed one because crowns narrow towards their cusps. A single arch has
    one crown layer and tapering roots: no dip with a crown-sized peak (half the highest) on both sides.
    """
    if len(heights) < 10:
        return float(np.median(heights)) if len(heights) else 0.0, False
    lo, hi = float(heights.min()), float(heights.max())
    counts = np.bincount(((heights - lo) / bin_mm).astype(int)).astype(np.float64)
    profile = gaussian_filter1d(counts, 1.0 / bin_mm, mode="constant")
    left, right = np.maximum.accumulate(profile), np.maximum.accumulate(profile[::-1])[::-1]
    mass = np.cumsum(counts) / counts.sum()
    score = profile / np.maximum(np.minimum(left, right), 1e-9)
    valid = (mass > 0.15) & (mass < 0.85) & (np.minimum(left, right) >= 0.5 * profile.max())
    if not valid.any():
        return 0.5 * (lo + hi), False
    best = int(np.flatnonzero(valid)[np.argmin(score[valid])])
    return lo + (best + 0.5) * bin_mm, bool(score[best] < dip_ratio)


def _two_means(values: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float, float]:
    """Best split of the values into two groups: (gap of their means, pooled sd, midpoint of the means). With
    ``weights`` each value counts that much (normalised to a mean of 1: all ones is the plain split)."""
    order = np.argsort(values, kind="stable")
    v = np.asarray(values, dtype=np.float64)[order]
    n = len(v)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)[order]
    w = w * n / w.sum()
    best = (0.0, np.inf, 0.0, 0.0)
    for k in range(1, n):
        (low, wl), (high, wh) = (v[:k], w[:k]), (v[k:], w[k:])
        low_mean, high_mean = np.average(low, weights=wl), np.average(high, weights=wh)
        within = (wl * (low - low_mean) ** 2).sum() + (wh * (high - high_mean) ** 2).sum()
        if within < best[1]:
            best = (float(high_mean - low_mean), within, float(np.sqrt(within / max(n - 2, 1))),
                    float(0.5 * (low_mean + high_mean)))
    return best[0], best[2], best[3]


def split_jaws(
    centroids: np.ndarray,
    apex_skew: np.ndarray,
    normal: np.ndarray,
    min_gap_mm: float = 6.0,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, float, bool, list[str]]:
    """(upper mask, occlusal plane offset along ``normal``, two arches?, warnings); with ``weights`` (the
    regions' sizes) a small piece far from the rest cannot pull the split to itself."""
    heights = centroids @ normal
    warnings: list[str] = []
    n = len(heights)
    if n >= 2:
        gap, sd, threshold = _two_means(heights, weights)
        upper = heights > threshold
        if gap >= max(min_gap_mm, 3.0 * sd) and not roots_contradict(apex_skew, upper):
            return upper, float(threshold), True, warnings
    skew = float(np.median(apex_skew)) if n else 0.0
    if abs(skew) < 0.05:
        warnings.append("Only one arch was found and its teeth do not show which way their roots point; assumed upper.")
    is_upper = skew >= 0 or abs(skew) < 0.05
    offset = float(heights.min() - 5.0) if is_upper else float(heights.max() + 5.0)
    return np.full(n, is_upper), offset if n else 0.0, False, warnings


def roots_contradict(apex_skew: np.ndarray, upper: np.ndarray) -> bool:
    """True when the teeth's own roots say the two clusters are not an upper and a lower arch: both clearly
    have their roots the same way, or one clearly points them towards the other (one arch plus impacted
    teeth above or below it: the arch's roots point at them)."""
    if upper.all() or not upper.any():
        return True
    up, low = float(np.median(apex_skew[upper])), float(np.median(apex_skew[~upper]))
    return up < -CLEAR_ROOTS or low > CLEAR_ROOTS


def _plane_axes(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-plane unit vectors: towards the patient's right (RAS +x projected) and anterior (normal x right)."""
    x = np.array([1.0, 0.0, 0.0])
    right = x - normal * (x @ normal)
    right /= np.linalg.norm(right)
    front = np.cross(normal, right)
    return right, front


def fit_arch(points: np.ndarray, normal: np.ndarray, max_yaw_deg: float = 35.0) -> ArchFit:
    """Parabola through the centroids of one arch, opening posteriorly, with the best yaw on a 1-degree grid."""
    right, front = _plane_axes(normal)
    origin = points.mean(axis=0) if len(points) else np.zeros(3)
    fit = ArchFit(origin, right, front)
    if len(points) < 5:
        return fit
    u, v = (points - origin) @ right, (points - origin) @ front
    best = np.inf
    for yaw in np.radians(np.arange(-max_yaw_deg, max_yaw_deg + 0.5, 1.0)):
        uu, vv = u * np.cos(yaw) + v * np.sin(yaw), -u * np.sin(yaw) + v * np.cos(yaw)
        design = np.stack([uu**2, uu, np.ones_like(uu)], axis=1)
        coef, *_ = np.linalg.lstsq(design, vv, rcond=None)
        residual = float(((design @ coef - vv) ** 2).sum())
        if coef[0] < -0.002 and residual < best:
            best, fit.yaw, fit.coef, fit.fitted = residual, float(yaw), tuple(float(c) for c in coef), True
    return fit


def arch_positions(points: np.ndarray, fit: ArchFit, midline_fallback: float | None = None) -> np.ndarray:
    """Signed arc length (mm) from the parabola's vertex to each point's foot point; + patient's right."""
    u = (points - fit.origin) @ fit.e_right
    v = (points - fit.origin) @ fit.e_front
    if not fit.fitted:
        centre = float(np.mean(u)) if midline_fallback is None else midline_fallback
        return u - centre
    a, b, c = fit.coef
    uu = u * np.cos(fit.yaw) + v * np.sin(fit.yaw)
    vv = -u * np.sin(fit.yaw) + v * np.cos(fit.yaw)
    vertex = -b / (2 * a)
    grid = vertex + np.arange(-80.0, 80.0, 0.25)
    curve = a * grid**2 + b * grid + c
    steps = np.hypot(np.diff(grid), np.diff(curve))
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    arc -= np.interp(vertex, grid, arc)
    return arc[nearest_grid_point(uu, vv, grid, curve)]


NEAREST_CHUNK = 128  # points searched together (sorted along u, so their windows overlap)


def nearest_grid_point(uu: np.ndarray, vv: np.ndarray, grid: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Index of each point's nearest curve point (grid, curve) (the first on ties), with the same arithmetic as
    an argmin over the whole grid, so the same index.

    Only grid points that can win are searched: a winner lies no farther from the point along u than the
    curve point nearest to it along u does in all, and the points go in chunks sorted along u."""
    nearest = np.zeros(len(uu), dtype=np.intp)
    if not len(uu):
        return nearest
    step = float(grid[1] - grid[0])
    above = np.clip(np.rint((uu - grid[0]) / step).astype(np.intp), 0, len(grid) - 1)
    reach = np.sqrt((uu - grid[above]) ** 2 + (vv - curve[above]) ** 2) * (1 + 1e-9) + 1e-9
    first = np.clip(np.floor((uu - reach - grid[0]) / step).astype(np.intp) - 1, 0, len(grid))
    stop = np.clip(np.ceil((uu + reach - grid[0]) / step).astype(np.intp) + 2, 0, len(grid))
    order = np.argsort(uu, kind="stable")
    for start in range(0, len(order), NEAREST_CHUNK):
        chunk = order[start : start + NEAREST_CHUNK]
        lo, hi = int(first[chunk].min()), int(stop[chunk].max())
        window = slice(lo, hi)
        distance = (uu[chunk, None] - grid[None, window]) ** 2 + (vv[chunk, None] - curve[None, window]) ** 2
        nearest[chunk] = lo + np.argmin(distance, axis=1)
    return nearest


def _slots(upper: bool) -> list[int]:
    """The 16 FDI numbers of one arch from the patient's right distal end to the left distal end."""
    right, left = (1, 2) if upper else (4, 3)
    return [10 * right + t for t in range(8, 0, -1)] + [10 * left + t for t in range(1, 9)]


def position_log_prior(distance_mm: np.ndarray, upper: bool, weight: float = 1.0) -> np.ndarray:
    """(N, 8) log prior of each type from the distance along the arch to the midline (mm).

    Centres from typical crown widths, tolerance growing outward (arch size varies, gaps shift teeth):
    a tooth 40 mm from the midline is a molar far more likely than an incisor, whatever the network says.
    """
    _widths, centres = type_centres_mm(upper)
    sigmas = 3.0 + 0.2 * centres
    z = (np.abs(np.asarray(distance_mm, dtype=np.float64))[:, None] - centres[None]) / sigmas[None]
    return -0.5 * weight * z**2


def type_centres_mm(upper: bool) -> tuple[np.ndarray, np.ndarray]:
    """(typical crown widths, distance of each type's centre from the midline along the arch), types 1..8."""
    widths = UPPER_WIDTHS_MM if upper else LOWER_WIDTHS_MM
    return widths, np.cumsum(widths) - widths / 2


def expected_width_mm(distance_mm: np.ndarray, upper: bool) -> np.ndarray:
    """Typical mesio-distal width (mm) of the tooth whose centre lies nearest ``distance_mm`` from the midline."""
    widths, centres = type_centres_mm(upper)
    nearest = np.argmin(np.abs(np.abs(np.asarray(distance_mm, dtype=np.float64))[:, None] - centres[None]), axis=1)
    return widths[nearest]


def slot_centres_mm(upper: bool) -> np.ndarray:
    """Signed arc position (mm, + patient's right) of the 16 slots' typical crown centres, right distal first."""
    _widths, centres = type_centres_mm(upper)
    return np.concatenate([centres[::-1], -centres])


def align_arch(
    type_probs: np.ndarray,
    positions: np.ndarray,
    upper: bool,
    side_sigma_mm: float = 2.5,
    position_weight: float = 1.0,
    blocked: Collection[int] = (),
) -> np.ndarray:
    """FDI numbers (0 = unplaced) for the teeth of one arch by the monotone dynamic programme.

    Besides each tooth's own score, consecutive numbered teeth pay for the difference between their
    distance along the arch and the typical distance of their slots (so an open gap reads as a missing
    tooth); the arch's size is the best of a few scales of the typical widths. ``blocked``: FDI numbers
    already taken (by erupted teeth, when the developing teeth of a mixed dentition are numbered).
    """
    n = len(positions)
    slots = _slots(upper)
    order = np.argsort(-positions)  # patient's right (+) first
    probs = np.clip(type_probs[order], PROB_FLOOR, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    pos = positions[order]
    right_prior = -np.logaddexp(0.0, -pos / side_sigma_mm)  # log sigmoid(pos / sigma)
    left_prior = -np.logaddexp(0.0, pos / side_sigma_mm)
    gap = np.array([GAP_PRICE[fdi % 10 - 1] for fdi in slots])
    scores = np.empty((len(ARCH_SCALES), n, 16))
    for s, scale in enumerate(ARCH_SCALES):
        type_score = np.log(probs) + position_log_prior(pos / scale, upper, position_weight)
        for j, fdi in enumerate(slots):
            scores[s, :, j] = type_score[:, fdi % 10 - 1] + (right_prior if j < 8 else left_prior)
            if fdi in blocked:
                scores[s, :, j] = BLOCKED_SCORE
    centres = np.stack([scale * slot_centres_mm(upper) for scale in ARCH_SCALES])
    best_total, chosen = -np.inf, [-1] * n
    for total, picked in _spacing_alignments(scores, gap, pos, centres):  # the first best scale
        if total > best_total:
            best_total, chosen = total, picked
    result = np.zeros(n, dtype=int)
    for i, j in enumerate(chosen):
        if j >= 0:
            result[order[i]] = slots[j]
    return result


def _spacing_alignment(
    score: np.ndarray, gap: np.ndarray, pos: np.ndarray, centres: np.ndarray
) -> tuple[float, list[int]]:
    """(total, slot of each item or -1): items in arch order to strictly increasing slots, maximising the
    items' scores - skipped slots' gap prices - unplaced items' prices + the spacing log-likelihood of each
    pair of consecutive placed items."""
    return _spacing_alignments(score[None], gap, pos, centres[None])[0]


def _spacing_alignments(
    score: np.ndarray, gap: np.ndarray, pos: np.ndarray, centres: np.ndarray
) -> list[tuple[float, list[int]]]:
    """:func:`_spacing_alignment` of several arch sizes at once: ``score`` (sizes, n, m), ``centres`` (sizes, m).

    Item i's best predecessor is found over every size, earlier item k, slot j' and slot j in one array
    (cand[s, k, j', j]) instead of a loop over k: the programme's Python overhead, not its arithmetic, was
    what it cost. Ties go as a loop over k with a strict ``>`` would send them (the first best)."""
    sizes, n, m = score.shape
    skipped = np.concatenate([[0.0], np.cumsum(gap)])  # skipped[b] - skipped[a] = gaps of slots a..b-1
    between = skipped[1:, None] - skipped[None, :-1]  # [j', j]: -(gaps of slots j'+1..j-1), valid for j' < j
    expected = centres[:, None, :, None] - centres[:, None, None, :]  # [s, 1, j', j]: typical arc distance
    valid = np.triu(np.ones((m, m), dtype=bool), k=1)
    sigma = SPACING_SIGMA_MM + SPACING_SIGMA_FRACTION * np.abs(expected)
    best = np.full((sizes, n, m), -np.inf)
    back = np.full((sizes, n, m, 2), -1, dtype=int)
    for i in range(n):
        start = score[:, i] - skipped[:-1] - UNPLACED_PRICE * i  # first placed item: earlier slots and items left
        if i > 0:
            best[:, i] = _best_predecessors(best[:, :i], back[:, i], start, score[:, i], i, pos, expected, sigma,
                                            between, valid)
        else:
            best[:, i] = start
    return [_backtrack(best[s], back[s], skipped, n) for s in range(sizes)]


def _best_predecessors(
    best: np.ndarray, back: np.ndarray, start: np.ndarray, score: np.ndarray, i: int, pos: np.ndarray,
    expected: np.ndarray, sigma: np.ndarray, between: np.ndarray, valid: np.ndarray,
) -> np.ndarray:
    """Item i's best totals (sizes, m) per slot, from its start or any earlier item k; fills ``back`` (k, j')."""
    k = np.arange(i)
    observed = (pos[:i] - pos[i])[None, :, None, None]
    pair = -0.5 * SPACING_WEIGHT * ((observed - expected) / sigma) ** 2
    cand = best[:, :, :, None] + between + pair - (UNPLACED_PRICE * (i - k - 1))[None, :, None, None]
    cand = np.where(valid, cand, -np.inf)  # [s, k, j', j]
    prev = np.argmax(cand, axis=2)  # [s, k, j]
    value = np.take_along_axis(cand, prev[:, :, None, :], axis=2)[:, :, 0] + score[:, None, :]
    pick = np.argmax(np.concatenate([start[:, None], value], axis=1), axis=1)  # [s, j]: 0 = start, k + 1
    from_k = pick > 0
    k_best = np.maximum(pick - 1, 0)[:, None, :]
    back[from_k] = np.stack([pick[from_k] - 1, np.take_along_axis(prev, k_best, axis=1)[:, 0][from_k]], axis=1)
    return np.where(from_k, np.take_along_axis(value, k_best, axis=1)[:, 0], start)


def _backtrack(best: np.ndarray, back: np.ndarray, skipped: np.ndarray, n: int) -> tuple[float, list[int]]:
    """(total, slot of each item or -1) of one arch size from its programme's table."""
    # End: the last placed item leaves the later slots and items; or no item is placed at all.
    ends = best - (skipped[-1] - skipped[1:])[None, :] - UNPLACED_PRICE * (n - 1 - np.arange(n))[:, None]
    chosen = [-1] * n
    empty = -skipped[-1] - UNPLACED_PRICE * n
    if n == 0 or ends.max() <= empty:
        return float(empty), chosen
    i, j = np.unravel_index(int(np.argmax(ends)), ends.shape)
    total = float(ends[i, j])
    while i >= 0:
        chosen[i] = int(j)
        i, j = back[i, j]
    return total, chosen


def assign_fdi(
    centroids: np.ndarray,
    type_probs: np.ndarray,
    apex_skew: np.ndarray,
    side_sigma_mm: float = 2.5,
    plane: tuple[np.ndarray, float] | None = None,
) -> Assignment:
    """FDI numbers of N instances from their RAS centroids (N, 3), mean type probabilities (N, 8), apex skews (N,).

    ``plane`` = (normal, height) of an occlusal plane known to lie between two arches (see ``occlusal_plane``);
    without it the jaws come from the centroids' two clusters or, for one arch, the roots' direction.
    """
    centroids = np.asarray(centroids, dtype=np.float64).reshape(-1, 3)
    if plane is not None:
        normal, offset = np.asarray(plane[0], dtype=np.float64), float(plane[1])
        upper, two, warnings = centroids @ normal > offset, True, []
    else:
        normal = occlusal_normal(centroids)
        upper, offset, two, warnings = split_jaws(centroids, np.asarray(apex_skew, dtype=np.float64), normal)
    fdi = np.zeros(len(centroids), dtype=int)
    positions = np.zeros(len(centroids))
    fits = {jaw: fit_arch(centroids[upper == jaw], normal) for jaw in (True, False)}
    used = {}
    for jaw in (True, False):
        members = np.flatnonzero(upper == jaw)
        if len(members) == 0:
            continue
        used[jaw] = fits[jaw] if fits[jaw].fitted else _borrowed_fit(fits[not jaw], centroids[members])
        positions[members] = arch_positions(centroids[members], used[jaw])
        fdi[members] = align_arch(type_probs[members], positions[members], jaw, side_sigma_mm)
    return Assignment(fdi, upper, positions, normal, offset, two, warnings, used)


def _borrowed_fit(other: ArchFit, points: np.ndarray) -> ArchFit:
    """For an arch with too few teeth: the other arch's midline and yaw (centred on it), else a straight line."""
    if not other.fitted:
        return ArchFit(other.origin, other.e_right, other.e_front)
    a, b, c = other.coef
    shift = float(np.mean((points - other.origin) @ other.e_front)) if len(points) else 0.0
    return ArchFit(other.origin + shift * other.e_front, other.e_right, other.e_front, other.yaw, (a, b, c), True)
