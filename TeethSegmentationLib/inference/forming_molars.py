"""Third molars forming in their crypts (9-12 years): what stage 2 sees of them reaches the instance step whole.

Two things part a forming third molar from the rest of the teeth between stage 2 and the instance step:

- It lies partly past ``near`` (the teeth stage 1 found, grown by the margin): :func:`with_forming_third_molars`
  adds what stage 2 calls a third molar beyond it, in pieces that touch the foreground inside.
- Its first crown is a few separate cusp tips, each smaller than the instance step's speck filter (20 mm3) and
  so dropped, although together they are a tooth. :func:`bridged_cusps` joins small third-molar pieces that lie
  within ``CUSP_GAP_MM`` of one another (a closing), where the group holds kept foreground (inside ``near``, or
  a third molar added beyond it; a group wholly past the margin stays out). Only in a child's scan
  (:func:`holds_primary_teeth`): in an adult's, small third-molar pieces are fragments or bone, and closing them
  made a tooth of them (a spurious 38 in a lower-only scan).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from TeethSegmentationLib.instances.options import InstanceOptions
from TeethSegmentationLib.io.volume import crop_padded

THIRD_MOLAR = 8  # the stage-2 class of the third molars (9 and 14 classes alike)
_FACES = [(axis, step) for axis in range(3) for step in (-1, 1)]
# Cusp tips of one forming crown lie up to 2 x this apart (a molar crown is about 10 mm across, with 4-5 cusps).
# 12 dev children of 8.5-12 years (seeds 47100-47111): third-molar crowns missed 10 -> 7 of 186 developing teeth
# with 2.5 mm (2.0: 8; 3.0: 7), none misnumbered or spurious, and 10 dev adults unchanged.
CUSP_GAP_MM = 2.5
# Only pieces up to this size take part: a cusp or a first crown (the germs missed were 10-60 mm3). An erupted
# third molar (300 mm3 or more) keeps its own outline: a closing would fill its furcation.
CUSP_PIECE_MM3 = 60.0
# A scan holds a child's teeth when stage 2 types at least this much of its foreground primary (a primary incisor
# is 100-200 mm3): 400-3,000 mm3 in 12 dev children of 8.5-12 years, at most 11 mm3 in 10 dev adults.
PRIMARY_MM3 = 100.0
FIRST_PRIMARY = 9  # the primary classes of a 14-class model: 9-13


def forming_third_molars(
    near: np.ndarray, foreground: np.ndarray, probs: np.ndarray, spacing: np.ndarray, threshold: float
) -> np.ndarray:
    """The foreground handed to the instance step: ``foreground`` (modified in place and returned) kept inside
    ``near`` and the forming third molars beyond it, with the gaps between a forming crown's cusps raised just
    above ``threshold`` and the instance step's own threshold."""
    gate = with_forming_third_molars(near, foreground, probs, threshold)
    bridges = None
    if len(probs) > FIRST_PRIMARY:  # only a 14-class model reads a scan as a child's
        typed = _typed(foreground, probs, threshold)  # ~10 ms, once: the child test and the cusps both read it
        if _holds_primary(typed, gate, spacing):  # an adult's scan stops here
            bridges = _bridged(typed, foreground, gate, spacing, threshold)
    if bridges is not None:
        gate |= bridges
        level = max(threshold, InstanceOptions().threshold) + 0.01
        gap = bridges & (foreground < level)
        foreground[gap] = np.float32(level)
    foreground *= gate
    return foreground


class _Typed(NamedTuple):
    """The foreground's voxels above the threshold (flat indices) and the tooth class (1..) stage 2 gives each."""

    flat: np.ndarray
    classes: np.ndarray


def _typed(foreground: np.ndarray, probs: np.ndarray, threshold: float) -> _Typed:
    flat = np.flatnonzero(foreground > threshold)
    return _Typed(flat, _tooth_class(probs, flat))


