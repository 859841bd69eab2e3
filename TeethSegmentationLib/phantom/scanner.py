"""What the scanner does to the tissues: grey values, texture, blur, metal streaks, cupping, rings,
drift along z, truncation at the field-of-view cylinder, noise, and how the values are stored."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from TeethSegmentationLib.phantom import tissue as T
from TeethSegmentationLib.phantom.grid import Grid


def density(
    tissue: np.ndarray, spacing: np.ndarray, table: np.ndarray, rng: np.random.Generator, texture: str = "smooth"
) -> np.ndarray:
    """Hounsfield-like float32 values (``table``: class -> HU), with a trabecular texture in spongy bone:
    "smooth" a soft Gaussian field; "rods" coarser, thresholded into marrow spaces and trabeculae."""
    hu = table[tissue]
    trabecular = tissue == T.TRABECULAR
    if trabecular.any():
        grain = 0.45 if texture == "smooth" else 0.8
        sigma = np.maximum(grain / np.asarray(spacing), 0.5)
        field = rng.standard_normal(tissue.shape, dtype=np.float32)
        field = ndimage.gaussian_filter(field, sigma, truncate=2.5)
        field /= field.std() + 1e-6
        if texture == "smooth":
            hu[trabecular] += 420 * np.tanh(1.3 * field[trabecular])
        else:
            hu[trabecular] += np.where(field[trabecular] > 0.3, 520.0, -300.0)
    return hu


def blur(hu: np.ndarray, spacing: np.ndarray, sigma_mm: float) -> np.ndarray:
    sigma = sigma_mm / np.asarray(spacing)
    if sigma.max() < 0.25:
        return hu
    return ndimage.gaussian_filter(hu, sigma, truncate=2.5, output=hu)


def _plane(grid: Grid):
    x, y, _ = grid.axes(hi=(grid.shape[0], grid.shape[1], 1))
    return x[:, :, 0], y[:, :, 0]


def _z_weights(grid: Grid, z_lo: float, z_hi: float, fade: float = 2.0) -> tuple[slice, np.ndarray]:
    z = grid.origin[2] + grid.spacing[2] * np.arange(grid.shape[2])
    w = np.clip(1 - np.maximum(z_lo - z, z - z_hi) / fade, 0, 1)
    idx = np.nonzero(w > 0)[0]
    if idx.size == 0:
        return slice(0, 0), w[:0]
    sl = slice(int(idx[0]), int(idx[-1]) + 1)
    return sl, w[sl].astype(np.float32)


def metal_streaks(hu: np.ndarray, grid: Grid, objects: list[dict], rng: np.random.Generator) -> None:
    """Bright and dark streaks radiating from metal in the axial planes, dark bands between metal pieces."""
    x, y = _plane(grid)
    for i, obj in enumerate(objects):
        dx, dy = x - obj["x"], y - obj["y"]
        r = np.hypot(dx, dy)
        theta = np.arctan2(dy, dx)
        pattern = np.zeros_like(r)
        for _ in range(int(rng.integers(5, 11))):
            angle = rng.uniform(0, np.pi)
            amp = obj["strength"] * rng.uniform(250, 900) * (-1 if rng.random() < 0.65 else 1)
            width = rng.uniform(0.4, 1.2)
            pattern += amp * np.exp(-((r * np.sin(theta - angle) / width) ** 2))
        pattern *= np.exp(-r / 45) * (r > 1.5)
        for other in objects[i + 1 :]:  # dark bands between pieces of dense metal in the same slices
            if min(obj["strength"], other["strength"]) < 0.6:
                continue
            if other["z"][0] > obj["z"][1] or other["z"][1] < obj["z"][0]:
                continue
            a, b = np.array([obj["x"], obj["y"]]), np.array([other["x"], other["y"]])
            seg = b - a
            t = np.clip((dx * seg[0] + dy * seg[1]) / max(seg @ seg, 1e-6), 0, 1)
            dist = np.hypot(dx - t * seg[0], dy - t * seg[1])
            pattern -= 700 * min(obj["strength"], other["strength"]) * np.exp(-((dist / 2.0) ** 2))
        sl, w = _z_weights(grid, *obj["z"])
        if w.size:
            hu[:, :, sl] += pattern.astype(np.float32)[:, :, None] * w[None, None, :]


def scanner_effects(hu: np.ndarray, grid: Grid, rng: np.random.Generator, strength: float) -> dict:
    """Cupping, rings around the rotation axis, and a grey-value drift along z (in place)."""
    x, y = _plane(grid)
    centre = grid.origin + (np.array(grid.shape) - 1) / 2 * grid.spacing
    r = np.hypot(x - centre[0], y - centre[1]).astype(np.float32)
    radius = float(r.max())
    cup = rng.uniform(0, 0.12) * strength
    gain = 1 - cup * (1 - (r / radius) ** 2)
    rings = np.zeros_like(r)
    for _ in range(int(rng.integers(0, 7) * strength)):
        rings += rng.choice([-1, 1]) * rng.uniform(20, 90) * np.exp(-(((r - rng.uniform(3, radius)) / 0.6) ** 2))
    z = (grid.origin[2] + grid.spacing[2] * np.arange(grid.shape[2]) - centre[2]) / max(np.ptp(grid.axes()[2]), 1)
    drift = (1 + rng.uniform(-0.08, 0.08) * strength * z).astype(np.float32)
    for k in range(hu.shape[2]):  # slice by slice: no full-size temporaries
        plane = hu[:, :, k]
        plane += 1000
        plane *= gain * drift[k]
        plane += rings - 1000
    return {"cupping": round(float(cup), 3)}


def family_artefacts(hu: np.ndarray, grid: Grid, rng: np.random.Generator, kinds: tuple[str, ...]) -> dict:
    """Artefacts family A never shows: a motion ghost, view-aliasing streaks, scatter shading near dense teeth."""
    out: dict = {}
    if "scatter" in kinds:  # dark shading between and around dense structures (scatter, beam hardening)
        step = 4
        dense = np.clip(hu[::step, ::step, ::step] - 1200, 0, 2000) / 2000
        shade = ndimage.gaussian_filter(dense, 5.0 / (step * grid.spacing), truncate=2.0)
        amount = float(rng.uniform(150, 450))
        shade = np.repeat(np.repeat(np.repeat(shade, step, 0), step, 1), step, 2)[
            : hu.shape[0], : hu.shape[1], : hu.shape[2]
        ]
        hu -= amount * shade / max(float(shade.max()), 1e-6)
        out["scatter_hu"] = round(amount, 1)
    if "aliasing" in kinds:  # fine streaks radiating from the rotation axis over every slice
        x, y = _plane(grid)
        centre = grid.origin + (np.array(grid.shape) - 1) / 2 * grid.spacing
        theta = np.arctan2(y - centre[1], x - centre[0])
        r = np.hypot(x - centre[0], y - centre[1])
        amp = float(rng.uniform(20, 60))
        pattern = amp * np.cos(int(rng.integers(60, 160)) * theta) * np.clip(r / 30, 0, 1)
        hu += pattern.astype(np.float32)[:, :, None]
        out["aliasing_hu"] = round(amp, 1)
    if "motion" in kinds and rng.random() < 0.6:  # the patient moved: a faint shifted copy
        shift_mm = rng.uniform(0.6, 2.0, 2) * rng.choice([-1, 1], 2)
        shift = np.rint(shift_mm / grid.spacing[:2]).astype(int)
        weight = float(rng.uniform(0.1, 0.3))
        hu *= 1 - weight
        hu += weight * np.roll(hu / (1 - weight), tuple(shift), axis=(0, 1))
        out["motion_mm"] = np.round(shift_mm, 2).tolist()
    return out


def add_noise(
    hu: np.ndarray, rng: np.random.Generator, sigma_hu: float, correlated: bool, model: str = "gaussian"
) -> None:
    """Noise slab by slab (to save memory). "gaussian": additive, slightly correlated like reconstructed
    CBCT noise; "poisson": its amplitude grows with attenuation (quantum noise through dense tissue), with
    a coarser grain."""
    step = max(1, 2_000_000 // (hu.shape[0] * hu.shape[1]))
    width, gain = (0.6, 3.3) if model == "gaussian" else (1.0, 6.7)
    for k in range(0, hu.shape[2], step):
        slab = hu[:, :, k : k + step]
        noise = rng.standard_normal(slab.shape, dtype=np.float32)
        if correlated:
            noise = ndimage.gaussian_filter(noise, width, truncate=2.0) * gain
        if model == "poisson":
            noise *= np.sqrt(np.clip(slab + 1000, 50, 5000) / 1000)
        slab += sigma_hu * noise


def truncate_fov(hu: np.ndarray, grid: Grid, rng: np.random.Generator, outside: float) -> float:
    """Everything outside the reconstructed cylinder (axis along z) is one constant value."""
    x, y = _plane(grid)
    centre = grid.origin + (np.array(grid.shape) - 1) / 2 * grid.spacing
    extent = (np.array(grid.shape[:2]) - 1) * grid.spacing[:2]
    radius = 0.5 * float(extent.min()) * rng.uniform(0.93, 1.0)
    hu[np.hypot(x - centre[0], y - centre[1]) > radius] = outside
    return radius


def to_grey(hu: np.ndarray, kind: str, rng: np.random.Generator, gamma: float = 1.0) -> tuple[np.ndarray, dict]:
    """Store the values like a real file would: HU, uncalibrated, unsigned 16-bit or an 8-bit window;
    ``gamma`` != 1 bends the grey-value profile first (a vendor's non-linear transfer)."""
    if gamma != 1.0:
        np.clip(hu, -1000, None, out=hu)
        hu += 1000
        hu /= 3000
        np.power(hu, gamma, out=hu)
        hu *= 3000
        hu -= 1000
    if kind == "hu":
        top = float(rng.choice([3071, 4095, 8191]))
        return np.clip(np.rint(hu), -1024, top).astype(np.int16), {"top": top}
    if kind == "uncalibrated":
        gain = rng.uniform(0.8, 3.5)
        air = rng.uniform(-2000, 0)
        values = np.clip((hu + 1000) * gain + air, -2048, 16383)
        if rng.random() < 0.2:
            return values.astype(np.float32), {"gain": gain, "air": air}
        return np.rint(values).astype(np.int16), {"gain": gain, "air": air}
    if kind == "uint16":
        gain = rng.uniform(0.5, 3.0)
        air = rng.uniform(0, 1000)
        top = float(rng.choice([4095, 65535]))
        gain = min(gain, (top - air) / 4500)  # a 12-bit store keeps enamel (up to 3500 HU) below its top
        values = np.clip(np.rint((hu + 1000) * gain + air), 0, top).astype(np.uint16)
        return values, {"gain": gain, "air": air, "top": top}
    if kind == "uint8":
        low, high = rng.uniform(-900, -300), rng.uniform(1000, 2200)
        values = np.clip((hu - low) * (255.0 / (high - low)), 0, 255)
        return np.rint(values).astype(np.uint8), {"window": [low, high]}
    raise ValueError(kind)
