"""One tooth drawn in its own small box: crown (enamel over dentin), roots, pulp, socket.

Shapes are approximate signed distances (mm, < 0 inside) in the tooth's frame: u mesio-distal
(+ distal), v bucco-lingual (+ buccal), w along the long axis (+ towards the occlusal plane), with
w = 0 at the cemento-enamel junction. Everything is vectorised over the box only.
"""

from __future__ import annotations

import numpy as np

from TeethSegmentationLib.phantom import tissue as T
from TeethSegmentationLib.phantom.dentition import ToothPlan
from TeethSegmentationLib.phantom.grid import Grid, slices

KIND = {1: "incisor", 2: "incisor", 3: "canine", 4: "premolar", 5: "premolar", 6: "molar", 7: "molar", 8: "molar"}
EXPONENT = {"incisor": 2.2, "canine": 2.0, "premolar": 2.3, "molar": 3.0}  # crown outline: boxier molars
ENAMEL_SIDE = {"incisor": 0.9, "canine": 1.1, "premolar": 1.3, "molar": 1.5}
ENAMEL_TOP = {"incisor": 1.0, "canine": 2.0, "premolar": 1.8, "molar": 2.2}

# Roots as fractions of the cervical half-widths: (du, dv, ru, rv, length, apex shift u mm, apex shift v mm).
_ONE = [(0, 0, 0.95, 0.95, 1.0, 0.3, 0)]
ROOTS = {
    (True, 1): _ONE,
    (True, 2): [(0, 0, 0.95, 0.95, 1.0, 0.9, 0)],
    (True, 3): [(0, 0, 0.95, 0.95, 1.0, 0.7, 0)],
    (True, 4): [(0, 0.5, 0.85, 0.5, 1.0, 0.2, 1.3), (0, -0.5, 0.85, 0.5, 0.95, 0.2, -1.3)],
    (True, 5): _ONE,
    (True, 6): [
        (-0.5, 0.45, 0.4, 0.45, 0.95, -1.3, 1.6),
        (0.5, 0.45, 0.36, 0.42, 0.88, 1.3, 1.6),
        (0, -0.5, 0.45, 0.45, 1.05, 0, -2.6),
    ],
    (True, 7): [
        (-0.45, 0.45, 0.4, 0.45, 0.95, -0.6, 0.9),
        (0.45, 0.45, 0.36, 0.42, 0.88, 0.8, 0.9),
        (0, -0.5, 0.45, 0.45, 1.0, 0, -1.5),
    ],
    (True, 8): [(0, 0, 0.85, 0.85, 0.9, 1.0, 0)],
    (False, 1): [(0, 0, 0.95, 0.95, 1.0, 0, 0)],
    (False, 2): [(0, 0, 0.95, 0.95, 1.0, 0.2, 0)],
    (False, 3): [(0, 0, 0.95, 0.95, 1.0, 0.5, 0)],
    (False, 4): _ONE,
    (False, 5): _ONE,
    (False, 6): [(-0.55, 0, 0.38, 0.9, 1.0, -0.6, 0), (0.55, 0, 0.36, 0.85, 0.93, 1.3, 0)],
    (False, 7): [(-0.5, 0, 0.4, 0.9, 1.0, -0.2, 0), (0.5, 0, 0.38, 0.85, 0.93, 0.9, 0)],
    (False, 8): [(-0.35, 0, 0.5, 0.85, 0.9, 0.5, 0), (0.35, 0, 0.5, 0.85, 0.85, 1.2, 0)],
}
TRUNK = {
    (True, 4): 6.0,
    (True, 6): 4.0,
    (True, 7): 4.5,
    (True, 8): 5.0,
    (False, 6): 3.5,
    (False, 7): 4.0,
    (False, 8): 4.5,
}


def _ramp(h: np.ndarray, start: float, power: float) -> np.ndarray:
    return np.clip((h - start) / (1 - start), 0, 1) ** power


