"""On-the-fly augmentation of training patches: pure numpy functions driven by a ``numpy`` Generator.

Arrays are RAS-aligned [x, y, z] after ``reorient_to_ras`` and resampling to isotropic voxels, so
axis 0 is the patient's left-right axis and axis 2 the vertical one. Rotation and scaling are one
affine applied to the image (linear) and the labels (nearest) together, on a crop around the patch
with just the margin the affine needs. A left-right flip swaps the FDI quadrants (1<->2, 3<->4).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
from scipy import ndimage

from TeethSegmentationLib.fdi import mirror_fdi_map
from TeethSegmentationLib.io.volume import crop_padded
from TeethSegmentationLib.nets.normalize import Normalization


@dataclass(frozen=True)
class AugmentParams:
    p_rotate: float = 0.3
    max_angle_deg: float = 15.0  # about each of the three axes
    vertical_angle_deg: float = 0.0  # extra rotation about the vertical (S) axis, the reference method used 180
    p_scale: float = 0.3
    max_scale: float = 0.10
    p_flip: float = 0.5
    p_gain: float = 0.3
    p_gamma: float = 0.3
    p_noise: float = 0.15
    p_blur: float = 0.15
    p_low_contrast: float = 0.1
    p_8bit: float = 0.15
    # Another scanner: its own contrast between tissues (dentin against cortical bone), and grain that grows
    # with the signal. Drawn last, from each patch's own generator, so the other draws are unchanged.
    p_tissue_curve: float = 0.25
    p_signal_noise: float = 0.15
    # The patient moved during the scan (``patient_motion``) and metal as other scanners show it
    # (``metal_artefacts``). Drawn before the grey values, and only when their probability is above 0, so recipes
    # without them draw as before. Off unless the training options ask for them (``ARTEFACTS``): four CPU
    # continuations with them lost on family B.
    p_motion: float = 0.0
    max_motion_mm: float = 3.0
    p_metal: float = 0.0


NO_AUGMENTATION = AugmentParams(**{f.name: 0 for f in fields(AugmentParams)})
ARTEFACTS = {"p_motion": 0.2, "p_metal": 0.3}  # ``--artefact-augment``


def augment_params(augment: bool, other_scanners: bool = True, artefacts: bool = False) -> AugmentParams:
    """The training options' augmentation: none, or all but the patient's movement and metal's artefacts (unless
    ``artefacts``), and all but another scanner's grey values too (unless ``other_scanners``)."""
    if not augment:
        return NO_AUGMENTATION
    params = replace(AugmentParams(), **ARTEFACTS) if artefacts else AugmentParams()
    return params if other_scanners else replace(params, p_tissue_curve=0.0, p_signal_noise=0.0)


# --- Spatial.


def rotation_matrix(angles_rad: np.ndarray) -> np.ndarray:
    """3x3 rotation: about axis 0, then axis 1, then axis 2."""
    matrix = np.eye(3)
    for axis, angle in enumerate(angles_rad):
        c, s = np.cos(angle), np.sin(angle)
        a, b = [i for i in range(3) if i != axis]
        r = np.eye(3)
        r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
        matrix = r @ matrix
    return matrix


def random_matrix(rng: np.random.Generator, params: AugmentParams) -> np.ndarray | None:
    """The output-to-input voxel matrix of a random rotation and scaling; None when neither is drawn."""
    matrix = np.eye(3)
    drawn = False
    if rng.random() < params.p_rotate:
        angles = np.deg2rad(rng.uniform(-params.max_angle_deg, params.max_angle_deg, 3))
        angles[2] += np.deg2rad(rng.uniform(-params.vertical_angle_deg, params.vertical_angle_deg))
        matrix = rotation_matrix(angles) @ matrix
        drawn = True
    if rng.random() < params.p_scale:
        matrix = matrix * rng.uniform(1 - params.max_scale, 1 + params.max_scale)
        drawn = True
    return matrix if drawn else None


