"""The shape of one tooth in its own frame: crown (enamel over dentin, cusps, fissures), roots, pulp and canals.

Shapes are approximate signed distances (mm, < 0 inside) in the tooth's frame: u mesio-distal
(+ distal), v bucco-lingual (+ buccal), w along the long axis (+ towards the occlusal plane), with
w = 0 at the cemento-enamel junction. The dimensions come from ``anatomy`` (Wheeler's tables).
Everything is vectorised over the tooth's box only; ``mouth`` paints teeth and dental work with these.
"""

from __future__ import annotations

import numpy as np

from TeethSegmentationLib.phantom.anatomy import ToothShape
from TeethSegmentationLib.phantom.dentition import ToothPlan
from TeethSegmentationLib.phantom.grid import Grid


def _ramp(h: np.ndarray, start: float, power: float) -> np.ndarray:
    return np.clip((h - start) / (1 - start), 0, 1) ** power


def crown_half_widths(shape: ToothShape, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mesio-distal and bucco-lingual half widths at relative crown height h (0 cervix .. 1 tip).

    From the cervical widths (the constriction at the neck) out to the contact areas (MD, occlusal
    third) and the buccal/lingual heights of contour (cervical third), then in to the occlusal table.
    """
    a_c, b_c, a_m, b_m = shape.md_cervix / 2, shape.bl_cervix / 2, shape.md / 2, shape.bl / 2
    a = a_c + (a_m - a_c) * np.sin(np.pi / 2 * np.minimum(h / 0.65, 1))
    b = b_c + (b_m - b_c) * np.sin(np.pi / 2 * np.minimum(h / 0.35, 1))
    if shape.kind == "incisor":  # wide, thin incisal edge
        b = b * (1 - 0.8 * _ramp(h, 0.3, 1.1))
    elif shape.kind == "canine":  # pointed cusp
        a = a * (1 - 0.5 * _ramp(h, 0.55, 1.3))
        b = b * (1 - 0.55 * _ramp(h, 0.3, 1.3))
    else:  # the occlusal table is narrower than the crown
        a = a * (1 - 0.1 * _ramp(h, 0.7, 2))
        b = b * (1 - 0.22 * _ramp(h, 0.35, 2))
    return a, b


def _cusp_peaks(shape: ToothShape, u, v, scale: float = 1.0, spread: float = 1.0):
    """Max over the cusps of a Gaussian bump at each cusp tip (mm)."""
    a0, b0 = shape.md / 2, shape.bl / 2
    r = min(a0, b0)
    out = None
    for c in shape.cusps:
        d2 = ((u - scale * c.u * a0) ** 2 + (v - scale * c.v * b0) ** 2) / (spread * c.radius * r) ** 2
        bump = c.height * np.exp(-d2)
        out = bump if out is None else np.maximum(out, bump)
    return out


def _top(shape: ToothShape, u, v) -> np.ndarray:
    """Height of the occlusal/incisal surface above the cervix: incisal edge, canine tip, cusps with
    fissures between them and marginal ridges at the mesial and distal ends."""
    a0, b0, height = shape.md / 2, shape.bl / 2, shape.crown
    if shape.kind == "incisor":
        return height - 0.5 * (u / a0) ** 2
    if shape.kind == "canine":
        return height - 2.6 * np.abs(u / a0) - 1.0 * np.abs(v / b0)
    tallest = max(c.height for c in shape.cusps)
    ridge = 0.55 * tallest * np.exp(-(((np.abs(u) - 0.8 * a0) / (0.13 * a0)) ** 2) - (v / (0.55 * b0)) ** 4)
    relief = np.maximum(_cusp_peaks(shape, u, v), ridge)
    return height - tallest + relief - 0.3 * ((u / a0) ** 2 + (v / b0) ** 2)


def superellipse(u, v, a, b, exponent):
    rho = (np.abs(u / a) ** exponent + np.abs(v / b) ** exponent) ** (1 / exponent)
    return (rho - 1) * np.minimum(a, b)


def crown_sd(shape: ToothShape, u, v, w, lateral_inset=0.0, top_inset=0.0):
    """Signed distance of the crown; the occlusal relief only where it can matter (near the crown)."""
    h = np.clip(w / shape.crown, 0, 1)
    a, b = crown_half_widths(shape, h)
    lat = superellipse(u, v, a, b, shape.exponent) + lateral_inset
    near = (w > 0) & (lat <= 1.0)
    rise = w - np.float32(shape.crown)  # the relief never rises above the crown height
    if np.ndim(rise) and near.any():
        rise = np.array(np.broadcast_to(rise, near.shape))
        rise[near] = w[near] - _top(shape, u[near], v[near])
    elif not np.ndim(rise):
        rise = w - _top(shape, u, v)
    return np.maximum(np.maximum(lat, rise + top_inset), -w)


def _root_centre(shape: ToothShape, root, depth):
    """Centre line of one root at ``depth`` below the cervix, curving towards its apex shift."""
    length = root.length * shape.root
    t = np.clip(depth / length, 0, 1)
    return (
        length,
        t,
        root.du * shape.md_cervix / 2 + root.apex_u * t**1.5,
        root.dv * shape.bl_cervix / 2 + root.apex_v * t**1.5,
    )


def roots_sd(shape: ToothShape, u, v, w):
    """Signed distance of the roots and of the root trunk that joins them above the furcation."""
    a_c, b_c, depth = shape.md_cervix / 2, shape.bl_cervix / 2, -w
    out = None
    for root in shape.roots:
        length, t, cu, cv = _root_centre(shape, root, depth)
        taper = 1 - (0.35 * t if shape.open_apex else 0.75 * t**1.6)
        sd = superellipse(u - cu, v - cv, root.ru * a_c * taper, root.rv * b_c * taper, 2.0)
        sd = np.maximum(sd, np.maximum(depth - length, w - 0.3))
        out = sd if out is None else np.minimum(out, sd)
    if shape.trunk > 0:
        shrink = 1 - 0.12 * np.clip(depth / shape.trunk, 0, 1)
        sd = superellipse(u, v, a_c * shrink, b_c * shrink, shape.exponent)
        out = np.minimum(out, np.maximum(sd, np.maximum(depth - shape.trunk, w - 0.3)))
    return out


def _canals(shape: ToothShape, u, v, w) -> np.ndarray:
    """One canal per root, from the chamber to the apical constriction (open in a forming root)."""
    a_c, b_c, depth = shape.md_cervix / 2, shape.bl_cervix / 2, -w
    out = np.zeros(np.broadcast_shapes(u.shape, v.shape, w.shape), dtype=bool)
    for root in shape.roots:
        length, t, cu, cv = _root_centre(shape, root, depth)
        wide = 0.45 if shape.open_apex else 0.2
        taper = 1 - (0.2 if shape.open_apex else 0.7) * t
        ru = np.maximum(wide * shape.pulp * root.ru * a_c * taper, 0.22)
        rv = np.maximum(wide * shape.pulp * root.rv * b_c * taper, 0.22)
        end = length + 0.5 if shape.open_apex else length - 1.0
        out |= (((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1) & (depth < end) & (w < 1.0)
    return out


def pulp_mask(shape: ToothShape, u, v, w) -> np.ndarray:
    """Pulp chamber (with a horn under each cusp) and the root canals."""
    h = np.clip(w / shape.crown, 0, 1)
    a, b = crown_half_widths(shape, h)
    narrow = 0.22 if shape.kind == "incisor" else 0.32
    anterior = shape.kind in ("incisor", "canine")
    roof = shape.crown * (0.55 if anterior else 0.3) * min(shape.pulp, 1.3)
    if shape.cusps and not anterior:
        roof = roof + 0.9 * shape.pulp * _cusp_peaks(shape, u, v, scale=0.75, spread=0.6)
    floor = max(shape.trunk - 1.5, 1.0) if shape.trunk else 1.0
    p = shape.pulp
    chamber = (superellipse(u, v, 0.33 * p * a, narrow * p * b, 2.0) <= 0) & (w <= roof) & (w >= -floor)
    return chamber | _canals(shape, u, v, w)


def tooth_sd(shape: ToothShape, u, v, w) -> tuple[np.ndarray, np.ndarray]:
    """(crown, roots) signed distances; a retained root has no crown above its fracture line."""
    root = roots_sd(shape, u, v, w)
    crown = crown_sd(shape, u, v, w)
    if not shape.crown_present:
        level = shape.extra.get("fracture_mm", 0.5)
        crown = np.maximum(crown, w - level)
        root = np.maximum(root, w - level)
    if "formed_from_mm" in shape.extra:  # a crown still forming, from the cusps down: nothing below this level
        level = shape.extra["formed_from_mm"]
        crown = np.maximum(crown, level - w)
        root = np.maximum(root, level - w)
    return crown, root


def local_box(plan: ToothPlan, margin: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """RAS bounding box of the tooth (and its socket) from its local extent."""
    ext_u, ext_v = plan.md / 2 + margin + 2.0, plan.bl / 2 + margin + 3.0
    corners = np.array(
        [
            [su * ext_u, sv * ext_v, w]
            for su in (-1, 1)
            for sv in (-1, 1)
            for w in (-plan.root * 1.06 - margin, plan.crown + 1.0)
        ]
    )
    ras = plan.centre + corners @ plan.frame.T
    return ras.min(axis=0), ras.max(axis=0)


def local_coords(grid: Grid, lo, hi, centre: np.ndarray, frame: np.ndarray):
    x, y, z = grid.axes(lo, hi)
    dx, dy, dz = x - np.float32(centre[0]), y - np.float32(centre[1]), z - np.float32(centre[2])
    f = frame.astype(np.float32)
    return tuple(dx * f[0, c] + dy * f[1, c] + dz * f[2, c] for c in range(3))
