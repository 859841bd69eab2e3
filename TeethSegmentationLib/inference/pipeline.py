"""The segmentation pipeline: a CBCT volume in, an FDI label map on the input's own grid out.

read -> reorient to RAS -> stage 1 on the coarse grid (teeth probability) -> keep teeth components
-> teeth box + margin -> crop the input, resample only the crop to the fine grid -> stage 2 (9 or 14
classes; and the contacts network, where the model has one) -> forming third molars kept whole
(``inference/forming_molars.py``) -> instances + FDI numbers
-> back onto the input grid, surfaces from the interpolated probability (``inference/paste.py``;
``inference/outputs.py`` writes the files).

Memory stays bounded on a whole-head scan: the reoriented input is a view (no copy), only the coarse
grid and the fine teeth box are resampled (slab by slab, from the input's own dtype), stage 2 skips
windows without (dilated) stage-1 teeth, and the labels go back only into the teeth box of a uint8
output, through a reoriented view of it (an axis-aligned, fast resampling).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from TeethSegmentationLib.events import NullReporter, Reporter, StageReporter
from TeethSegmentationLib.fdi import (
    fdi_map_to_classes,
    is_fdi,
    is_tooth_label,
    tooth_name,
    tooth_type,
    unnumbered_name,
)
from TeethSegmentationLib.inference.forming_molars import forming_third_molars
from TeethSegmentationLib.inference.paste import paste_labels
from TeethSegmentationLib.inference.stages import (
    TYPES_MARGIN_MM,
    predict_teeth,
    predict_types,
    predict_types_and_contacts,
)
from TeethSegmentationLib.instances.options import InstanceOptions
from TeethSegmentationLib.io.orientation import reorient_to_ras
from TeethSegmentationLib.io.resample import resample_to_reference, resample_to_spacing
from TeethSegmentationLib.io.volume import Volume, bounding_box, crop, ras_box_to_ijk, voxel_box_to_ras
from TeethSegmentationLib.nets.devices import describe_device, resolve_device, resolve_precision
from TeethSegmentationLib.nets.model_file import TeethModel
from TeethSegmentationLib.nets.normalize import image_content, intensity_window, normalize


@dataclass
class SegmentOptions:
    device: str = "auto"
    precision: str = "float32"  # the networks' arithmetic: float32, bfloat16 or auto (nets.devices.resolve_precision)
    tta: bool = False
    teeth_threshold: float = 0.5
    min_component_mm3: float = 30.0  # stage-1 specks smaller than this are dropped
    # Stage-1 parts that the dentition's largest part does not reach in steps of at most this are dropped:
    # across a gap of up to three missing teeth beside it, and at most dentition_rise_mm above or below it.
    dentition_gap_mm: float = 26.0
    dentition_rise_mm: float = 15.0
    margin_mm: float = TYPES_MARGIN_MM  # around the teeth box before the fine stage
    # Stage-1 specks of at least this size within margin_mm of the kept teeth are looked at by stage 2 too: a
    # third molar's first cusps at 10-12 years are 4-20 mm3 on the 1 mm grid, too small to keep on their own.
    speck_mm3: float = 3.0
    stl: bool = False
    stl_space: str = "LPS"
    nine_class: bool = False
    series_uid: str | None = None


@dataclass
class ToothReport:
    """One tooth of report.json. An unnumbered tooth (no free FDI number) has ``numbered`` False, ``fdi`` and
    ``label`` = its label value (fdi.unnumbered_label(k): 100, 101, ...) and the name 'Unnumbered tooth k'."""

    fdi: int
    type: int
    name: str
    voxel_count: int
    volume_mm3: float
    centroid_ras: list[float]
    confidence: float
    label: int = 0  # value in the label map and the .seg.nrrd
    numbered: bool = True
    developing: bool = False  # a permanent tooth still forming in its crypt (mixed dentition; instances.mixed)


@dataclass
class SegmentResult:
    fdi: Volume  # uint8 FDI label map on the input's grid; unnumbered teeth 100, 101, ... (fdi.unnumbered_label)
    teeth: list[ToothReport]
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    device: str = "cpu"

    @property
    def types(self) -> Volume:
        """The 9-class map (0 background, 1..8 type) on the input's grid."""
        return self.fdi.with_array(fdi_map_to_classes(self.fdi.array))


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(timings.get(stage, 0.0) + time.perf_counter() - start, 3)


def label_instances(
    teeth_prob: np.ndarray, type_probs: np.ndarray, ijk_to_ras: np.ndarray, reporter: Reporter,
    contacts: np.ndarray | None = None,
):
    """The one place the pipeline calls the instance step (``instances.label_teeth``). Its warnings come back
    in the result (``segment_volume`` puts them into ``SegmentResult.warnings``, which is logged once)."""
    from TeethSegmentationLib.instances.teeth import label_teeth

    return label_teeth(teeth_prob, type_probs, ijk_to_ras, reporter=reporter, log_warnings=False, contacts=contacts)


# --------------------------------------------------------------------------------------------- stages


def _teeth_mask(prob: Volume, options: SegmentOptions) -> np.ndarray:
    """Stage-1 mask of the dentition: components of at least ``min_component_mm3`` that the largest one
    reaches in steps of at most ``dentition_gap_mm`` sideways and ``dentition_rise_mm`` up or down (the coarse
    grid is RAS: its third axis is superior). Molars behind three missing teeth stay; bright bits of the skull
    base, sinus walls, spine or hyoid in a whole-head scan go."""
    mask = prob.array > options.teeth_threshold
    components, count = ndimage.label(mask)
    if count == 0:
        return mask
    voxel_mm3 = float(abs(np.linalg.det(prob.ijk_to_ras[:3, :3])))
    sizes = np.bincount(components.ravel())
    keep = sizes * voxel_mm3 >= options.min_component_mm3
    keep[0] = False
    if keep.sum() > 1:
        stretch = np.array([1.0, 1.0, options.dentition_gap_mm / options.dentition_rise_mm])  # a rise counts more
        keep &= _reached_from_largest(components, sizes, keep, prob.spacing * stretch, options.dentition_gap_mm)
    return keep[components]


def _reached_from_largest(
    components: np.ndarray, sizes: np.ndarray, candidates: np.ndarray, spacing: np.ndarray, gap_mm: float
) -> np.ndarray:
    """Per component label: whether a chain of ``candidates`` at most ``gap_mm`` apart joins it to the largest."""
    kept = np.zeros(len(sizes), dtype=bool)
    kept[int(np.argmax(np.where(candidates, sizes, 0)))] = True
    while True:
        reached = np.zeros(len(sizes), dtype=bool)
        reached[_near_components(components, kept, spacing, gap_mm)] = True
        grown = kept | (reached & candidates)
        if np.array_equal(grown, kept):
            return kept
        kept = grown


def _near_components(components: np.ndarray, kept: np.ndarray, spacing: np.ndarray, gap_mm: float) -> np.ndarray:
    """Labels of the components with a voxel at most ``gap_mm`` from a ``kept`` one. The distance map covers only
    the box of the kept components grown by the gap (what lies further cannot be near): on a whole head that
    box is a fraction of the coarse grid."""
    inside = np.isin(components, np.flatnonzero(kept))
    lo, hi = bounding_box(inside)
    reach = np.ceil(gap_mm / np.asarray(spacing)).astype(int) + 1
    box = tuple(slice(max(0, int(a - r)), int(b + r)) for a, b, r in zip(lo, hi, reach, strict=True))
    near = ndimage.distance_transform_edt(~inside[box], sampling=spacing) <= gap_mm
    return np.unique(components[box][near])


def run_teeth_stage(
    ras: Volume, window: tuple[float, float], model: TeethModel, device: torch.device, dtype: torch.dtype,
    options: SegmentOptions, reporter: Reporter,
) -> tuple[Volume, np.ndarray]:
    """Stage 1 on the coarse grid: (probability volume, cleaned mask)."""
    coarse = resample_to_spacing(ras, model.teeth_spacing_mm, order=1)
    coarse = coarse.with_array(normalize(coarse.array, model.normalization, window))
    reporter.progress("teeth", 0.1, f"coarse grid {coarse.shape}")
    prob = predict_teeth(
        model, coarse, device, options.tta, lambda f: reporter.progress("teeth", 0.1 + 0.8 * f), dtype=dtype
    )
    return prob, _teeth_mask(prob, options)


