"""Geometry helpers shared by the volume and DICOM tests."""

import numpy as np


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation matrix from three angles in degrees (x, then y, then z)."""
    cx, cy, cz = np.cos(np.radians([ax, ay, az]))
    sx, sy, sz = np.sin(np.radians([ax, ay, az]))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx
