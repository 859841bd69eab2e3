"""Synthetic dental arches for precise unit tests of instances and numbering (no phantom needed).

Each tooth is a crown ellipsoid plus a narrower, longer root ellipsoid towards its apex, placed along a
parabolic arch by its mesio-distal width so that neighbours touch. The whole dentition can be moved
off-centre, turned (yaw, pitch), opened or closed at the bite, and teeth can be left out. With
``roots="anatomic"`` molars and upper first premolars get their textbook roots (upper molars three, lower
molars two, upper 4 two) diverging from a short trunk, with the dark furcation between them; ``detached``
parts chosen teeth's roots from their crowns by a thin gap (a fracture line or the cemento-enamel junction).
``probabilities`` turns a truth FDI map into network-like inputs (smoothed one-hot, type swaps, noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from TeethSegmentationLib.fdi import fdi_from, fdi_map_to_classes

# Mesio-distal width, bucco-lingual width, crown height, root length (mm), types 1..8.
UPPER = [
    (8.5, 7.0, 10.0, 13.0),
    (6.5, 6.0, 9.0, 13.0),
    (7.5, 8.0, 10.0, 17.0),
    (7.0, 9.0, 8.5, 14.0),
    (6.5, 9.0, 8.0, 14.0),
    (10.0, 11.0, 7.5, 13.0),
    (9.0, 11.0, 7.0, 12.0),
    (8.5, 10.0, 6.5, 11.0),
]
LOWER = [
    (5.0, 6.0, 9.0, 12.5),
    (5.5, 6.0, 9.5, 14.0),
    (7.0, 7.5, 11.0, 16.0),
    (7.0, 7.5, 8.5, 14.0),
    (7.0, 8.0, 8.0, 14.5),
    (11.0, 10.5, 7.5, 14.0),
    (10.5, 10.0, 7.0, 13.0),
    (10.0, 9.5, 6.5, 11.0),
]


@dataclass
class Arch:
    labels: np.ndarray  # uint8 FDI map [i, j, k]
    ijk_to_ras: np.ndarray  # 4x4


def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rz @ rx


def _tooth_frames(upper: bool, bite_gap_mm: float) -> list[tuple[int, np.ndarray, np.ndarray, tuple]]:
    """(fdi, centre of the crown base on the occlusal plane, md unit vector, sizes) of one arch."""
    half_width, depth = (32.0, 50.0) if upper else (30.0, 50.0)  # elliptic arch: flat front, straight sides
    u = np.linspace(-half_width, half_width, 16001)
    v = -depth * (1 - np.sqrt(np.clip(1 - (u / half_width) ** 2, 0, 1))) + (0.0 if upper else -2.0)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(u), np.diff(v)))])
    arc -= np.interp(0.0, u, arc)
    z = bite_gap_mm / 2 if upper else -bite_gap_mm / 2
    frames = []
    for side, sign in (("right", 1.0), ("left", -1.0)):
        position = 0.0
        for t, sizes in enumerate(UPPER if upper else LOWER, start=1):
            middle = position + sizes[0] / 2
            position += sizes[0]
            k = int(np.argmin(np.abs(arc - sign * middle)))
            tangent = np.array(
                [u[min(k + 1, len(u) - 1)] - u[max(k - 1, 0)], v[min(k + 1, len(u) - 1)] - v[max(k - 1, 0)], 0]
            )
            frames.append(
                (fdi_from(upper, side, t), np.array([u[k], v[k], z]), tangent / np.linalg.norm(tangent), sizes)
            )
    return frames


def make_arch(
    spacing: float = 0.6,
    missing: tuple[int, ...] = (),
    jaws: tuple[str, ...] = ("upper", "lower"),
    bite_gap_mm: float = 3.0,
    centre_ras: tuple[float, float, float] = (0.0, 0.0, 0.0),
    yaw_deg: float = 0.0,
    pitch_deg: float = 0.0,
    flip_i: bool = False,
    roots: str = "simple",
    detached: tuple[int, ...] = (),
    gap_mm: float = 0.5,
) -> Arch:
    """Truth FDI map of a synthetic dentition on an RAS-aligned grid (``flip_i``: the i axis runs to the left).

    ``detached`` teeth lose a slab ``gap_mm`` thick across their axis 1 mm below the crown (their roots are
    parted from the crown; at least one voxel layer is removed)."""
    frames = [f for jaw in jaws for f in _tooth_frames(jaw == "upper", bite_gap_mm) if f[0] not in missing]
    rotation = _rotation(yaw_deg, pitch_deg)
    centre = np.asarray(centre_ras, dtype=float)
    bases = np.array([f[1] for f in frames]).reshape(-1, 3) @ rotation.T + centre
    lo = bases.min(axis=0) - np.array([8.0, 8.0, 30.0])
    shape = np.ceil((bases.max(axis=0) + np.array([8.0, 8.0, 30.0]) - lo) / spacing).astype(int)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = lo
    if flip_i:
        affine[0, 0] = -spacing
        affine[0, 3] = lo[0] + (shape[0] - 1) * spacing
    labels = np.zeros(tuple(shape), dtype=np.uint8)
    inverse = np.linalg.inv(affine)
    for fdi, base, md, sizes in frames:
        gap = (gap_mm, spacing) if fdi in detached else None
        _draw_tooth(labels, affine, inverse, fdi, rotation, centre, base, md, sizes, roots, gap)
    return Arch(labels, affine)


def _root_parts(fdi: int, sizes: tuple) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
    """Anatomic roots of one tooth as (start in tooth coordinates md/bl/axis, unit direction, length, radius):
    a trunk below the crown, then diverging roots with the furcation between them."""
    width, depth, crown, root = sizes
    type_, upper = fdi % 10, fdi // 10 in (1, 2)
    if upper and type_ in (6, 7):  # mesio-buccal, disto-buccal, palatal
        spread = [(-0.25 * width, 0.2 * depth, -0.12, 0.2), (0.25 * width, 0.2 * depth, 0.12, 0.2),
                  (0.0, -0.25 * depth, 0.0, -0.35)]
    elif not upper and type_ in (6, 7):  # mesial, distal
        spread = [(-0.28 * width, 0.0, -0.12, 0.0), (0.28 * width, 0.0, 0.12, 0.0)]
    elif upper and type_ == 4:  # buccal, palatal
        spread = [(0.0, 0.22 * depth, 0.0, 0.2), (0.0, -0.22 * depth, 0.0, -0.2)]
    else:
        return []
    trunk = 3.5 if type_ in (6, 7) else 4.0
    radius = 0.16 * width if type_ in (6, 7) else 0.17 * depth
    parts = []
    for md_off, bl_off, md_tilt, bl_tilt in spread:
        direction = np.array([md_tilt, bl_tilt, 1.0])
        parts.append((np.array([md_off, bl_off, crown + trunk - 1.0]), direction / np.linalg.norm(direction),
                      root - trunk, radius))
    return parts


def _inside_parts(coords: np.ndarray, fdi: int, sizes: tuple, roots: str) -> np.ndarray:
    width, depth, crown, root = sizes
    ellipsoids = [  # (centre along the tooth axis, semi-axes md, bl, axis)
        (crown / 2, (width / 2 * 1.02, depth / 2, crown / 2 + 0.3)),
        (crown + root / 2 - 1.5, (width / 2 * 0.55, depth / 2 * 0.6, root / 2)),
    ]
    anatomic = _root_parts(fdi, sizes) if roots == "anatomic" else []
    if anatomic:  # the crown and a short trunk; the roots below
        trunk = 3.5 if fdi % 10 in (6, 7) else 4.0
        ellipsoids[1] = (crown + 0.5, (width / 2 * 0.75, depth / 2 * 0.75, trunk))
    inside = np.zeros(len(coords), dtype=bool)
    for height, semi in ellipsoids:
        rel = (coords - np.array([0.0, 0.0, height])) / np.array(semi)
        inside |= (rel**2).sum(axis=1) <= 1.0
    for start, direction, length, radius in anatomic:  # spindles: widest near the start, tapering to the apex
        along = (coords - start) @ direction
        across = np.linalg.norm(coords - start - along[:, None] * direction, axis=1)
        t = along / length
        inside |= (t >= -0.2) & (t <= 1.0) & (across <= radius * np.sqrt(np.clip(1 - t, 0, 1)) * 1.15)
    return inside


def _draw_tooth(labels, affine, inverse, fdi, rotation, centre, base, md, sizes, roots="simple", gap=None) -> None:
    width, depth, crown, root = sizes
    up = 1.0 if fdi // 10 in (1, 2) else -1.0
    axis_z = np.array([0.0, 0.0, up])
    bl = np.cross(axis_z, md)
    corners = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1.0, crown + root + 1.0)])
    half = np.array([width / 2 + 1.0, depth / 2 + 1.0, 1.0])
    local_corners = corners * np.where(np.arange(3) < 2, half, 1.0)
    points = base + local_corners @ np.stack([md, bl, axis_z])
    points = (points @ rotation.T) + centre
    ijk = points @ inverse[:3, :3].T + inverse[:3, 3]
    lo = np.maximum(np.floor(ijk.min(axis=0) - 1).astype(int), 0)
    hi = np.minimum(np.ceil(ijk.max(axis=0) + 2).astype(int), labels.shape)
    if np.any(hi <= lo):
        return
    grid = np.stack(
        np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    ras = grid @ affine[:3, :3].T + affine[:3, 3]
    local = (ras - centre) @ rotation - base  # back into the unrotated arch frame, relative to the crown base
    coords = np.stack([local @ md, local @ bl, local @ axis_z], axis=1)
    inside = _inside_parts(coords, fdi, sizes, roots)
    if gap is not None:  # a slab across the axis, at least one voxel layer thick
        inside &= np.abs(coords[:, 2] - (crown + 1.0)) > max(gap[0], gap[1] * 1.01) / 2
    sub = labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].reshape(-1)
    sub[inside & (sub == 0)] = fdi
    labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = sub.reshape(hi - lo)


def probabilities(
    labels: np.ndarray,
    seed: int = 0,
    swap_fraction: float = 0.0,
    noise: float = 0.05,
    sigma: float = 0.7,
    num_classes: int = 9,
) -> tuple[np.ndarray, np.ndarray]:
    """(teeth_prob [i,j,k], type_probs [C,i,j,k]) like a network's, from a truth FDI map (C = 9 or 14)."""
    rng = np.random.default_rng(seed)
    classes = fdi_map_to_classes(labels, num_classes).astype(np.int64)
    if swap_fraction > 0:
        teeth = classes > 0
        swap = teeth & (rng.random(classes.shape) < swap_fraction)
        step = np.where(rng.random(classes.shape) < 0.5, -1, 1)
        classes = np.where(swap, np.clip(classes + step, 1, 8), classes)
    probs = np.empty((num_classes, *labels.shape), dtype=np.float32)
    for c in range(num_classes):
        channel = (classes == c).astype(np.float32)
        probs[c] = ndi.gaussian_filter(channel, sigma) if sigma > 0 else channel
    probs += noise * rng.random(probs.shape, dtype=np.float32)
    probs /= probs.sum(axis=0, keepdims=True)
    return 1.0 - probs[0], probs