def _skip_mask(prob: Volume, mask: np.ndarray, fine: Volume, options: SegmentOptions) -> np.ndarray:
    """Stage-1 teeth and the specks near them (:func:`_near_specks`) grown by ``margin_mm`` (on the coarse
    grid), on the fine grid: where stage 2 must run, and what it is asked about."""
    steps = int(np.ceil(options.margin_mm / float(np.min(prob.spacing))))
    grown = ndimage.binary_dilation(mask, iterations=steps) if steps > 0 else mask
    specks = _near_specks(prob, mask, grown, options)
    if specks.any():
        grown = grown | (ndimage.binary_dilation(specks, iterations=steps) if steps > 0 else specks)
    return resample_to_reference(prob.with_array(grown.view(np.uint8)), fine, order=0).array.astype(bool)


def _near_specks(prob: Volume, mask: np.ndarray, near: np.ndarray, options: SegmentOptions) -> np.ndarray:
    """Stage-1 parts outside ``mask`` of at least ``speck_mm3`` that reach into ``near`` (the teeth grown by
    the margin). The teeth box stays the teeth's: a moved box would shift every stage-2 window."""
    components, count = ndimage.label((prob.array > options.teeth_threshold) & ~mask)
    if count == 0:
        return np.zeros(mask.shape, dtype=bool)
    voxel_mm3 = float(abs(np.linalg.det(prob.ijk_to_ras[:3, :3])))
    keep = np.bincount(components.ravel(), minlength=count + 1) * voxel_mm3 >= options.speck_mm3
    keep &= np.bincount(components[near], minlength=count + 1) > 0
    keep[0] = False
    return keep[components]


