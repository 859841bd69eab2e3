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
   midline (typical crown widths) + a soft side prior from the arc position. The split
   between the sides is the programme's choice, so two central incisors straddling a slightly wrong
   midline still go one to each side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
PROB_FLOOR = 1e-3


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


def occlusal_normal(centroids: np.ndarray) -> np.ndarray:
    """Least-spread direction of the centroids, pointing superior; +z where that is ill-defined."""
    z = np.array([0.0, 0.0, 1.0])
    if len(centroids) < 4:
        return z
    centred = centroids - centroids.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)
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


def _two_means(values: np.ndarray) -> tuple[int, float, float]:
    """Best split of sorted values into two groups: (index of the first high value, gap of means, pooled sd)."""
    v = np.sort(values)
    n = len(v)
    best = (1, 0.0, np.inf, 0.0)
    for k in range(1, n):
        low, high = v[:k], v[k:]
        within = ((low - low.mean()) ** 2).sum() + ((high - high.mean()) ** 2).sum()
        if within < best[2]:
            best = (k, float(high.mean() - low.mean()), within, np.sqrt(within / max(n - 2, 1)))
    return best[0], best[1], best[3]


def split_jaws(
    centroids: np.ndarray, apex_skew: np.ndarray, normal: np.ndarray, min_gap_mm: float = 6.0
) -> tuple[np.ndarray, float, bool, list[str]]:
    """(upper mask, occlusal plane offset along ``normal``, two arches?, warnings)."""
    heights = centroids @ normal
    warnings: list[str] = []
    n = len(heights)
    if n >= 2:
        k, gap, sd = _two_means(heights)
        order = np.sort(heights)
        threshold = 0.5 * (order[:k].mean() + order[k:].mean())
        upper = heights > threshold
        if gap >= max(min_gap_mm, 3.0 * sd) and not _same_jaw_shape(apex_skew, upper):
            return upper, float(threshold), True, warnings
    skew = float(np.median(apex_skew)) if n else 0.0
    if abs(skew) < 0.05:
        warnings.append("Only one arch was found and its teeth do not show which way their roots point; assumed upper.")
    is_upper = skew >= 0 or abs(skew) < 0.05
    offset = float(heights.min() - 5.0) if is_upper else float(heights.max() + 5.0)
    return np.full(n, is_upper), offset if n else 0.0, False, warnings


def _same_jaw_shape(apex_skew: np.ndarray, upper: np.ndarray) -> bool:
    """True when both clusters clearly have their roots the same way (e.g. one arch plus impacted molars)."""
    if upper.all() or not upper.any():
        return True
    up, low = float(np.median(apex_skew[upper])), float(np.median(apex_skew[~upper]))
    return (up > 0.15 and low > 0.15) or (up < -0.15 and low < -0.15)


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
    nearest = np.argmin((uu[:, None] - grid[None]) ** 2 + (vv[:, None] - curve[None]) ** 2, axis=1)
    return arc[nearest]


def _slots(upper: bool) -> list[int]:
    """The 16 FDI numbers of one arch from the patient's right distal end to the left distal end."""
    right, left = (1, 2) if upper else (4, 3)
    return [10 * right + t for t in range(8, 0, -1)] + [10 * left + t for t in range(1, 9)]


def position_log_prior(distance_mm: np.ndarray, upper: bool, weight: float = 1.0) -> np.ndarray:
    """(N, 8) log prior of each type from the distance along the arch to the midline (mm).

    Centres from typical crown widths, tolerance growing outward (arch size varies, gaps shift teeth):
    a tooth 40 mm from the midline is a molar far more likely than an incisor, whatever the network says.
    """
    widths = UPPER_WIDTHS_MM if upper else LOWER_WIDTHS_MM
    centres = np.cumsum(widths) - widths / 2
    sigmas = 3.0 + 0.2 * centres
    z = (np.abs(np.asarray(distance_mm, dtype=np.float64))[:, None] - centres[None]) / sigmas[None]
    return -0.5 * weight * z**2


def align_arch(
    type_probs: np.ndarray, positions: np.ndarray, upper: bool, side_sigma_mm: float = 2.5, position_weight: float = 1.0
) -> np.ndarray:
    """FDI numbers (0 = unplaced) for the teeth of one arch by the monotone dynamic programme."""
    n = len(positions)
    slots = _slots(upper)
    order = np.argsort(-positions)  # patient's right (+) first
    probs = np.clip(type_probs[order], PROB_FLOOR, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    pos = positions[order]
    right_prior = -np.logaddexp(0.0, -pos / side_sigma_mm)  # log sigmoid(pos / sigma)
    left_prior = -np.logaddexp(0.0, pos / side_sigma_mm)
    type_score = np.log(probs) + position_log_prior(pos, upper, position_weight)
    score = np.empty((n, 16))
    for j, fdi in enumerate(slots):
        score[:, j] = type_score[:, fdi % 10 - 1] + (right_prior if j < 8 else left_prior)
    gap = np.array([GAP_PRICE[fdi % 10 - 1] for fdi in slots])
    chosen = _monotone_alignment(score, gap)
    result = np.zeros(n, dtype=int)
    for i, j in enumerate(chosen):
        if j >= 0:
            result[order[i]] = slots[j]
    return result


def _monotone_alignment(score: np.ndarray, gap: np.ndarray) -> list[int]:
    """Best strictly increasing slot for each item (or -1): max sum of scores - gaps - unplaced prices."""
    n, m = score.shape
    best = np.full((n + 1, m + 1), -np.inf)
    move = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 slot skipped, 1 item placed, 2 item unplaced
    best[0, 0] = 0.0
    for j in range(1, m + 1):
        best[0, j] = best[0, j - 1] - gap[j - 1]
    for i in range(1, n + 1):
        best[i, 0], move[i, 0] = best[i - 1, 0] - UNPLACED_PRICE, 2
        for j in range(1, m + 1):
            options = (
                best[i, j - 1] - gap[j - 1],
                best[i - 1, j - 1] + score[i - 1, j - 1],
                best[i - 1, j] - UNPLACED_PRICE,
            )
            k = int(np.argmax(options))
            best[i, j], move[i, j] = options[k], k
    chosen = [-1] * n
    i, j = n, m
    while i > 0:
        if move[i, j] == 0:
            j -= 1
        elif move[i, j] == 1:
            chosen[i - 1] = j - 1
            i, j = i - 1, j - 1
        else:
            i -= 1
    return chosen


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
