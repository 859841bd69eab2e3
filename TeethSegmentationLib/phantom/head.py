"""Everything around the teeth: jaws, palate, sinuses, nasal cavity, airway, spine, soft tissue, devices.

Drawn as tissue classes on any grid (a coarse one for a whole head, the full-resolution one near the
teeth). Jaw bone is described in arch coordinates: arc length s and signed distance d from the arch
(+ buccal), at height z; skull, spine and airway as simple solids placed relative to the arches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from TeethSegmentationLib.phantom import tissue as T
from TeethSegmentationLib.phantom.dentition import Dentition
from TeethSegmentationLib.phantom.grid import Grid, slices


@dataclass
class HeadPlan:
    """Random sizes of the structures around the teeth (mm)."""

    vault: float  # palatal vault height
    palate: float  # palate thickness
    body_height: float  # mandible body height under the incisors
    sinus: np.ndarray  # maxillary sinus radii
    tongue_gap: float  # air between tongue and palate (0: none)
    vestibule_air: bool
    lip: float  # lip thickness
    bite_block: bool
    chin_rest: bool
    ramus_width: float
    condyle_z: float


def plan_head(rng: np.random.Generator, dent: Dentition, fov: str) -> HeadPlan:
    return HeadPlan(
        vault=rng.uniform(9, 16),
        palate=rng.uniform(3, 5),
        body_height=rng.uniform(26, 33),
        sinus=rng.uniform([11, 14, 13], [15, 19, 18]),
        tongue_gap=float(rng.choice([0.0, rng.uniform(1, 6)])),
        vestibule_air=bool(rng.random() < 0.3),
        lip=rng.uniform(11, 15),
        bite_block=bool(dent.bite_gap > 1.8 and rng.random() < (0.8 if fov == "head" else 0.4)),
        chin_rest=bool(fov == "head" and rng.random() < 0.7),
        ramus_width=rng.uniform(27, 33),
        condyle_z=rng.uniform(22, 30),
    )


class _Jaw:
    """Arc length, signed distance and crest height of one arch over the xy columns of a box."""

    def __init__(self, dent: Dentition, upper: bool, x: np.ndarray, y: np.ndarray) -> None:
        arch = dent.upper if upper else dent.lower
        self.arch = arch
        self.s, self.d = arch.maps(x, y)
        s_cej, z_cej = dent.cej[upper]
        self.abs_s = np.abs(self.s)[:, :, None]
        crest = np.interp(self.s, s_cej, z_cej) + (1.5 if upper else -1.5)
        self.crest = crest.astype(np.float32)[:, :, None]
        self.d = self.d[:, :, None]
        self.frac = np.clip(self.abs_s / arch.length, 0, 1.3)


def paint_head(tissue: np.ndarray, grid: Grid, dent: Dentition, head: HeadPlan, fov: str) -> list[dict]:
    """Draw the anatomy around the teeth; returns metal-free list (kept for symmetry with teeth)."""
    x, y, z = grid.axes()
    up = _Jaw(dent, True, x, y)
    lo = _Jaw(dent, False, x, y)
    y_front = float(dent.upper.points[len(dent.upper.points) // 2, 1])
    y_back = float(dent.upper.at(dent.upper.length)[0][1])
    _soft_tissue(tissue, x, y, z, up, lo, head, y_front, y_back)
    if fov == "head":
        _skull(tissue, grid, head, dent, y_front, y_back)
        _neck(tissue, grid, y_back)
    _maxilla(tissue, x, y, z, up, head, y_back)
    _mandible(tissue, x, y, z, lo, head)
    _rami(tissue, grid, dent, head)
    _cavities(tissue, grid, x, y, z, up, lo, dent, head, y_front, y_back)
    return []


def _soft_tissue(tissue, x, y, z, up: _Jaw, lo: _Jaw, head: HeadPlan, y_front: float, y_back: float) -> None:
    """Face (lips, cheeks, chin, nose) as an offset of the arches, the back of the head as an ellipsoid."""
    upper_part = z >= 0
    d = np.where(upper_part, up.d, lo.d)
    crest_l = lo.crest
    menton = crest_l - head.body_height - 3
    thick = head.lip + 8 * np.clip(np.where(upper_part, up.frac, lo.frac), 0, 1)
    thick = thick - np.clip((menton + 8 - z) / 5, 0, None) ** 2  # the chin curves under
    nose_base = up.crest + 12
    nose = 22 * np.exp(-((x / 11) ** 2)) * np.clip(1 - np.abs(z - nose_base - 12) / 20, 0, 1) * (z > nose_base)
    face = d < thick + nose
    back = (x / 68) ** 2 + ((y - y_back + 10) / 75) ** 2 + ((z - 25) / 95) ** 2 <= 1
    neck = ((x / 52) ** 2 + ((y - y_back + 30) / 45) ** 2 <= 1) & (z < menton + 10)
    body = face | back | neck
    tissue[body] = T.SOFT
    tissue[body & (d > thick + nose - 3.5) & (d < thick + nose)] = T.FAT  # subcutaneous fat under the skin


def _maxilla(tissue, x, y, z, up: _Jaw, head: HeadPlan, y_back: float) -> None:
    h = z - up.crest  # height above the upper alveolar crest
    inside_arch = up.abs_s < up.arch.length + 4
    out = 2.5 + 1.5 * up.frac + np.clip(h - 12, 0, None) * 0.5  # buccal plate, flaring at the buttress
    inner = 7 + 2 * up.frac
    alveolar = (up.d < out) & (up.d > -inner) & (h >= 0) & (h < 30) & inside_arch
    palate_low = 3 + head.vault * (1 - np.exp(np.minimum(up.d + inner, 0) / 7))
    palate = (up.d <= -inner + 1) & (h >= palate_low) & (h < palate_low + head.palate) & (y > y_back + 6)
    # Above the palate the maxilla is solid until the sinuses and the nasal cavity are carved out of it.
    body = (
        (up.d < out)
        & (h >= palate_low + head.palate - 1)
        & (h < 45)
        & (y > y_back - 4)
        & (up.abs_s < up.arch.length + 8)
    )
    bone = alveolar | palate | body
    tissue[bone] = T.TRABECULAR
    rim = bone & (
        (up.d > out - 1.3)
        | (h < 1.0)
        | ((up.d <= -inner + 1) & ((h < palate_low + 1.0) | (h > palate_low + head.palate - 1.0)))
    )
    tissue[rim] = T.CORTICAL


def _mandible(tissue, x, y, z, lo: _Jaw, head: HeadPlan) -> None:
    frac = np.clip(lo.frac, 0, 1)
    chin = np.exp(-((lo.abs_s / 12) ** 2))
    height = head.body_height - 4 * frac
    zm = lo.crest - height / 2
    low_half = np.clip((zm - z) / (height / 2), 0, 1)
    centre = -1.5 + 2.0 * frac + 3.0 * chin * low_half  # the chin bulges forward at the bottom
    half = 4.8 + 2.2 * frac + 1.5 * chin * low_half
    inside = lo.abs_s < lo.arch.length + 14
    rho = ((np.abs(lo.d - centre) / half) ** 3 + (np.abs(z - zm) / (height / 2)) ** 3) ** (1 / 3)
    body = (rho <= 1) & inside & (z <= lo.crest)
    tissue[body] = T.TRABECULAR
    tissue[body & (rho > 1 - 1.8 / half)] = T.CORTICAL
    # Mandibular canal: under the molar roots, opening buccally at the mental foramen (between premolars).
    s_mental = 0.45 * lo.arch.length
    rise = np.clip(lo.abs_s - lo.arch.length, 0, None) * 0.6
    cz = lo.crest - 0.55 * height + rise
    cd = centre + half * np.exp(-(((lo.abs_s - s_mental) / 3.0) ** 2))
    r = np.hypot(lo.d - cd, z - cz)
    run = (lo.abs_s > s_mental - 3) & inside & (z <= lo.crest)
    tissue[run & (r <= 2.0) & (r > 1.3) & body] = T.CORTICAL
    tissue[run & (r <= 1.3) & body] = T.SOFT


def _rami(tissue, grid: Grid, dent: Dentition, head: HeadPlan) -> None:
    """Ramus plates rising from behind the last molars to the condyles and coronoid processes."""
    arch = dent.lower
    z_base = float(dent.cej[False][1].min()) - 1.5 - head.body_height + 6
    for side in (1, -1):
        start, direction, _ = arch.at(side * (arch.length + 6))
        x_r = abs(start[0]) + 2.0
        y_front = start[1] + 4
        y_post = y_front - head.ramus_width - 6
        zc = head.condyle_z
        lo_mm = np.array([side * x_r - 12, y_post - 12, z_base - 4])
        hi_mm = np.array([side * x_r + 12, y_front + 6, zc + 12])
        box = grid.index_box(np.minimum(lo_mm, hi_mm), np.maximum(lo_mm, hi_mm))
        if box is None:
            continue
        x, y, z = grid.axes(*box)
        t = np.clip((z - z_base) / (zc - z_base), 0, 1)
        post = y_post + 4 * t  # posterior border leans forward a little towards the condyle
        q = (y - post) / head.ramus_width
        top = zc - 2 * q - 12 * np.sin(np.pi * np.clip(q, 0, 1))  # condyle, sigmoid notch, coronoid
        bottom = z_base + 5 * (1 - np.clip(q * 3, 0, 1)) ** 2  # rounded angle
        lateral = np.abs(x - side * (x_r + 0.12 * (z - z_base))) / 3.5
        plate = (q >= 0) & (q <= 1) & (z <= top) & (z >= bottom) & (lateral <= 1)
        sub = tissue[slices(*box)]
        sub[plate] = T.TRABECULAR
        sub[plate & ((lateral > 0.55) | (q < 0.05) | (z < bottom + 1.5))] = T.CORTICAL
        cx = side * (x_r + 0.12 * (zc - z_base) + 1)
        rho = np.sqrt(((x - cx) / 9) ** 2 + ((y - post - 4) / 4.5) ** 2 + ((z - zc - 1) / 5) ** 2)
        sub[rho <= 1] = T.TRABECULAR
        sub[(rho <= 1) & (rho > 0.72)] = T.CORTICAL


def _sphere_rho(x, y, z, centre, radii):
    return np.sqrt(
        ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2
    )


def _cavities(tissue, grid, x, y, z, up: _Jaw, lo: _Jaw, dent: Dentition, head: HeadPlan, y_front, y_back):
    """Air: maxillary sinuses, nasal cavity, oral air, vestibule, pharynx."""
    crest_u = float(dent.cej[True][1].max()) + 1.5
    for side in (1, -1):
        p, _, _ = dent.upper.at(side * dent.upper.length * 0.72)
        centre = (p[0] - side * 4, p[1] + 3, crest_u + 10 + head.sinus[2])
        rho = _sphere_rho(x, y, z, centre, head.sinus)
        tissue[(rho <= 1.07) & (rho > 1)] = T.CORTICAL
        tissue[rho <= 1] = T.AIR
    floor = crest_u + 3 + head.vault + head.palate
    width = np.clip(9 + 0.25 * (z - floor), 0, 13) - np.clip((z - floor - 25) * 0.4, 0, None)
    nasal = (np.abs(x) < width) & (z > floor) & (z < floor + 45) & (y > y_back - 12) & (y < y_front - 6)
    tissue[nasal] = T.AIR
    tissue[nasal & (np.abs(x) < 0.9)] = T.CORTICAL  # septum
    for dz, radii in ((6, (3.5, 16, 4)), (17, (3, 13, 3.5))):  # turbinates on the lateral walls
        for side in (1, -1):
            rho = _sphere_rho(x, y, z, (side * (width.max() - 1.5), y_front / 2 + y_back / 2 - 3, floor + dz), radii)
            tissue[nasal & (rho <= 1)] = T.SOFT
    if head.tongue_gap > 0:  # air between the tongue and the palate
        low = up.crest + 3 + head.vault * (1 - np.exp(np.minimum(up.d + 8, 0) / 7))
        tissue[(up.d < -9) & (z < low) & (z > low - head.tongue_gap) & (y > y_back + 4)] = T.AIR
    if head.vestibule_air:
        for jaw, sign in ((up, 1), (lo, -1)):
            band = (jaw.d > 5.0) & (jaw.d < 6.8) & (jaw.abs_s < 0.4 * jaw.arch.length) & (sign * (jaw.crest - z) > 0)
            tissue[band & (sign * z > 0)] = T.AIR
    # Pharyngeal airway behind the soft palate and tongue, open into the nasal cavity at the top.
    y_ph = y_back - 14
    pharynx = (((x / 11) ** 2 + ((y - y_ph) / 6) ** 2) <= 1) & (z < floor + 8) & (z > -75)
    naso = (np.abs(x) < 9) & (y > y_ph - 5) & (y < y_back) & (z > floor) & (z < floor + 18)
    tissue[pharynx | naso] = T.AIR
    if head.bite_block:
        gap = dent.bite_gap / 2 - 0.2
        tissue[(np.abs(x) < 12) & (y > y_front - 9) & (y < y_front + 45) & (np.abs(z) < gap)] = T.PLASTIC
    if head.chin_rest:
        menton = float(dent.cej[False][1].min()) - 1.5 - head.body_height - 6
        surface = menton - 6 + 0.006 * x**2 + 0.01 * (y - y_front + 5) ** 2
        tissue[(z < surface) & (z > surface - 5) & (np.abs(x) < 35) & (np.abs(y - y_front + 5) < 28)] = T.PLASTIC


def _skull(tissue, grid: Grid, head: HeadPlan, dent: Dentition, y_front: float, y_back: float) -> None:
    """Skull base, cranial vault, orbits and zygomatic arches: coarse but in the right places."""
    x, y, z = grid.axes()
    crest_u = float(dent.cej[True][1].max()) + 1.5
    rho = _sphere_rho(x, y, z, (0, y_back - 15, crest_u + 55), (68, 86, 72))
    vault = (rho <= 1) & (z > crest_u + 38)
    tissue[vault & (rho <= 0.91)] = T.SOFT  # brain
    tissue[vault & (rho > 0.91)] = T.TRABECULAR  # diploe
    tissue[vault & ((rho > 0.975) | ((rho > 0.91) & (rho < 0.935)))] = T.CORTICAL
    base = (np.abs(x) < 48) & (y > y_back - 45) & (y < y_back + 12) & (z > crest_u + 30 + 0.15 * (y_back - y))
    base &= z < crest_u + 40 + 0.15 * (y_back - y)
    tissue[base] = T.TRABECULAR
    for side in (1, -1):
        orbit = _sphere_rho(x, y, z, (side * 33, y_front - 12, crest_u + 50), (17, 22, 17))
        tissue[(orbit <= 1.08) & (orbit > 1)] = T.CORTICAL
        tissue[orbit <= 1] = T.FAT
        tissue[_sphere_rho(x, y, z, (side * 33, y_front - 2, crest_u + 50), (12, 12, 12)) <= 1] = T.SOFT
        zygoma = (np.hypot((np.abs(x) - 58) / 4, (z - crest_u - 28) / 3) <= 1) & (y < y_front - 15) & (y > y_back - 40)
        tissue[zygoma & (side * x > 0)] = T.CORTICAL


def _neck(tissue, grid: Grid, y_back: float) -> None:
    """Cervical vertebrae C1-C4 behind the airway, and the hyoid in front of it."""
    x, y, z = grid.axes()
    y_body = y_back - 40
    for z_lo, z_hi in ((-40, -14), (-56, -44), (-73, -61)):  # C2 (with the dens above), C3, C4
        rho = np.hypot(x / 9, (y - y_body) / 8)
        body = (rho <= 1) & (z > z_lo) & (z < z_hi)
        tissue[body] = T.TRABECULAR
        tissue[body & ((rho > 0.82) | (z < z_lo + 1.2) | (z > z_hi - 1.2))] = T.CORTICAL
        r = np.hypot(x, y - y_body - 19)
        ring = (r > 8.5) & (r < 14) & (y < y_body - 6) & (np.abs(z - (z_lo + z_hi) / 2) < 4)
        spine = (np.abs(x) < 3) & (y < y_body - 30) & (y > y_body - 48) & (np.abs(z - (z_lo + z_hi) / 2) < 4)
        tissue[ring | spine] = T.CORTICAL
    dens = (np.hypot(x / 5, (y - y_body - 1) / 5) <= 1) & (z >= -14) & (z < 0)
    atlas = (np.abs(np.hypot(x, (y - y_body) * 1.1) - 13) < 3.5) & (np.abs(z - 3) < 4)
    tissue[dens] = T.TRABECULAR
    tissue[atlas] = T.CORTICAL
    r = np.hypot(x, y - y_back + 2)
    tissue[(np.abs(r - 17) < 2.2) & (y > y_back - 12) & (np.abs(z + 48) < 4)] = T.CORTICAL  # hyoid