def sample_patch(
    image: np.ndarray,
    labels: np.ndarray,
    center: np.ndarray,
    size: tuple[int, int, int],
    matrix: np.ndarray | None = None,
    cval: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A float32 image patch and a uint8 label patch of ``size`` centred on voxel ``center``.

    ``matrix`` maps output offsets from the patch centre to input offsets (rotation, scale); the
    volume is padded with ``cval`` (image) and 0 (labels) where the patch leaves it.
    """
    size_arr = np.asarray(size)
    center = np.asarray(center, dtype=np.float64)
    if matrix is None:
        start = np.round(center).astype(int) - size_arr // 2
        return (
            crop_padded(image, start, tuple(size), cval).astype(np.float32),
            crop_padded(labels, start, tuple(size), 0),
        )
    half = (size_arr // 2).astype(np.float64)  # output voxel size//2 lands on ``center``, as in the plain crop
    extent = np.abs(matrix) @ half
    lo = np.floor(center - extent).astype(int) - 1
    shape = tuple(int(v) for v in np.ceil(center + extent).astype(int) + 2 - lo)
    offset = center - lo - matrix @ half
    crop_img = crop_padded(image, lo, shape, cval).astype(np.float32)
    crop_lab = crop_padded(labels, lo, shape, 0)
    img = ndimage.affine_transform(crop_img, matrix, offset, output_shape=tuple(size), order=1, mode="nearest")
    lab = ndimage.affine_transform(crop_lab, matrix, offset, output_shape=tuple(size), order=0, mode="nearest")
    return img.astype(np.float32), lab.astype(labels.dtype)


def flip_left_right(image: np.ndarray, labels: np.ndarray, fdi_labels: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mirror along the RAS x axis; an FDI map's quadrants swap so each tooth keeps its true number."""
    image = np.ascontiguousarray(image[::-1])
    labels = np.ascontiguousarray(labels[::-1])
    return image, (mirror_fdi_map(labels) if fdi_labels else labels)


# --- Intensity (normalised grey values: soft tissue/air near 0, dense structures near 1).


def gain_offset(image: np.ndarray, rng: np.random.Generator, gain: float = 0.15, offset: float = 0.1) -> np.ndarray:
    return (image * rng.uniform(1 - gain, 1 + gain) + rng.uniform(-offset, offset)).astype(np.float32)


def gamma(image: np.ndarray, rng: np.random.Generator, low: float = 0.7, high: float = 1.5) -> np.ndarray:
    """Gamma on the patch's own range, which is kept."""
    lo, hi = float(image.min()), float(image.max())
    if hi - lo < 1e-6:
        return image.astype(np.float32)
    unit = (image - lo) / (hi - lo)
    return (unit ** rng.uniform(low, high) * (hi - lo) + lo).astype(np.float32)


def noise(image: np.ndarray, rng: np.random.Generator, max_sigma: float = 0.05) -> np.ndarray:
    return (image + rng.normal(0.0, rng.uniform(0, max_sigma), image.shape)).astype(np.float32)


def blur(image: np.ndarray, rng: np.random.Generator, low: float = 0.4, high: float = 1.0) -> np.ndarray:
    return ndimage.gaussian_filter(image.astype(np.float32), rng.uniform(low, high))


def low_contrast(image: np.ndarray, rng: np.random.Generator, low: float = 0.4, high: float = 0.8) -> np.ndarray:
    """Contrast squeezed towards the patch mean, as in a noisy low-dose scan."""
    mean = float(image.mean())
    return ((image - mean) * rng.uniform(low, high) + mean).astype(np.float32)


def eight_bit_export(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """As if the scan had been exported as 8-bit through a window and normalised again.

    A window [lo, hi] is drawn around the normalised range [0, 1]; values are clipped to it,
    quantised to 256 levels, and mapped back the way percentile normalisation of the export would
    (max(lo, 0) -> 0, min(hi, 1) -> 1).
    """
    lo, hi = rng.uniform(-0.5, 0.15), rng.uniform(0.6, 1.6)
    levels = np.round((np.clip(image, lo, hi) - lo) / (hi - lo) * 255.0) / 255.0 * (hi - lo) + lo
    new_lo, new_hi = max(lo, 0.0), min(hi, 1.0)
    return np.clip((levels - new_lo) / (new_hi - new_lo), -0.5, 2.0).astype(np.float32)


def tissue_curve(image: np.ndarray, rng: np.random.Generator, knots: int = 6, spread: float = 0.6) -> np.ndarray:
    """A random smooth, increasing grey transfer over [0, 1] (values outside continue linearly), so each tissue's
    grey value moves and the ratios between tissues change, not only the overall gain or gamma."""
    grid = np.linspace(0.0, 1.0, knots + 1)
    steps = rng.uniform(1.0 - spread, 1.0 + spread, knots)
    curve = np.concatenate([[0.0], np.cumsum(steps) / steps.sum()])
    image = image.astype(np.float32)
    out = np.interp(image, grid, curve).astype(np.float32)
    below, above = image < 0.0, image > 1.0  # outside the knots, the end slopes continue
    out[below] = image[below] * (curve[1] / grid[1])
    out[above] = 1.0 + (image[above] - 1.0) * ((1.0 - curve[-2]) / (1.0 - grid[-2]))
    return out


def signal_noise(
    image: np.ndarray, rng: np.random.Generator, max_sigma: float = 0.06, max_grain: float = 1.0
) -> np.ndarray:
    """Noise whose strength grows with the grey value (photon-limited), with a coarse grain (correlated)."""
    field = rng.normal(0.0, 1.0, image.shape).astype(np.float32)
    grain = rng.uniform(0.0, max_grain)
    if grain > 0.3:
        field = ndimage.gaussian_filter(field, grain)
        field /= max(float(field.std()), 1e-6)
    strength = np.sqrt(np.clip(image, 0.0, None) + 0.05).astype(np.float32)
    return (image + rng.uniform(0.0, max_sigma) * strength * field).astype(np.float32)


def patient_motion(
    image: np.ndarray, rng: np.random.Generator, spacing_mm: float, max_mm: float = 3.0
) -> np.ndarray:
    """The patient moved during the scan, which shows as double contours and blur (Spin-Neto & Wenzel's systematic
    review, OOOO 2016; a dry skull moved by a hexapod robot, Spin-Neto et al. 2017). For a rigid movement the
    reconstruction is, to first order, the mean of the head at each position it held, weighted by the share of
    the rotation it spent there; the range of a few millimetres is ours.

    Half the draws move once and come back (a tremor or a swallow): a second, fainter copy at 0.5-``max_mm``,
    a double contour; the other half drift steadily over 0.5-``max_mm``: the copies spread along that path,
    a directional blur centred on the labelled position. Within a stage-2 patch (24 mm) a nod or tilt is nearly
    a translation too. The labels stay at the position held longest, or at the middle of the drift.
    """
    direction = rng.normal(size=3)
    direction /= max(float(np.linalg.norm(direction)), 1e-9)
    path = direction * rng.uniform(0.5, max_mm) / spacing_mm  # voxels
    image = image.astype(np.float32)
    if rng.random() < 0.5:
        share = rng.uniform(0.15, 0.5)  # of the rotation spent at the second position
        moved = ndimage.shift(image, path, order=1, mode="nearest")
        return ((1.0 - share) * image + share * moved).astype(np.float32)
    positions = max(3, int(np.ceil(np.linalg.norm(path))) + 1)  # about one copy a voxel along the path,
    positions += 1 - positions % 2  # an odd count: one copy where the labels are
    out = np.zeros_like(image)
    for t in np.linspace(-0.5, 0.5, positions):
        out += ndimage.shift(image, t * path, order=1, mode="nearest")
    return out / positions


METAL_LEVEL = 1.25  # normalised grey value above which a voxel is metal: dentin and enamel 0.6-1.1, metal 1.4-2
P_SOLID_CROWN = 0.5  # of the metal draws with labels: the restored teeth's metal shells shown solid
CROWN_CORE_MM = 4.0  # the shell closes over a core up to 8 mm across (a molar's prepared stump)


def metal_artefacts(
    image: np.ndarray, rng: np.random.Generator, spacing_mm: float, labels: np.ndarray | None = None
) -> np.ndarray:
    """Metal as other scanners show it (Schulze et al., "Artefacts in 3D CBCT: a review", DMFR 2011): one grey
    value of its own, wherever the detector or the file's range saturates it (1.0-2.0, from as bright as enamel to
    far above it); blooming, metal looking up to 1.5 mm larger than it is, so that a crown's shell can fill the
    whole crown as an implant's crown does; and a dark halo beside it from beam hardening and photon starvation,
    0.5-2 mm wide and 0.1-0.5 of the normalised range deep, never below the clip that normalisation sets. With
    ``labels``, half the draws also show each restored tooth's metal solid (:func:`solid_crowns`). The labels
    stay: a restored tooth is still the tooth. A patch without metal is returned as it is."""
    metal = image > METAL_LEVEL
    if np.count_nonzero(metal) < 8:
        return image
    if labels is not None and rng.random() < P_SOLID_CROWN:
        metal = solid_crowns(metal, labels, spacing_mm)
    distance_mm = ndimage.distance_transform_edt(~metal) * spacing_mm
    depth, width, bloom = rng.uniform(0.1, 0.5), rng.uniform(0.5, 2.0), rng.uniform(0.0, 1.5)
    shown = distance_mm <= bloom
    out = (image - depth * np.exp(-(distance_mm - bloom) / width)).astype(np.float32)
    out = np.maximum(out, np.minimum(image, Normalization().clip_low))  # air stays at the floor inference sees
    out[shown] = rng.uniform(1.0, 2.0)
    return out


def solid_crowns(metal: np.ndarray, labels: np.ndarray, spacing_mm: float) -> np.ndarray:
    """``metal`` and, in each labelled tooth that holds metal, the voxels its metal closes over (a morphological
    closing of CROWN_CORE_MM): a crown's shell filled up to its core, one solid blob, as a full-cast crown or a
    strongly blooming one shows (the crowned teeth of family B; the phantoms draw a shell over the dentin core).
    An implant's crown is solid already and is not a tooth: only labelled teeth are filled, so what tells the two
    apart is what lies beneath, a root or a screw. A tooth without metal of its own stays, between crowns too, when
    ``labels`` has one value a tooth (FDI numbers, not classes or a binary mask)."""
    restored = np.unique(labels[metal & (labels > 0)])
    if not len(restored):
        return metal
    reach = CROWN_CORE_MM / spacing_mm  # voxels
    grown = ndimage.distance_transform_edt(~metal) <= reach
    closed = grown if grown.all() else ndimage.distance_transform_edt(grown) > reach  # no zero: edt is undefined
    return metal | (closed & np.isin(labels, restored))


def augment_intensity(
    image: np.ndarray, rng: np.random.Generator, params: AugmentParams, spacing_mm: float = 0.5,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """The grey-value augmentations in the order a scan meets them: metal and movement in the scanner, then
    export, contrast, blur and noise; ``spacing_mm`` is the patch's voxel size, ``labels`` its label patch (the
    restored teeth whose metal may be shown solid)."""
    if params.p_metal > 0 and rng.random() < params.p_metal:
        image = metal_artefacts(image, rng, spacing_mm, labels)
    if params.p_motion > 0 and rng.random() < params.p_motion:
        image = patient_motion(image, rng, spacing_mm, params.max_motion_mm)
    steps = (
        (params.p_8bit, eight_bit_export),
        (params.p_gain, gain_offset),
        (params.p_gamma, gamma),
        (params.p_low_contrast, low_contrast),
        (params.p_blur, blur),
        (params.p_noise, noise),
        (params.p_tissue_curve, tissue_curve),
        (params.p_signal_noise, signal_noise),
    )
    for probability, step in steps:
        if rng.random() < probability:
            image = step(image, rng)
    return image.astype(np.float32, copy=False)


def teeth_channel(
    mask: np.ndarray, rng: np.random.Generator, sigma: float = 1.0, noise_sigma: float = 0.1
) -> np.ndarray:
    """A stand-in for stage 1's teeth probability: the smoothed binary mask with noise, in [0, 1]."""
    smooth = ndimage.gaussian_filter(mask.astype(np.float32), rng.uniform(0.5 * sigma, 1.5 * sigma))
    return np.clip(smooth + rng.normal(0.0, noise_sigma, mask.shape), 0.0, 1.0).astype(np.float32)
