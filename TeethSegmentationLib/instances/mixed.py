"""FDI numbers for a mixed dentition: primary teeth, erupted permanent teeth and permanent teeth still
developing in their crypts, from per-instance summaries (like :mod:`numbering`).

:func:`assign_teeth` is the entry point. The mixed rules run only when the types network tells primary
from permanent teeth (a 14-class model: ``primary_probs`` given) and at least ``MIN_PRIMARY`` instances are
mostly primary; otherwise :func:`numbering.assign_fdi` numbers the teeth exactly as before, so an adult
scan keeps today's labels and never gets a 5x-8x number.

1. Jaws as for adults (a known occlusal plane, or the centroids' two clusters).
2. Developing: a permanent tooth in its crypt has its occlusal end (crown tip) deep in the bone, more than
   ``DEVELOPING_DEPTH_MM`` beyond its jaw's occlusal level. The level is a low quantile of the depths of
   the jaw's crown tips, so the erupted teeth set it even at 6 years, when half the teeth are still
   forming; an erupting tooth (tip a few mm short of the level) counts as erupted.
3. Erupted layer: the arch is fitted through the erupted teeth, which the adults' dynamic programme
   aligns to the 16 places with each place's probability = its permanent + its primary type's (a primary
   second molar holds the second premolar's place, in front of the first permanent molar). A tooth at
   places 1-5 is primary when its primary probability outweighs the permanent one.
4. Developing layer: projected onto the same arch and aligned to the permanent places that no erupted
   permanent tooth holds, by the place along the arch and the types: a premolar under a primary molar, a
   canine above or below the primary canine, a second molar behind the first. Depth separates them from
   the erupted teeth above them, the place along the arch numbers them.
"""

from __future__ import annotations

import numpy as np

from TeethSegmentationLib.fdi import PRIMARY_TYPES
from TeethSegmentationLib.instances import numbering
from TeethSegmentationLib.instances.numbering import Assignment

MIN_PRIMARY = 2  # instances mostly primary before the scan is read as a child's
DEVELOPING_DEPTH_MM = 4.0
LEVEL_QUANTILE = 0.25


def is_mixed(type_probs: np.ndarray, primary_probs: np.ndarray | None) -> bool:
    """Whether at least MIN_PRIMARY instances are mostly primary (their primary probabilities sum past half)."""
    if primary_probs is None or len(primary_probs) == 0:
        return False
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
) -> Assignment:
    """FDI numbers of N instances: the adults' :func:`numbering.assign_fdi`, or the mixed dentition's rules.

    ``type_probs`` (N, 8) and ``primary_probs`` (N, 5): mean probabilities of the permanent and primary types;
    ``extent`` (N, 2): the lowest and highest height of each instance's voxels along the occlusal normal (mm).
    """
    if extent is None or not is_mixed(type_probs, primary_probs):
        return numbering.assign_fdi(centroids, type_probs, apex_skew, side_sigma_mm, plane)
    return assign_mixed(centroids, type_probs, primary_probs, apex_skew, extent, side_sigma_mm, plane)


def developing_mask(extent: np.ndarray, upper: np.ndarray, depth_mm: float = DEVELOPING_DEPTH_MM) -> np.ndarray:
    """Teeth whose crown tip lies more than ``depth_mm`` deeper in their jaw than the jaw's occlusal level."""
    extent = np.asarray(extent, dtype=np.float64).reshape(-1, 2)
    # Depth into the jaw of each occlusal end: upper crowns point down (their lowest voxel), lower ones up.
    depth = np.where(upper, extent[:, 0], -extent[:, 1])
    out = np.zeros(len(extent), dtype=bool)
    for jaw in (True, False):
        members = upper == jaw
        if members.sum() >= 3:
            level = float(np.quantile(depth[members], LEVEL_QUANTILE))
            out[members] = depth[members] - level > depth_mm
    return out


def assign_mixed(
    centroids: np.ndarray,
    type_probs: np.ndarray,
    primary_probs: np.ndarray,
    apex_skew: np.ndarray,
    extent: np.ndarray,
    side_sigma_mm: float = 2.5,
    plane: tuple[np.ndarray, float] | None = None,
) -> Assignment:
    """The mixed dentition's numbers (module docstring, steps 1-4); ``developing`` marks the deep teeth."""
    centroids = np.asarray(centroids, dtype=np.float64).reshape(-1, 3)
    perm, prim = np.asarray(type_probs, dtype=np.float64), np.asarray(primary_probs, dtype=np.float64)
    if plane is not None:
        normal, offset = np.asarray(plane[0], dtype=np.float64), float(plane[1])
        upper, two, warnings = centroids @ normal > offset, True, []
    else:
        normal = numbering.occlusal_normal(centroids)
        upper, offset, two, warnings = numbering.split_jaws(centroids, np.asarray(apex_skew, np.float64), normal)
    deep = developing_mask(extent, upper)
    by_place = perm.copy()
    by_place[:, : len(PRIMARY_TYPES)] += prim
    fdi = np.zeros(len(centroids), dtype=int)
    positions = np.zeros(len(centroids))
    fits = {}
    for jaw in (True, False):
        members = np.flatnonzero(upper == jaw)
        if len(members) == 0:
            continue
        erupted, forming = members[~deep[members]], members[deep[members]]
        fits[jaw] = numbering.fit_arch(centroids[erupted if len(erupted) >= 5 else members], normal)
        positions[members] = numbering.arch_positions(centroids[members], fits[jaw])
        fdi[erupted] = numbering.align_arch(by_place[erupted], positions[erupted], jaw, side_sigma_mm)
        for i in erupted:
            if fdi[i] and fdi[i] % 10 <= len(PRIMARY_TYPES) and prim[i, fdi[i] % 10 - 1] > perm[i, fdi[i] % 10 - 1]:
                fdi[i] += 40  # the primary tooth of that place: 15 -> 55
        taken = {int(n) for n in fdi[erupted] if 0 < n < 50}
        if len(forming):
            fdi[forming] = numbering.align_arch(perm[forming], positions[forming], jaw, side_sigma_mm, blocked=taken)
    return Assignment(fdi, upper, positions, normal, offset, two, warnings, fits, developing=deep)