def fine_box(ras: Volume, prob: Volume, mask: np.ndarray, margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The voxel box of the reoriented input holding the teeth plus a margin."""
    ras_lo, ras_hi = voxel_box_to_ras(prob, *bounding_box(mask))
    return ras_box_to_ijk(ras, ras_lo - margin_mm, ras_hi + margin_mm)


def run_types_stage(
    teeth_part: Volume, window: tuple[float, float], prob: Volume, mask: np.ndarray, model: TeethModel,
    device: torch.device, dtype: torch.dtype, options: SegmentOptions, reporter: Reporter,
) -> tuple[Volume, np.ndarray, np.ndarray, np.ndarray | None]:
    """Stage 2 on the fine grid of the crop: (fine grid, 9-class softmax, stage-1 teeth grown by the margin:
    where stage 2 ran, the contacts network's probability or None without one)."""
    fine = resample_to_spacing(teeth_part, model.spacing_mm, order=1)
    fine = fine.with_array(normalize(fine.array, model.normalization, window))
    teeth_up = resample_to_reference(prob, fine, order=1).array if model.types_input == "image+teeth" else None
    reporter.progress("types", 0.1, f"fine grid {fine.shape}")
    near = _skip_mask(prob, mask, fine, options)
    progress = lambda f: reporter.progress("types", 0.1 + 0.9 * f)  # noqa: E731
    if model.contacts_net is None:
        probs = predict_types(model, fine, teeth_up, device, options.tta, progress, mask=near, dtype=dtype)
        return fine, probs, near, None
    probs, contacts = predict_types_and_contacts(model, fine, teeth_up, device, options.tta, progress, near, dtype)
    return fine, probs, near, contacts


def _tooth_reports(fdi_box: np.ndarray, reference: Volume, instances: list[Any]) -> list[ToothReport]:
    """Per tooth (numbered ones by FDI number, then the unnumbered): counts from the label map (only the box
    holding the teeth), centroid/confidence from instances."""
    counts = np.bincount(fdi_box[fdi_box > 0], minlength=256)  # teeth only: a fraction of the box
    voxel_mm3 = float(abs(np.linalg.det(reference.ijk_to_ras[:3, :3])))
    reports = []
    for tooth in sorted(instances, key=lambda t: int(getattr(t, "label", 0) or t.fdi)):
        value = int(getattr(tooth, "label", 0) or tooth.fdi)
        if not is_tooth_label(value) or counts[value] == 0:
            continue
        numbered = is_fdi(value)
        reports.append(
            ToothReport(
                fdi=value,
                type=tooth_type(value) if numbered else int(tooth.type),
                name=tooth_name(value) if numbered else unnumbered_name(value),
                voxel_count=int(counts[value]),
                volume_mm3=round(float(counts[value]) * voxel_mm3, 2),
                centroid_ras=[round(float(c), 3) for c in np.ravel(tooth.centroid_ras)[:3]],
                confidence=round(float(tooth.confidence), 4),
                label=value,
                numbered=numbered,
                developing=bool(getattr(tooth, "developing", False)),
            )
        )
    return reports


def _empty_result(volume: Volume, timings: dict, device: torch.device, message: str) -> SegmentResult:
    fdi = volume.with_array(np.zeros(volume.shape, np.uint8))
    return SegmentResult(fdi, [], timings, [message], describe_device(device))


# What the instance step received and returned: (foreground [i,j,k], class softmax [C,i,j,k], fine grid ijk->RAS,
# contacts [i,j,k] or None (a model without a contacts network), the instance step's result). The scripts that
# develop and calibrate the instance step read it. An observer must not modify the arrays (the labels are pasted
# from the foreground next); its time counts in the instances stage.
InstanceObserver = Callable[[np.ndarray, np.ndarray, np.ndarray, Any, Any], None]


def segment_volume(
    volume: Volume, model: TeethModel, options: SegmentOptions | None = None, reporter: Reporter | None = None,
    on_instances: InstanceObserver | None = None,
) -> SegmentResult:
    """Segment and number the teeth of ``volume``; the label map lies exactly on ``volume``'s grid.
    ``on_instances``, when given, sees the instance step's inputs and result (:data:`InstanceObserver`)."""
    options = options or SegmentOptions()
    reporter = reporter or NullReporter()
    device = resolve_device(options.device)
    dtype = resolve_precision(options.precision, device)  # a bad name is refused before any work
    model.to(device).eval()
    timings: dict[str, float] = {}
    with _timed(timings, "teeth"):
        image = volume.with_array(image_content(volume.array))
        ras = reorient_to_ras(image, copy=False)
        window = intensity_window(image.array, model.normalization)
        prob, mask = run_teeth_stage(ras, window, model, device, dtype, options, reporter)
        reporter.progress("teeth", 1.0, f"{int(mask.sum())} teeth voxels on the coarse grid")
    if not mask.any():
        return _empty_result(volume, timings, device, "No teeth were found in this scan.")
    with _timed(timings, "types"):
        lo, hi = fine_box(ras, prob, mask, options.margin_mm)
        teeth_part = crop(ras, lo, hi, copy=False)
        fine, probs, near, contacts = run_types_stage(
            teeth_part, window, prob, mask, model, device, dtype, options, reporter
        )
        foreground = 1.0 - probs[0].astype(np.float32)
        forming_third_molars(near, foreground, probs, fine.spacing, options.teeth_threshold)
        reporter.progress("types", 1.0)
    with _timed(timings, "instances"):
        found = label_instances(
            foreground, probs, fine.ijk_to_ras, StageReporter(reporter, "instances", 0.0, 0.7), contacts=contacts
        )
        if on_instances is not None:
            on_instances(foreground, probs, fine.ijk_to_ras, contacts, found)
        fdi_fine = fine.with_array(np.asarray(found.fdi_map, dtype=np.uint8))
        fdi_map = np.zeros(volume.shape, dtype=np.uint8)
        pasted = paste_labels(fdi_fine, volume, fdi_map, foreground, InstanceOptions().threshold)
        teeth = _tooth_reports(pasted, volume, [*found.teeth, *found.unassigned])
        reporter.progress("instances", 1.0, f"{len(teeth)} teeth")
    warnings = list(found.warnings)
    result = SegmentResult(volume.with_array(fdi_map), teeth, timings, warnings, describe_device(device))
    if not teeth:
        result.warnings.append("No teeth were found in this scan.")
    return result
