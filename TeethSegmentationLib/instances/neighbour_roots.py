"""A neighbour's root drained into a lateral incisor or canine goes back to its own tooth.

The watershed drains each voxel up the distance map. Crowded lower incisors' roots lie close together and the
foreground often fuses them over a few millimetres; there the thicker root of the lateral incisor (or canine) is
the deeper one, and the central incisor's (lateral incisor's) root below the fusion drains into it. The receiving
tooth then holds two roots, and its neighbour, cut at the fusion, keeps its crown alone: on the dev scans this
took a fifth of a lower central incisor, enough to count it split (seeds 40001, 40070), and a tenth in many more.

Lateral incisors and canines are single-rooted, so two apical branches in one are the cue, and stage 2 tells whose
root each branch is: its voxels are typed as the tooth it belongs to (the leaked roots of the dev scans were typed
central incisor at 91-100 % of their voxels). A numbered permanent lateral incisor or canine whose apical half
forks into two branches, one typed as itself and one as its mesial neighbour, gives that branch back, with the
voxels of its neighbour's type connected to it, when they touch the numbered neighbour and hold at most a third of
the receiver (a part of a root, not a tooth's worth of voxels the types got wrong). Only the first cross-section
from the apex that forks is looked at. Central incisors are left alone: the tooth in front of one is the other
side's central incisor, typed the same, so the types cannot tell the branches apart.
"""

from __future__ import annotations

import numpy as np

from TeethSegmentationLib.instances.foreground import SparseForeground, neighbour_offsets
from TeethSegmentationLib.instances.numbering import Assignment
from TeethSegmentationLib.instances.watershed import connected_parts

RECEIVERS = (2, 3)  # lateral incisors and canines: single roots, next to a tooth typed apart (tooth - 1)
SLAB_MM = 1.0  # thickness of the cross-section across the tooth's axis in which two branches are counted
SLAB_STEP_MM = 0.5  # from the apex towards the crown, over the apical half of the tooth
BRANCH_MM3 = 2.0  # a branch's cross-section holds at least this much (a root near its apex; not a speck)
# A neighbour's root below the fusion is part of one root: at most this share of the receiver. On the dev scans the
# roots given back held 2-24 % of it; validation B jaws 31004 gave 45 % of a lateral incisor (stage 2 typed a broad
# part of it central) to the central incisor, and split it.
ROOT_SHARE = 1 / 3


def return_neighbour_roots(
    labels: np.ndarray,
    sparse: SparseForeground,
    ras: np.ndarray,
    assignment: Assignment,
    smooth_type: np.ndarray,
    voxel_mm3: float,
) -> tuple[np.ndarray, bool]:
    """Compact labels with each leaked neighbour's root (module docstring) moved to its numbered tooth; whether any
    moved. ``smooth_type``: each compact voxel's smoothed argmax type (1..8, with a 14-class model 1..13)."""
    fdi = np.asarray(assignment.fdi)
    number_of = {int(f): label for label, f in enumerate(fdi, start=1) if f}
    labels = labels.copy()
    moved = False
    for label, tooth_fdi in enumerate(fdi, start=1):
        quadrant, tooth = divmod(int(tooth_fdi), 10)
        neighbour = number_of.get(10 * quadrant + tooth - 1)
        if not 1 <= quadrant <= 4 or tooth not in RECEIVERS or neighbour is None:
            continue
        members = np.flatnonzero(labels == label)
        if not len(members):
            continue
        apical = assignment.normal if assignment.upper[label - 1] else -assignment.normal
        root = _foreign_root(members, ras[members] @ apical, sparse, smooth_type, tooth, voxel_mm3)
        if root is not None and len(root) <= ROOT_SHARE * len(members) and _touches(root, neighbour, labels, sparse):
            labels[root] = neighbour
            moved = True
    return labels, moved


def _foreign_root(
    members: np.ndarray, height: np.ndarray, sparse: SparseForeground, smooth_type: np.ndarray, tooth: int,
    voxel_mm3: float,
) -> np.ndarray | None:
    """The voxels of ``members`` (a tooth of type ``tooth``) that are its mesial neighbour's root, or None:
    the apical branch typed as the neighbour, beside one typed as the tooth itself, and the voxels of the
    neighbour's type connected to it. ``height``: each member's position along the apical direction."""
    branches = _apical_branches(members, height, sparse, voxel_mm3)
    kinds = [int(np.bincount(smooth_type[b]).argmax()) for b in branches]
    foreign = [b for b, kind in zip(branches, kinds, strict=True) if kind == tooth - 1]
    if not foreign or tooth not in kinds:
        return None
    seed = np.concatenate(foreign)
    theirs = np.union1d(members[smooth_type[members] == tooth - 1], seed)
    grown = [part for part in connected_parts(theirs, sparse) if np.isin(seed, part).any()]
    return np.concatenate(grown)


def _apical_branches(
    members: np.ndarray, height: np.ndarray, sparse: SparseForeground, voxel_mm3: float
) -> list[np.ndarray]:
    """The connected parts of ``members`` beyond the first cross-section, from the apex over the apical half, that
    holds two parts of at least BRANCH_MM3 each (the parts reaching into it); [] when none forks. A later fork is not
    looked for, even where the first one's branches turn out to be no pair of roots."""
    top, bottom = float(height.max()), float(height.min())
    for level in np.arange(top - SLAB_MM, top - (top - bottom) / 2, -SLAB_STEP_MM):
        slab = members[(height >= level) & (height < level + SLAB_MM)]
        wide = [part for part in connected_parts(slab, sparse) if len(part) * voxel_mm3 >= BRANCH_MM3]
        if len(wide) >= 2:
            beyond = connected_parts(members[height >= level], sparse)
            return [part for part in beyond if any(np.isin(w, part).any() for w in wide)]
    return []


def _touches(voxels: np.ndarray, label: int, labels: np.ndarray, sparse: SparseForeground) -> bool:
    """Whether any of ``voxels`` has a face neighbour labelled ``label``."""
    for offset, _length in neighbour_offsets(sparse.shape, np.ones(3), full=False):
        neighbour = sparse.lookup[sparse.flat[voxels] + offset]
        if (labels[neighbour[neighbour >= 0]] == label).any():
            return True
    return False
