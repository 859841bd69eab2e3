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


def lookup(rng: np.random.Generator) -> np.ndarray:
    """Per-case grey value of each class (a little variation between scans)."""
    table = np.full(256, -1000.0, dtype=np.float32)
    for cls, hu in MEAN_HU.items():
        table[cls] = hu + (abs(hu) * rng.uniform(-0.08, 0.08) if cls != AIR else 0.0)
    return table