def crown_half_widths(plan: ToothPlan, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mesio-distal and bucco-lingual half widths at relative crown height h (0 cervix .. 1 tip)."""
    kind = KIND[plan.type]
    a = 0.74 + 0.26 * np.sin(np.pi / 2 * np.minimum(h / 0.6, 1))
    b = 0.82 + 0.18 * np.sin(np.pi / 2 * np.minimum(h / 0.3, 1))
    if kind == "incisor":  # wide, thin incisal edge
        b = b * (1 - 0.8 * _ramp(h, 0.3, 1.1))
    elif kind == "canine":  # pointed cusp
        a = a * (1 - 0.55 * _ramp(h, 0.55, 1.3))
        b = b * (1 - 0.55 * _ramp(h, 0.3, 1.3))
    else:
        a = a * (1 - 0.12 * _ramp(h, 0.6, 2))
        b = b * (1 - 0.2 * _ramp(h, 0.3, 2))
    return a * plan.md / 2, b * plan.bl / 2


def _top(plan: ToothPlan, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Height of the occlusal/incisal surface above the cervix: edge, cusp, two cusps or four."""
    a0, b0, height = plan.md / 2, plan.bl / 2, plan.crown
    kind = KIND[plan.type]
    if kind == "incisor":
        return height - 0.5 * (u / a0) ** 2
    if kind == "canine":
        return height - 2.6 * np.abs(u / a0) - 1.0 * np.abs(v / b0)
    if kind == "premolar":
        groove = 1.6 * np.exp(-((v / (0.3 * b0)) ** 2))
        lingual = 0.0 if plan.upper else 1.2 * np.clip(-v / b0, 0, 1)  # lower premolars: small lingual cusp
        return height - groove - lingual - 0.6 * (u / a0) ** 2
    fossa = np.maximum(np.exp(-((u / (0.22 * a0)) ** 2)), np.exp(-((v / (0.22 * b0)) ** 2)))
    return height - 1.4 * fossa - 0.5 * ((u / a0) ** 2 + (v / b0) ** 2)


def _superellipse(u, v, a, b, exponent):
    rho = (np.abs(u / a) ** exponent + np.abs(v / b) ** exponent) ** (1 / exponent)
    return (rho - 1) * np.minimum(a, b)


def crown_sd(plan: ToothPlan, u, v, w, lateral_inset=0.0, top_inset=0.0):
    h = np.clip(w / plan.crown, 0, 1)
    a, b = crown_half_widths(plan, h)
    lat = _superellipse(u, v, a, b, EXPONENT[KIND[plan.type]])
    return np.maximum(np.maximum(lat + lateral_inset, w - _top(plan, u, v) + top_inset), -w)


def _roots(plan: ToothPlan, u, v, w, inset_canal: bool = False):
    """Signed distance of the roots (and the root trunk of multi-rooted teeth); with inset_canal, the canals."""
    a_c, b_c = plan.md / 2 * 0.74, plan.bl / 2 * 0.82
    key = (plan.upper, plan.type)
    out = None
    depth = -w
    for du, dv, ru, rv, length, shift_u, shift_v in ROOTS[key]:
        length = length * plan.root
        t = np.clip(depth / length, 0, 1)
        cu = du * a_c + shift_u * t**1.5
        cv = dv * b_c + shift_v * t**1.5
        taper = 1 - 0.78 * t**1.5
        if inset_canal:
            r = np.maximum(0.2 * min(ru * a_c, rv * b_c) * taper, 0.25)
            sd = np.maximum(np.hypot(u - cu, v - cv) - r, np.maximum(depth - (length - 1.2), w - 0.5))
        else:
            sd_ = _superellipse(u - cu, v - cv, ru * a_c * taper, rv * b_c * taper, 2.0)
            sd = np.maximum(sd_, np.maximum(depth - length, w - 0.3))
        out = sd if out is None else np.minimum(out, sd)
    trunk = TRUNK.get(key, 0.0)
    if trunk and not inset_canal:
        shrink = 1 - 0.15 * np.clip(depth / trunk, 0, 1)
        sd = _superellipse(u, v, a_c * shrink, b_c * shrink, EXPONENT[KIND[plan.type]])
        out = np.minimum(out, np.maximum(sd, np.maximum(depth - trunk, w - 0.3)))
    return out


def _pulp(plan: ToothPlan, u, v, w):
    h = np.clip(w / plan.crown, 0, 1)
    a, b = crown_half_widths(plan, h)
    narrow = 0.22 if KIND[plan.type] == "incisor" else 0.33
    top = plan.crown * (0.6 if KIND[plan.type] in ("incisor", "canine") else 0.45)
    floor = TRUNK.get((plan.upper, plan.type), 1.5)
    chamber = np.maximum(_superellipse(u, v, 0.3 * a, narrow * b, 2.0), np.maximum(w - top, -w - floor))
    return np.minimum(chamber, _roots(plan, u, v, w, inset_canal=True)) <= 0


def local_box(plan: ToothPlan, margin: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """RAS bounding box of the tooth (and its socket) from its local extent."""
    ext_u, ext_v = plan.md / 2 + margin + 1.5, plan.bl / 2 + margin + 2.5
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


def paint_tooth(tissue: np.ndarray, labels: np.ndarray, grid: Grid, plan: ToothPlan, fine: bool) -> dict | None:
    """Draw one tooth (or implant) into the arrays; returns its metal object for streaks, if any."""
    box = grid.index_box(*local_box(plan))
    if box is None:
        return None
    sl = slices(*box)
    u, v, w = local_coords(grid, *box, plan.centre, plan.frame)
    tis, lab = tissue[sl], labels[sl]
    free = lab == 0
    root_sd = _roots(plan, u, v, w)
    bone = np.isin(tis, T.BONE)
    socket = (w < -1.5) & free
    tis[socket & (root_sd <= 2.2) & ~bone] = T.TRABECULAR
    tis[socket & (root_sd > 1.4) & (root_sd <= 2.2) & ~bone] = T.CORTICAL
    bone = np.isin(tis, T.BONE)
    if fine:  # lamina dura and periodontal ligament: only visible on fine grids
        tis[free & bone & (w < -1.0) & (root_sd > 0.25) & (root_sd <= 0.7)] = T.CORTICAL
        tis[free & bone & (w < -1.0) & (root_sd > 0) & (root_sd <= 0.25)] = T.SOFT
    if plan.implant:
        return _paint_implant(tis, lab, plan, u, v, w)
    sd_crown = crown_sd(plan, u, v, w)
    if plan.impacted:  # the dental follicle: a dark rim around the unerupted crown
        tis[free & (sd_crown > 0) & (sd_crown <= 0.9) & (w > -0.5)] = T.SOFT
    tooth = free & (np.minimum(sd_crown, root_sd) <= 0)
    if not tooth.any():
        return None
    inner = crown_sd(
        plan,
        u,
        v,
        w,
        ENAMEL_SIDE[KIND[plan.type]] * np.clip(w / (0.35 * plan.crown), 0, 1),
        ENAMEL_TOP[KIND[plan.type]],
    )
    enamel = tooth & (sd_crown <= 0) & (inner > 0) & (w > 0)
    pulp = tooth & _pulp(plan, u, v, w)
    lab[tooth] = plan.fdi
    tis[tooth] = T.DENTIN
    tis[enamel] = T.ENAMEL
    tis[pulp] = T.PULP
    return _paint_restoration(tis, tooth, plan, u, v, w, sd_crown, pulp)


def _paint_restoration(tis, tooth, plan: ToothPlan, u, v, w, sd_crown, pulp) -> dict | None:
    if plan.restoration is None:
        return None
    if plan.restoration == "filling":
        cavity = _superellipse(u, v, 0.42 * plan.md / 2, 0.36 * plan.bl / 2, 2.0) <= 0
        metal = tooth & cavity & (w > plan.crown - 3.4)
    else:  # a metal crown: the outer 1.4 mm of the crown
        metal = tooth & (sd_crown <= 0) & (crown_sd(plan, u, v, w, 1.4, 1.6) > 0) & (w > 0.3)
    tis[metal] = T.AMALGAM
    if plan.restoration == "rct":
        tis[pulp] = T.GUTTA
    return _metal_object(plan, strength=1.0 if plan.restoration != "filling" else 0.6)


def _paint_implant(tis, lab, plan: ToothPlan, u, v, w) -> dict:
    """A threaded titanium screw where the root was, with a porcelain-fused-to-metal crown; unlabelled."""
    free = lab == 0
    length = min(plan.root * 0.85, 12.0)
    radius = 1.9 + 0.25 * np.sin(w * 2 * np.pi / 0.8)
    screw = (np.hypot(u, v) <= radius) & (w < 0.5) & (w > -length)
    tis[free & screw] = T.TITANIUM
    crown = crown_sd(plan, u, v, w) <= 0
    tis[free & crown] = T.CERAMIC
    tis[free & crown & (crown_sd(plan, u, v, w, 1.0, 1.5) <= 0)] = T.AMALGAM
    return _metal_object(plan, strength=1.0)


def _metal_object(plan: ToothPlan, strength: float) -> dict:
    tip = plan.centre + plan.frame[:, 2] * plan.crown * 0.7
    z = sorted([float(plan.centre[2] - plan.frame[2, 2] * 2.0), float(tip[2])])
    return {"x": float(tip[0]), "y": float(tip[1]), "z": z, "strength": strength}


def paint_brackets(tissue: np.ndarray, labels: np.ndarray, grid: Grid, plans: list[ToothPlan]) -> list[dict]:
    """Orthodontic brackets on the buccal crown surfaces (unlabelled metal)."""
    objects = []
    for plan in plans:
        h = np.array(0.55)
        b = float(crown_half_widths(plan, h)[1])
        centre = plan.centre + plan.frame @ np.array([0.0, b + 0.7, 0.55 * plan.crown])
        box = grid.index_box(centre - 2.5, centre + 2.5)
        if box is None:
            continue
        u, v, w = local_coords(grid, *box, centre, plan.frame)
        sl = slices(*box)
        bracket = (np.abs(u) <= 1.6) & (np.abs(v) <= 0.7) & (np.abs(w) <= 1.5) & (labels[sl] == 0)
        tissue[sl][bracket] = T.AMALGAM
        objects.append(
            {
                "x": float(centre[0]),
                "y": float(centre[1]),
                "z": [float(centre[2]) - 1.5, float(centre[2]) + 1.5],
                "strength": 0.5,
            }
        )
    return objects
