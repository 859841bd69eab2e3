"""A tooth's confidence: the calibrated probability that its number and outline are right.

A logistic map of a few per-tooth features, monotone in each (the fitted weights are kept to their
sign): how probable the assigned type is, its margin over the next type, the foreground probability,
how far the tooth's volume is from the scan's typical tooth (a split or fused tooth is odd), and whether
the tooth's own roots point the way of the jaw it was given. The
parameters come from ``scripts/calibrate_confidence.py`` (phantoms never used for training, both
families, crop and single-arch fields of view); that script prints the reliability table, and its
figures are in the module docstring of the script and the model card.
"""

from __future__ import annotations

import numpy as np

FEATURES = ("type_logit", "type_margin", "foreground_logit", "volume_oddness", "root_agreement")
SIGNS = (1.0, 1.0, 1.0, -1.0, 1.0)  # the confidence falls with the oddness and rises with the others
# Fitted by scripts/calibrate_confidence.py --fit-cases 3 --check-cases 2 (families A and B; crop, lower, upper;
# 354 fit teeth, 94.1 % right; >= 0.8: 327, 97.2 % right) for the model trained on a GPU on 2026-12-04.
# Held-out check (238 teeth, 100 % right): confidence >= 0.8 for 232 teeth, 100 % of them right; bins 0.4-0.6 /
# 0.6-0.8 / 0.8-0.9 / 0.9-1 hold 2 / 4 / 12 / 220 teeth. Too few wrong teeth there to check the low bins.
WEIGHTS = (0.4787, 0.111, 3.6031, -1.511, 0.0)
BIAS = -9.9702
EPS = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def tooth_features(
    types: np.ndarray, fg: np.ndarray, count: np.ndarray, assigned: np.ndarray, agreement: np.ndarray
) -> np.ndarray:
    """(n, 5) features of n teeth from their mean type probabilities (n, 8), mean foreground probability (n,),
    voxel counts (n,), assigned types 1..8 (n,) and root agreement (n,): the apex skew along the occlusal
    normal signed by the assigned jaw (> 0 when the tooth's own roots point the way its jaw's do)."""
    rows = np.arange(len(assigned))
    p = types[rows, assigned - 1]
    others = types.copy()
    others[rows, assigned - 1] = -np.inf
    margin = p - others.max(axis=1) if types.shape[1] > 1 else p
    median = float(np.median(count)) if len(count) else 1.0
    oddness = np.abs(np.log(np.maximum(count, 1) / max(median, 1)))
    return np.stack([_logit(p), margin, _logit(fg), oddness, np.clip(agreement, -2, 2)], axis=1)


def calibrated(features: np.ndarray, weights: tuple = WEIGHTS, bias: float = BIAS) -> np.ndarray:
    """Probability (n,) that each tooth is right, from its features (n, len(FEATURES))."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(features) @ np.asarray(weights) + bias)))
