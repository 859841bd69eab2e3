"""A mouth as it comes: natural teeth in their sockets, and dental work: fillings (small and wide),
root-canal fillings, metal crowns, bridge pontics, implants with crowns and orthodontic brackets. Only
natural teeth are labelled: a pontic, an implant and a bracket are drawn into unlabelled voxels."""

from __future__ import annotations

import numpy as np

from TeethSegmentationLib.phantom import tissue as T
from TeethSegmentationLib.phantom.dentition import ToothPlan
from TeethSegmentationLib.phantom.grid import Grid, slices
from TeethSegmentationLib.phantom.tooth import (
    crown_half_widths,
    crown_sd,
    local_box,
    local_coords,
    pulp_mask,
    superellipse,
    tooth_sd,
)

RESTORATIONS = ("filling", "wide", "crown", "rct", "rct_wide")


def _socket(tis, free, u, v, w, root_sd, fine: bool) -> None:
    """Alveolar bone around the roots, with the lamina dura and the periodontal ligament on fine grids."""
    bone = np.isin(tis, T.BONE)
    socket = (w < -1.5) & free
    tis[socket & (root_sd <= 2.2) & ~bone] = T.TRABECULAR
    tis[socket & (root_sd > 1.4) & (root_sd <= 2.2) & ~bone] = T.CORTICAL
    if fine:
        bone = np.isin(tis, T.BONE)
        tis[free & bone & (w < -1.0) & (root_sd > 0.25) & (root_sd <= 0.7)] = T.CORTICAL
        tis[free & bone & (w < -1.0) & (root_sd > 0) & (root_sd <= 0.25)] = T.SOFT


def paint_tooth(tissue: np.ndarray, labels: np.ndarray, grid: Grid, plan: ToothPlan, fine: bool) -> dict | None:
    """Draw one natural tooth, implant or pontic into the arrays; returns its metal object for streaks, if any."""
    box = grid.index_box(*local_box(plan))
    if box is None:
        return None
    sl = slices(*box)
    u, v, w = local_coords(grid, *box, plan.centre, plan.frame)
    tis, lab = tissue[sl], labels[sl]
    free = lab == 0
    if plan.pontic:
        return paint_pontic(tis, lab, plan, u, v, w)
    shape = plan.shape
    sd_crown, root_sd = tooth_sd(shape, u, v, w)
    # A primary root ends at its successor's follicle (resorbed there), whose dark rim its socket leaves alone.
    follicle = (tis == T.SOFT) & (w < 0) if shape.extra.get("resorbed_by_follicle") else None
    _socket(tis, free if follicle is None else free & ~follicle, u, v, w, root_sd, fine)
    if plan.implant:
        return paint_implant(tis, lab, plan, u, v, w)
    if plan.impacted:  # the dental follicle: a dark rim around the unerupted crown
        tis[free & (sd_crown > 0) & (sd_crown <= 0.9) & (w > -0.5)] = T.SOFT
    tooth = free & (np.minimum(sd_crown, root_sd) <= 0)
    if follicle is not None:
        tooth &= ~follicle
    if not tooth.any():
        return None
    # Enamel and pulp on the tooth's own voxels only (1-D): the box around it is several times larger.
    tu, tv, tw = u[tooth], v[tooth], w[tooth]
    side = shape.enamel_side * np.clip(tw / (0.35 * shape.crown), 0, 1)
    inner = crown_sd(shape, tu, tv, tw, side, shape.enamel_top)
    enamel = (sd_crown[tooth] <= 0) & (inner > 0) & (tw > 0)
    pulp = pulp_mask(shape, tu, tv, tw) & (np.minimum(inner, root_sd[tooth] + 0.3) <= 0)
    lab[tooth] = plan.fdi
    classes = np.full(tu.shape, T.DENTIN, dtype=tis.dtype)
    classes[enamel] = T.ENAMEL
    classes[pulp] = T.PULP
    tis[tooth] = classes
    return paint_restoration(tis, tooth, plan, u, v, w, sd_crown, _spread(tooth, pulp))


def _spread(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A 1-D selection of ``mask``'s voxels back onto the box."""
    out = np.zeros(mask.shape, dtype=bool)
    out[mask] = values
    return out


def paint_restoration(tis, tooth, plan: ToothPlan, u, v, w, sd_crown, pulp) -> dict | None:
    """Metal inside a labelled tooth: the tooth keeps its label, the tissue becomes metal."""
    kind = plan.restoration
    if kind is None:
        return None
    s = plan.shape
    if kind == "filling":  # an occlusal (class I) amalgam
        cavity = superellipse(u, v, 0.42 * s.md / 2, 0.36 * s.bl / 2, 2.0) <= 0
        metal = tooth & cavity & (w > s.crown - 3.4)
    elif kind in ("wide", "rct_wide"):  # mesio-occluso-distal: through both marginal ridges
        metal = tooth & (np.abs(v) <= 0.5 * s.bl / 2) & (w > s.crown - 4.0)
    else:  # a metal crown: the outer 1.4 mm of the crown
        metal = tooth & (sd_crown <= 0) & (crown_sd(s, u, v, w, 1.4, 1.6) > 0) & (w > 0.3)
    tis[metal] = T.AMALGAM
    if kind.startswith("rct"):
        tis[pulp] = T.GUTTA
    return metal_object(plan, strength=0.6 if kind == "filling" else 1.0)


def paint_implant(tis, lab, plan: ToothPlan, u, v, w) -> dict:
    """A threaded titanium screw where the root was, with a porcelain-fused-to-metal crown; unlabelled."""
    free = lab == 0
    length = min(plan.root * 0.85, 12.0)
    radius = 1.9 + 0.25 * np.sin(w * 2 * np.pi / 0.8)
    screw = (np.hypot(u, v) <= radius) & (w < 0.5) & (w > -length)
    tis[free & screw] = T.TITANIUM
    _ceramic_crown(tis, free, plan, u, v, w)
    return metal_object(plan, strength=1.0)


def paint_pontic(tis, lab, plan: ToothPlan, u, v, w) -> dict:
    """A bridge's false tooth: a crown resting on the ridge, joined to its abutments by metal connectors."""
    free = lab == 0
    _ceramic_crown(tis, free, plan, u, v, w, base=0.8)
    s = plan.shape
    connector = (np.abs(u) <= s.md / 2 + 1.2) & (np.abs(v) <= 1.3) & (w > 0.35 * s.crown) & (w < 0.75 * s.crown)
    tis[free & connector] = T.AMALGAM
    return metal_object(plan, strength=1.0)


def _ceramic_crown(tis, free, plan: ToothPlan, u, v, w, base: float = 0.0) -> None:
    crown = (crown_sd(plan.shape, u, v, w) <= 0) & (w >= base)
    tis[free & crown] = T.CERAMIC
    tis[free & crown & (crown_sd(plan.shape, u, v, w, 1.0, 1.5) <= 0)] = T.AMALGAM


def metal_object(plan: ToothPlan, strength: float) -> dict:
    tip = plan.centre + plan.frame[:, 2] * plan.crown * 0.7
    z = sorted([float(plan.centre[2] - plan.frame[2, 2] * 2.0), float(tip[2])])
    return {"x": float(tip[0]), "y": float(tip[1]), "z": z, "strength": strength}


def paint_brackets(tissue: np.ndarray, labels: np.ndarray, grid: Grid, plans: list[ToothPlan]) -> list[dict]:
    """Orthodontic brackets on the buccal crown surfaces (unlabelled metal)."""
    objects = []
    for plan in plans:
        b = float(crown_half_widths(plan.shape, np.array(0.55))[1])
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
