"""Tissue classes the phantom is drawn with, and their mean grey values in Hounsfield units."""

from __future__ import annotations

import numpy as np

AIR, SOFT, FAT, TRABECULAR, CORTICAL, DENTIN, ENAMEL, PULP = 0, 1, 2, 3, 4, 5, 6, 7
AMALGAM, TITANIUM, GUTTA, PLASTIC, CERAMIC = 8, 9, 10, 11, 12
BONE = (TRABECULAR, CORTICAL)

MEAN_HU = {
    AIR: -1000.0,
    SOFT: 45.0,
    FAT: -90.0,
    TRABECULAR: 450.0,  # mean; the texture spreads it between marrow and trabeculae
    CORTICAL: 1500.0,
    DENTIN: 1900.0,
    ENAMEL: 2900.0,
    PULP: 70.0,
    AMALGAM: 12000.0,
    TITANIUM: 7000.0,
    GUTTA: 5000.0,
    PLASTIC: 120.0,
    CERAMIC: 4000.0,
}


NAMES = {"AIR": AIR, "SOFT": SOFT, "FAT": FAT, "TRABECULAR": TRABECULAR, "CORTICAL": CORTICAL, "DENTIN": DENTIN}
NAMES.update({"ENAMEL": ENAMEL, "PULP": PULP, "AMALGAM": AMALGAM, "TITANIUM": TITANIUM, "GUTTA": GUTTA})
NAMES.update({"PLASTIC": PLASTIC, "CERAMIC": CERAMIC})


def lookup(rng: np.random.Generator, overrides: dict[str, float] | None = None) -> np.ndarray:
    """Per-case grey value of each class (a little variation between scans); ``overrides``: name -> mean HU."""
    table = np.full(256, -1000.0, dtype=np.float32)
    means = {**MEAN_HU, **{NAMES[name]: hu for name, hu in (overrides or {}).items()}}
    for cls, hu in means.items():
        table[cls] = hu + (abs(hu) * rng.uniform(-0.08, 0.08) if cls != AIR else 0.0)
    return table
