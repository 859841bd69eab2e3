"""A child's second pass (instances.teeth._child_pass) takes each jaw's anterior type regions apart: a 6.8-year-old
phantom whose upper and lower primary lateral incisors touch across the bite, with network-like probabilities from
its truth, gets all four right; with the type regions whole the lower ones drain into their neighbours."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_arch import probabilities

from TeethSegmentationLib.instances import teeth
from TeethSegmentationLib.io.orientation import reorient_to_ras
from TeethSegmentationLib.io.resample import resample_to_spacing
from TeethSegmentationLib.phantom import make_phantom

LATERALS = (52, 62, 72, 82)  # primary lateral incisors


@pytest.fixture(scope="module")
def child() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(truth, foreground, 14-class probabilities, affine) of dev child seed 46004 on the 0.5 mm grid."""
    case = make_phantom(46004, size="realistic", fov="crop", family="A", dentition="mixed", age=6.8)
    truth = resample_to_spacing(reorient_to_ras(case.labels), 0.5, order=0)
    labels = np.asarray(truth.array).astype(np.uint8)
    foreground, types = probabilities(labels, seed=1, num_classes=14)
    return labels, foreground, types, truth.ijk_to_ras


def _numbered_as(labels: np.ndarray, fdi_map: np.ndarray) -> dict[int, int]:
    """Each true primary lateral incisor's most frequent predicted label."""
    found = {}
    for fdi in LATERALS:
        values, counts = np.unique(fdi_map[labels == fdi], return_counts=True)
        found[fdi] = int(values[np.argmax(counts)])
    return found


def test_primary_lateral_incisors_touching_across_the_bite_each_get_their_number(child, monkeypatch):
    labels, foreground, types, affine = child
    result = teeth.label_teeth(foreground, types, affine, log_warnings=False)
    assert _numbered_as(labels, np.asarray(result.fdi_map)) == {fdi: fdi for fdi in LATERALS}

    whole = teeth.unmarked_markers
    monkeypatch.setattr(teeth, "unmarked_markers", lambda *args: whole(*args[:5]))  # the jaws not taken apart
    before = teeth.label_teeth(foreground, types, affine, log_warnings=False)
    assert _numbered_as(labels, np.asarray(before.fdi_map)) != {fdi: fdi for fdi in LATERALS}


def test_the_second_pass_keeps_the_first_plane_only_where_its_own_moved_far():
    from TeethSegmentationLib.instances.occlusal import OcclusalPlane

    ras = np.array([[0.0, 0.0, -10.0], [0.0, 0.0, 10.0], [20.0, 30.0, 0.0]])  # centre height 0
    first = OcclusalPlane(np.array([0.0, 0.0, 1.0]), 0.0, True)
    tilted = np.array([0.0, np.sin(0.2), np.cos(0.2)])
    for height, moved in ((1.0, False), (-2.9, False), (3.5, True), (-6.0, True)):
        found = OcclusalPlane(tilted, float(ras.mean(axis=0) @ tilted) + height, True)
        assert teeth._moved(first, found, ras) is moved, height
    assert teeth.PLANE_SHIFT_MM == 3.0
