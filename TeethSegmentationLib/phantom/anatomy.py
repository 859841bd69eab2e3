"""Textbook tooth anatomy: crown and root dimensions, root configurations and cusps per type and jaw.

Sources (permanent dentition, mean adult values):
- Dimensions: Nelson SJ, Ash MM. *Wheeler's Dental Anatomy, Physiology and Occlusion*, 9th ed., Saunders
  2010, ch. 1 table "Measurements of the teeth" (crown length, root length, mesio-distal and
  bucco-lingual diameters of the crown and at the cervix).
- Root numbers, trunks and curvature: same, chapters 6-11 (maxillary first premolar: two roots, buccal
  and palatal, bifurcated in the apical half; maxillary molars: mesio-buccal, disto-buccal and palatal
  roots on a trunk of about 4 mm; mandibular molars: mesial and distal roots, furcation 3-4 mm below the
  cemento-enamel junction; third molars: roots often fused and conical; roots curve distally, the
  maxillary lateral incisor's most; mandibular incisor roots flattened mesio-distally).
- Cusps: same (maxillary first molar four cusps (+ Carabelli), second molar four, third three;
  mandibular first molar five, second four; premolars two (buccal + lingual, the lower first premolar's
  lingual cusp small); canine one; incisors an incisal edge).
- Enamel: thickest over the cusps (about 2-2.5 mm on molars, 1 mm at incisal edges), thinning to nothing
  at the cemento-enamel junction (Berkovitz BKB et al., *Oral Anatomy, Histology and Embryology*, 5th ed.).

Frame of one tooth: u mesio-distal (+ distal), v bucco-lingual (+ buccal), w along the long axis (+ to the
occlusal plane), w = 0 at the cemento-enamel junction. Root positions and radii are fractions of the
cervical half widths; apex shifts are in mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from TeethSegmentationLib.fdi import TYPE_CLASSES as KIND

# Wheeler's table, type 1..8: crown length, root length, crown MD, cervix MD, crown BL, cervix BL (mm).
# Maxillary molar roots: the palatal root length (buccal ones are 1 mm shorter, see ROOTS).
WHEELER = {
    True: {
        "crown": (10.5, 9.0, 10.0, 8.5, 8.5, 7.5, 7.0, 6.5),
        "root": (13.0, 13.0, 17.0, 14.0, 14.0, 13.0, 12.0, 11.0),
        "md": (8.5, 6.5, 7.5, 7.0, 7.0, 10.0, 9.0, 8.5),
        "md_cervix": (7.0, 5.0, 5.5, 5.0, 5.0, 8.0, 7.0, 6.5),
        "bl": (7.0, 6.0, 8.0, 9.0, 9.0, 11.0, 11.0, 10.0),
        "bl_cervix": (6.0, 5.0, 7.0, 8.0, 8.0, 10.0, 10.0, 9.5),
    },
    False: {
        "crown": (9.0, 9.5, 11.0, 8.5, 8.0, 7.5, 7.0, 7.0),
        "root": (12.5, 14.0, 16.0, 14.0, 14.5, 14.0, 13.0, 11.0),
        "md": (5.0, 5.5, 7.0, 7.0, 7.0, 11.0, 10.5, 10.0),
        "md_cervix": (3.5, 4.0, 5.5, 5.0, 5.0, 9.0, 8.0, 7.5),
        "bl": (6.0, 6.5, 7.5, 7.5, 8.0, 10.5, 10.0, 9.5),
        "bl_cervix": (5.3, 5.8, 7.0, 6.5, 7.0, 9.0, 9.0, 9.0),
    },
}


@dataclass(frozen=True)
class Root:
    du: float  # centre at the cervix, fraction of the cervical MD half width (+ distal)
    dv: float  # fraction of the cervical BL half width (+ buccal)
    ru: float  # radius at the cervix, fraction of the cervical MD half width
    rv: float
    length: float  # fraction of the tooth's root length
    apex_u: float  # apex shift (mm, + distal: the distal curvature)
    apex_v: float  # apex shift (mm, + buccal: divergence of buccal and palatal roots)


@dataclass(frozen=True)
class Cusp:
    u: float  # position, fraction of the crown's MD half width
    v: float  # fraction of the BL half width
    height: float  # mm above the fissure floor
    radius: float  # fraction of the smaller crown half width


_SINGLE = (Root(0, 0, 0.9, 0.9, 1.0, 0.5, 0),)
# (upper jaw?, type) -> (roots, root trunk mm: how far below the cervix the roots separate)
ROOTS: dict[tuple[bool, int], tuple[tuple[Root, ...], float]] = {
    (True, 1): ((Root(0, 0, 0.9, 0.9, 1.0, 0.5, 0),), 0.0),
    (True, 2): ((Root(0, 0, 0.85, 0.9, 1.0, 1.5, 0),), 0.0),  # the most distally curved root
    (True, 3): ((Root(0, 0, 0.9, 0.9, 1.0, 0.9, 0),), 0.0),
    (True, 4): ((Root(0, 0.52, 0.8, 0.4, 1.0, 0.3, 1.4), Root(0, -0.52, 0.8, 0.4, 0.97, 0.3, -1.4)), 7.0),
    (True, 5): ((Root(0, 0, 0.7, 0.95, 1.0, 0.6, 0),), 0.0),  # flattened mesio-distally
    (True, 6): (
        (
            Root(-0.5, 0.5, 0.34, 0.36, 0.93, 0.8, 1.6),  # mesio-buccal, curved distally
            Root(0.52, 0.5, 0.3, 0.32, 0.88, 1.2, 1.4),  # disto-buccal, the smallest
            Root(0.0, -0.55, 0.42, 0.36, 1.0, 0.0, -2.8),  # palatal, the longest, flaring palatally
        ),
        4.0,
    ),
    (True, 7): (
        (
            Root(-0.45, 0.5, 0.34, 0.36, 0.93, 1.2, 1.0),
            Root(0.5, 0.5, 0.3, 0.32, 0.88, 1.6, 0.9),
            Root(0.0, -0.55, 0.42, 0.36, 1.0, 0.4, -1.8),
        ),
        4.5,
    ),
    (True, 8): ((Root(0, 0, 0.8, 0.8, 0.9, 1.6, 0),), 0.0),  # fused, conical
    (False, 1): ((Root(0, 0, 0.85, 0.9, 1.0, 0.3, 0),), 0.0),  # ribbon-like: cervix 3.5 x 5.3 mm
    (False, 2): ((Root(0, 0, 0.85, 0.9, 1.0, 0.5, 0),), 0.0),
    (False, 3): ((Root(0, 0, 0.9, 0.9, 1.0, 0.7, 0),), 0.0),
    (False, 4): ((Root(0, 0, 0.85, 0.8, 1.0, 0.4, 0),), 0.0),
    (False, 5): ((Root(0, 0, 0.85, 0.85, 1.0, 0.6, 0),), 0.0),
    (False, 6): ((Root(-0.55, 0, 0.36, 0.85, 1.0, 1.5, 0), Root(0.55, 0, 0.34, 0.8, 0.93, 0.6, 0)), 3.5),
    (False, 7): ((Root(-0.48, 0, 0.38, 0.85, 1.0, 1.6, 0), Root(0.5, 0, 0.36, 0.8, 0.93, 1.2, 0)), 4.0),
    (False, 8): ((Root(0, 0, 0.8, 0.85, 0.9, 1.8, 0),), 0.0),  # fused, conical
}

# Anatomical variants (used by family B): (upper, type) -> another configuration.
VARIANTS: dict[tuple[bool, int], tuple[tuple[Root, ...], float]] = {
    (True, 4): ((Root(0, 0, 0.8, 0.95, 1.0, 0.5, 0),), 0.0),  # ~40 %: one root
    (True, 5): ((Root(0, 0.5, 0.8, 0.42, 1.0, 0.3, 1.1), Root(0, -0.5, 0.8, 0.42, 0.97, 0.3, -1.1)), 8.0),
    (True, 7): ((Root(0, 0, 0.8, 0.85, 0.95, 1.8, -0.4),), 0.0),  # fused
    (False, 3): ((Root(0, 0.5, 0.8, 0.42, 1.0, 0.3, 1.0), Root(0, -0.5, 0.8, 0.42, 0.97, 0.3, -1.0)), 9.0),
    (False, 8): ((Root(-0.45, 0, 0.42, 0.85, 1.0, 1.6, 0), Root(0.5, 0, 0.4, 0.8, 0.93, 1.4, 0)), 4.5),
}

_MOLAR_CUSPS = {
    (True, 6): ((-0.45, 0.5, 1.0, 0.45), (0.45, 0.5, 0.9, 0.42), (-0.35, -0.45, 1.1, 0.55), (0.5, -0.5, 0.75, 0.4)),
    (True, 7): ((-0.45, 0.5, 1.0, 0.45), (0.45, 0.5, 0.85, 0.42), (-0.3, -0.45, 1.1, 0.55), (0.5, -0.5, 0.6, 0.35)),
    (True, 8): ((-0.35, 0.45, 1.0, 0.5), (0.4, 0.45, 0.8, 0.45), (0.0, -0.45, 1.0, 0.55)),
    (False, 6): (
        (-0.55, 0.5, 0.9, 0.4),  # mesio-buccal
        (0.05, 0.55, 0.85, 0.4),  # disto-buccal
        (0.62, 0.25, 0.7, 0.32),  # distal
        (-0.5, -0.5, 1.05, 0.42),  # mesio-lingual
        (0.3, -0.5, 1.0, 0.42),  # disto-lingual
    ),
    (False, 7): ((-0.45, 0.5, 0.9, 0.45), (0.45, 0.5, 0.85, 0.45), (-0.45, -0.5, 1.05, 0.45), (0.45, -0.5, 1.0, 0.45)),
    (False, 8): ((-0.45, 0.5, 0.9, 0.45), (0.45, 0.5, 0.8, 0.45), (-0.45, -0.5, 1.0, 0.45), (0.45, -0.5, 0.9, 0.45)),
}


def cusps(upper: bool, tooth_type: int, height: float) -> tuple[Cusp, ...]:
    """Cusp tips of a crown (``height``: the cusp height of a molar, mm)."""
    kind = KIND[tooth_type]
    if kind == "incisor":
        return ()
    if kind == "canine":
        return (Cusp(-0.05, 0.15, 2.2 * height, 0.9),)
    if kind == "premolar":
        lingual = 0.45 if (not upper and tooth_type == 4) else (0.85 if upper else 0.75)
        return (Cusp(0.0, 0.5, 1.1 * height, 0.6), Cusp(0.0, -0.5, lingual * height, 0.55))
    return tuple(Cusp(u, v, h * height, r) for u, v, h, r in _MOLAR_CUSPS[(upper, tooth_type)])


@dataclass
class ToothShape:
    """Everything that shapes one tooth (mm); made by :func:`tooth_shape`, changed by the dentition's events."""

    upper: bool
    type: int
    md: float
    bl: float
    md_cervix: float
    bl_cervix: float
    crown: float
    root: float
    trunk: float
    roots: tuple[Root, ...]
    cusps: tuple[Cusp, ...]
    exponent: float  # crown outline: 2 round .. 3 boxy
    enamel_side: float
    enamel_top: float
    pulp: float = 1.0  # pulp size: 1 adult, > 1 young, < 1 old
    open_apex: bool = False  # roots still forming: short, with a wide open apex
    crown_present: bool = True  # False: a retained root, the crown decayed or broken off
    extra: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return KIND[self.type]

    @property
    def root_count(self) -> int:
        return len(self.roots)


