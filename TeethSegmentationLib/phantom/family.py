"""Phantom families: A trains the shipped model, B is never trained on and measures generalisation.

B differs from A in every layer a new scanner or population would change: tooth proportions and root
variants, the arch form (catenary instead of a power curve), grey values of the tissues, the trabecular
texture, the noise model, the scanner artefacts and how grey values are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from TeethSegmentationLib.errors import InputError


@dataclass(frozen=True)
class Family:
    name: str
    crown_scale: float  # crown widths relative to Wheeler's means
    crown_height: float
    root_scale: float
    cervical_constriction: float  # cervical widths relative to Wheeler's (< 1: a narrower neck)
    cusp_height: float  # mm, molar cusp above the fissure floor
    molar_exponent: float  # molar crown outline (2 round, 3 boxy)
    enamel: float  # enamel thickness relative to the textbook
    root_variant_p: float  # chance of an anatomical root variant (anatomy.VARIANTS) per tooth
    arch_form: str  # "power" (y ~ x^p) or "catenary"
    hu: dict  # tissue name -> mean HU, overriding tissue.MEAN_HU
    texture: str  # trabecular texture: "smooth" (Gaussian field) or "rods" (thresholded, coarser)
    noise: str  # "gaussian" (additive, lightly correlated) or "poisson" (grows with attenuation, coarser grain)
    artefacts: tuple[str, ...]  # extra scanner effects beyond streaks, rings, cupping and drift
    gamma: tuple[float, float]  # range of a power-law grey transfer applied before storage (1: linear)


FAMILIES = {
    "A": Family(
        name="A",
        crown_scale=1.0,
        crown_height=1.0,
        root_scale=1.0,
        cervical_constriction=1.0,
        cusp_height=1.9,
        molar_exponent=3.0,
        enamel=1.0,
        root_variant_p=0.0,
        arch_form="power",
        hu={},
        texture="smooth",
        noise="gaussian",
        artefacts=(),
        gamma=(1.0, 1.0),
    ),
    "B": Family(
        name="B",
        crown_scale=1.05,
        crown_height=0.92,
        root_scale=1.08,
        cervical_constriction=0.9,
        cusp_height=2.5,
        molar_exponent=2.5,
        enamel=1.2,
        root_variant_p=0.35,
        arch_form="catenary",
        hu={"DENTIN": 1550.0, "ENAMEL": 2300.0, "CORTICAL": 1350.0, "TRABECULAR": 380.0, "SOFT": 10.0, "PULP": 20.0},
        texture="rods",
        noise="poisson",
        artefacts=("motion", "aliasing", "scatter"),
        gamma=(0.75, 1.3),
    ),
}


def family(name: str) -> Family:
    try:
        return FAMILIES[str(name).upper()]
    except KeyError:
        raise InputError(f"Unknown phantom family {name!r}: use one of {', '.join(FAMILIES)}.") from None
