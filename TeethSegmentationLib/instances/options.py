"""The instance step's tuning options, in one object passed to every step."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
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
    contact_threshold: float = 0.5  # the contacts network's probability above which a voxel lies between two teeth

    def neck_depth(self, peak_mm: float) -> float:
        """How far both sides must rise above a neck for it to separate two teeth."""
        return max(self.neck_mm, self.neck_fraction * peak_mm)