def _tooth_class(probs: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """The most likely tooth class (1..) of the voxels at flat indices ``flat``."""
    return np.argmax(probs.reshape(len(probs), -1)[1:, flat], axis=0) + 1


def holds_primary_teeth(
    foreground: np.ndarray, probs: np.ndarray, gate: np.ndarray, spacing: np.ndarray, threshold: float
) -> bool:
    """Whether stage 2 types at least ``PRIMARY_MM3`` of the foreground kept inside ``gate`` as primary teeth (a
    14-class model). Not what lies past the margin: there stage 2 takes an adult's bone for teeth too."""
    return len(probs) > FIRST_PRIMARY and _holds_primary(_typed(foreground, probs, threshold), gate, spacing)


def _holds_primary(typed: _Typed, gate: np.ndarray, spacing: np.ndarray) -> bool:
    kept = gate.reshape(-1)[typed.flat]
    voxel_mm3 = float(np.prod(np.asarray(spacing, dtype=np.float64)))
    return bool(np.count_nonzero(kept & (typed.classes >= FIRST_PRIMARY)) * voxel_mm3 >= PRIMARY_MM3)


def with_forming_third_molars(
    near: np.ndarray, foreground: np.ndarray, probs: np.ndarray, threshold: float
) -> np.ndarray:
    """``near`` (what stage 2 is asked about: the teeth stage 1 found, grown by the margin, not the rest of its
    windows) and the foreground beyond it that stage 2 calls a third molar, in pieces that touch the foreground
    inside it.

    A third molar forming in its crypt behind the second molar (10-12 years) lies partly past the margin: stage 2
    sees 56-86 % of it, of which the margin kept 16-49 %, too little to count as found (dev children, seeds
    47100+). Only third molars: what stage 2 finds past the margin of an adult's head is mostly bone it took for
    incisors, premolars or other molars (validation B head 32000, read as a child's scan when kept). Only the few
    voxels beyond ``near`` are labelled, in their own box (a whole-grid pass would take a crop 50-90 ms)."""
    beyond = np.flatnonzero((foreground > threshold) & ~near)
    if not len(beyond):
        return near.copy()
    molar = np.stack(np.unravel_index(beyond[_tooth_class(probs, beyond) == THIRD_MOLAR], near.shape), axis=1)
    if not len(molar):
        return near.copy()
    pieces, count, lo = _labelled_box(molar)
    piece = pieces[tuple((molar - lo).T)]
    touching = np.zeros(count + 1, dtype=bool)
    for axis, step in _FACES:
        beside = molar.copy()
        beside[:, axis] += step
        inside_grid = (beside[:, axis] >= 0) & (beside[:, axis] < near.shape[axis])
        at = tuple(beside[inside_grid].T)
        touching[piece[inside_grid][near[at] & (foreground[at] > threshold)]] = True
    grown = near.copy()
    grown[tuple(molar[touching[piece]].T)] = True
    return grown


def bridged_cusps(
    foreground: np.ndarray, probs: np.ndarray, gate: np.ndarray, spacing: np.ndarray, threshold: float
) -> np.ndarray | None:
    """The closing (radius ``CUSP_GAP_MM``) of the small third-molar pieces (up to ``CUSP_PIECE_MM3``), in groups
    that hold foreground inside ``gate`` (a group wholly outside stays out); None when there is none. Each cluster
    of pieces within reach of one another (a crypt's cusps) is closed in its own small box, with two distance
    maps."""
    return _bridged(_typed(foreground, probs, threshold), foreground, gate, spacing, threshold)


def _bridged(
    typed: _Typed, foreground: np.ndarray, gate: np.ndarray, spacing: np.ndarray, threshold: float
) -> np.ndarray | None:
    spacing = np.asarray(spacing, dtype=np.float64)
    found = _small_third_molar_pieces(typed, foreground.shape, spacing)
    if found is None:
        return None
    pieces, lo = found
    reach = np.ceil(CUSP_GAP_MM / spacing).astype(int) + 1
    bridges = np.zeros(foreground.shape, dtype=bool)
    for start, stop in _clusters(pieces, reach):
        start, stop = np.maximum(start + lo, 0), np.minimum(stop + lo, foreground.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
        inside = crop_padded(pieces, start - lo, tuple(int(n) for n in stop - start), 0) > 0
        closed = _closing(inside, spacing, reach)
        groups, count = ndimage.label(closed)
        kept = np.zeros(count + 1, dtype=bool)
        kept[np.unique(groups[gate[box] & (foreground[box] > threshold)])] = True
        kept[0] = False
        bridges[box] |= kept[groups]
    return bridges if bridges.any() else None


def _clusters(pieces: np.ndarray, reach: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(start, stop) of each cluster of pieces: their boxes grown by ``reach`` voxels, merged wherever they overlap
    (connected components of the overlap graph: pairwise, vectorised)."""
    boxes = [b for b in ndimage.find_objects(pieces) if b is not None]
    lo = np.array([[s.start for s in b] for b in boxes]) - reach
    hi = np.array([[s.stop for s in b] for b in boxes]) + reach
    overlap = np.all((lo[:, None] < hi[None]) & (lo[None] < hi[:, None]), axis=2)
    count, member = connected_components(csr_matrix(overlap), directed=False)
    return [(lo[member == c].min(axis=0), hi[member == c].max(axis=0)) for c in range(count)]


def _closing(mask: np.ndarray, spacing: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Binary closing of ``mask`` by a ball of radius ``CUSP_GAP_MM`` (outside the array is background: the array
    is padded by ``reach`` voxels, at least the radius, so that the dilation never meets its edge)."""
    pad = [(int(r) + 1, int(r) + 1) for r in reach]
    padded = np.pad(mask, pad)
    grown = ndimage.distance_transform_edt(~padded, sampling=spacing) <= CUSP_GAP_MM
    closed = ndimage.distance_transform_edt(grown, sampling=spacing) > CUSP_GAP_MM
    inner = tuple(slice(a, n - b) for (a, b), n in zip(pad, padded.shape, strict=True))
    return (closed | padded)[inner]


def _small_third_molar_pieces(
    typed: _Typed, shape: tuple[int, ...], spacing: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """(the third-molar pieces up to ``CUSP_PIECE_MM3``, labelled in their box; the box's first voxel) or None."""
    molar = typed.flat[typed.classes == THIRD_MOLAR]
    if not len(molar):
        return None
    pieces, count, lo = _labelled_box(np.stack(np.unravel_index(molar, shape), axis=1))
    small = np.bincount(pieces.ravel(), minlength=count + 1) * float(np.prod(spacing)) <= CUSP_PIECE_MM3
    small[0] = False
    if not small.any():
        return None
    return np.where(small[pieces], pieces, 0), lo


def _labelled_box(points: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """(connected pieces of ``points`` (N x 3 voxel indices) labelled in their own box, their count, the box's
    first voxel)."""
    lo = points.min(axis=0)
    box = np.zeros(points.max(axis=0) - lo + 1, dtype=bool)
    box[tuple((points - lo).T)] = True
    pieces, count = ndimage.label(box)
    return pieces, count, lo
