"""The label map's way back from the 0.5 mm grid onto the scan's own grid (inference/paste.py)."""

from __future__ import annotations

import numpy as np

from TeethSegmentationLib.inference.paste import agreeing_probability, grown_labels, labels_to_input_grid
from TeethSegmentationLib.io.volume import Volume
from TeethSegmentationLib.metrics import dice

RADIUS_MM = 4.0


def _grid(shape: tuple[int, int, int], spacing: float, origin: tuple[float, float, float]) -> Volume:
    matrix = np.diag([spacing, spacing, spacing, 1.0])
    matrix[:3, 3] = origin
    return Volume(np.zeros(shape, np.uint8), matrix, space="RAS")


def _distance(volume: Volume, centre: np.ndarray) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in volume.shape], indexing="ij"), -1).reshape(-1, 3)
    return np.linalg.norm(volume.ijk_to_ras_points(ijk) - centre, axis=1).reshape(volume.shape)


def _fine_ball(centre: np.ndarray) -> tuple[Volume, np.ndarray]:
    """A tooth-like ball on a 0.5 mm grid: its probability falls off smoothly across the surface, as a network's
    does, and the label map is that probability thresholded at 0.5."""
    fine = _grid((24, 24, 24), 0.5, (-6.0, -6.0, -6.0))
    probability = 1 / (1 + np.exp((_distance(fine, centre) - RADIUS_MM) / 0.4))
    fine.array[probability > 0.5] = 36
    return fine, probability.astype(np.float32)


def test_the_surface_follows_the_probability_not_the_fine_voxels() -> None:
    """On a 0.3 mm scan grid, the pasted ball's surface lies within 0.1 mm of the true one; the nearest fine
    voxel's label draws it in 0.5 mm steps, up to a quarter of a voxel off, and matches the true ball worse."""
    centre = np.array([0.13, -0.21, 0.37])  # off the fine grid's voxel centres
    fine, probability = _fine_ball(centre)
    scan = _grid((36, 38, 34), 0.3, (-5.2, -5.5, -4.9))
    truth = _distance(scan, centre) <= RADIUS_MM
    smooth = labels_to_input_grid(fine, scan, probability, 0.5)
    nearest = labels_to_input_grid(fine, scan)
    assert set(np.unique(smooth)) == {0, 36}
    distance = _distance(scan, centre)
    assert (smooth[distance < RADIUS_MM - 0.1] == 36).all() and (smooth[distance > RADIUS_MM + 0.1] == 0).all()
    assert not ((nearest[distance < RADIUS_MM - 0.1] == 36).all() and (nearest[distance > RADIUS_MM + 0.1] == 0).all())
    assert dice(smooth > 0, truth) > dice(nearest > 0, truth) + 0.01


def test_on_its_own_grid_the_paste_gives_the_labels_unchanged() -> None:
    """The instance step's decisions hold at every fine voxel: a speck it dropped (high probability, no label)
    stays out and a hole it filled (low probability, labelled) stays in."""
    fine, probability = _fine_ball(np.zeros(3))
    probability[2:4, 2:4, 2:4] = 0.95  # a speck far from the tooth, dropped
    fine.array[12, 12, 12], probability[12, 12, 12] = 36, 0.1  # a filled pulp voxel
    fine.array[20, 12, 12] = 11  # a second label
    probability[20, 12, 12] = 0.9
    np.testing.assert_array_equal(labels_to_input_grid(fine, fine, probability, 0.5), fine.array)


def test_a_dropped_speck_never_comes_back_on_a_finer_grid() -> None:
    fine, probability = _fine_ball(np.zeros(3))
    probability[1:5, 1:5, 1:5] = 0.99
    scan = _grid((40, 40, 40), 0.3, (-6.0, -6.0, -6.0))
    pasted = labels_to_input_grid(fine, scan, probability, 0.5)
    speck = _distance(scan, fine.ijk_to_ras_points([[2.5, 2.5, 2.5]])[0]) < 1.0
    assert speck.any() and not pasted[speck].any()


def test_agreeing_probability_and_grown_labels() -> None:
    labels = np.zeros((5, 5, 5), np.uint8)
    labels[2, 2, 2], labels[2, 2, 3] = 21, 22
    foreground = np.full(labels.shape, 0.8, np.float32)
    foreground[2, 2, 3] = 0.2
    agreed = agreeing_probability(labels, foreground, 0.5)
    assert ((agreed > 0.5) == (labels > 0)).all()
    assert agreed[2, 2, 2] == np.float32(0.8) and 0.5 < agreed[2, 2, 3] < 0.51
    grown = grown_labels(labels)
    assert grown[2, 2, 2] == 21 and grown[2, 2, 3] == 22  # a tooth keeps its own label
    assert grown[1, 1, 1] == 21 and grown[3, 3, 4] == 22 and grown[0, 0, 0] == 0
