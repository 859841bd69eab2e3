"""Tiny labelled CBCT cases for the training tests: phantom.make_phantom(size="tiny") when it is there.

Until ``TeethSegmentationLib.phantom`` lands, a stand-in of the same shape: a U-shaped arch of
ellipsoid teeth (FDI labels, both jaws, both sides) in bone and noise, 0.5 mm voxels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from TeethSegmentationLib.io.read_write import write_volume
from TeethSegmentationLib.io.volume import Volume, make_matrix


def _stand_in(seed: int, n: int = 56) -> tuple[Volume, Volume]:
    rng = np.random.default_rng(seed)
    spacing = 0.5
    grid = (np.indices((n, n, n)).transpose(1, 2, 3, 0) - (n - 1) / 2) * spacing  # mm, RAS, centred
    image = rng.normal(0.0, 40.0, (n, n, n)).astype(np.float32)
    labels = np.zeros((n, n, n), dtype=np.uint8)
    image[np.abs(grid[..., 2]) < 6] += 400.0  # a slab of bone around the teeth
    for upper, quadrants in ((True, (1, 2)), (False, (4, 3))):
        z = 3.0 if upper else -3.0
        for q, sign in zip(quadrants, (1, -1), strict=True):  # quadrants 1 and 4 on the right (+x)
            for t in range(1, 6):
                angle = np.deg2rad(12 + 17 * (t - 1)) + rng.normal(0, 0.03)
                centre = np.array([sign * 10 * np.sin(angle), 10 * np.cos(angle) - 4, z])
                radii = np.array([1.2 + 0.2 * t, 1.2 + 0.2 * t, 2.4])
                inside = (((grid - centre) / radii) ** 2).sum(-1) <= 1
                labels[inside] = 10 * q + t
                image[inside] = 1200.0 + rng.normal(0, 60.0)
    matrix = make_matrix(np.eye(3), (spacing,) * 3, (-(n - 1) / 2 * spacing,) * 3)
    return Volume(image, matrix, "RAS"), Volume(labels, matrix, "RAS")


def tiny_case(seed: int) -> tuple[Volume, Volume]:
    """(image, FDI labels) of a tiny case."""
    try:
        from TeethSegmentationLib.phantom import make_phantom
    except ImportError:
        return _stand_in(seed)
    case = make_phantom(seed, size="tiny")
    return case.image, case.labels


def write_cases(folder: Path, count: int, seed: int = 0) -> list[tuple[Path, Path]]:
    """caseNN.nrrd + caseNN.labels.nrrd in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(count):
        image, labels = tiny_case(seed + i)
        img_path = write_volume(image, folder / f"case{i:02d}.nrrd")
        lab_path = write_volume(labels, folder / f"case{i:02d}.labels.nrrd")
        pairs.append((img_path, lab_path))
    return pairs