def tooth_shape(upper: bool, tooth_type: int, size: float, family, rng: np.random.Generator) -> ToothShape:
    """The shape of one tooth: Wheeler's means times ``size`` and the family's proportions, a little noise."""
    table = WHEELER[upper]
    i = tooth_type - 1
    kind = KIND[tooth_type]

    def jitter() -> float:
        return float(rng.uniform(0.96, 1.04))

    roots, trunk = ROOTS[(upper, tooth_type)]
    if (upper, tooth_type) in VARIANTS and rng.random() < family.root_variant_p:
        roots, trunk = VARIANTS[(upper, tooth_type)]
    crown_scale = size * family.crown_scale
    constriction = family.cervical_constriction
    md = table["md"][i] * crown_scale * jitter()
    bl = table["bl"][i] * crown_scale * jitter()
    return ToothShape(
        upper=upper,
        type=tooth_type,
        md=md,
        bl=bl,
        md_cervix=min(table["md_cervix"][i] * crown_scale * constriction, 0.92 * md),
        bl_cervix=min(table["bl_cervix"][i] * crown_scale * constriction, 0.95 * bl),
        crown=table["crown"][i] * size * family.crown_height * jitter(),
        root=table["root"][i] * size * family.root_scale * float(rng.uniform(0.9, 1.1)),
        trunk=trunk * family.root_scale,
        roots=roots,
        cusps=cusps(upper, tooth_type, family.cusp_height * float(rng.uniform(0.85, 1.15))),
        exponent={"incisor": 2.2, "canine": 2.0, "premolar": 2.3, "molar": family.molar_exponent}[kind],
        enamel_side={"incisor": 0.9, "canine": 1.1, "premolar": 1.3, "molar": 1.5}[kind] * family.enamel,
        enamel_top={"incisor": 1.0, "canine": 2.0, "premolar": 1.8, "molar": 2.2}[kind] * family.enamel,
    )


def resorbed(shape: ToothShape, fraction: float) -> ToothShape:
    """Apical root resorption: the roots ``fraction`` shorter, blunt."""
    return replace(shape, root=shape.root * (1 - fraction), extra={**shape.extra, "resorbed": round(fraction, 2)})
