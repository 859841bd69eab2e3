"""Accuracy of predicted FDI label maps against ground truth: Dice, identification, missed/spurious, HD95.

Definitions (per case; ``evaluate_dirs`` also gives the mean over cases):

- ``dice_binary``: Dice of teeth (label > 0) vs teeth.
- ``dice_per_tooth``: mean over ground-truth teeth f of Dice(pred == f, truth == f).
- ``dice_types``: mean over the tooth types 1..8 present in truth or prediction of the 9-class Dice.
- ``identification_accuracy``: fraction of ground-truth teeth whose most-overlapping predicted label
  (background excluded) is their own FDI number.
- ``missed``: ground-truth teeth of which less than half the voxels are covered by any predicted tooth.
- ``spurious``: predicted labels (teeth) with no voxel on any ground-truth tooth.
- ``unnumbered``: predicted unnumbered teeth (label values 100, 101, ..., see ``fdi.is_unnumbered``). They
  count as teeth in ``dice_binary`` but never identify a tooth (no truth tooth has their value), and
  have no type in ``dice_types``.
- Children's scans (the truth holds primary teeth, 51-85): ``developing`` permanent teeth are those whose
  primary predecessor is in the truth (forming beneath it) or, with both jaws, whose occlusal end lies more
  than ``DEVELOPING_DEPTH_MM`` deeper in its jaw than the jaw's occlusal level (a low quantile of the teeth's
  occlusal ends, as ``instances.mixed`` decides it). ``identification_erupted``: identification over the
  primary and erupted permanent teeth; ``developing_recall``: developing teeth not missed;
  ``developing_numbering``: found developing teeth whose most-overlapping label is their own number. All
  three are null for an adult truth; ``primary_teeth`` and ``developing_teeth`` count them.
- ``hd95_mm``: 95th percentile of the symmetric surface distances between the binary teeth masks, in mm
  (0 when both are empty, null when only one is).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.fdi import fdi_map_to_classes, is_fdi, is_primary, is_tooth_label, is_unnumbered, is_upper
from TeethSegmentationLib.io.volume import bounding_box
from TeethSegmentationLib.label_tables import to_fdi

MIXED_KEYS = ("identification_erupted", "developing_recall", "developing_numbering")
MEAN_KEYS = ("dice_binary", "dice_per_tooth", "dice_types", "identification_accuracy", "hd95_mm", *MIXED_KEYS)
COUNT_KEYS = (
    "truth_teeth",
    "predicted_teeth",
    "identified",
    "missed",
    "spurious",
    "unnumbered",
    "primary_teeth",
    "developing_teeth",
)
DEVELOPING_DEPTH_MM = 4.0  # as instances.mixed (a layer above: not imported)
LEVEL_QUANTILE = 0.25


def dice(a: np.ndarray, b: np.ndarray, empty: float = 1.0) -> float:
    """Dice of two boolean masks; ``empty`` when both are empty."""
    inter, total = overlap_counts(a, b, [True])
    return float(dice_from_counts(inter, total, empty)[0])


def overlap_counts(pred: np.ndarray, truth: np.ndarray, classes: list) -> tuple[np.ndarray, np.ndarray]:
    """(voxels in both, voxels in either map counted twice where in both) per class: the parts of a Dice,
    to be summed over several cases before dividing (pooled Dice)."""
    inter = np.array([np.count_nonzero((pred == c) & (truth == c)) for c in classes], dtype=np.float64)
    total = np.array([np.count_nonzero(pred == c) + np.count_nonzero(truth == c) for c in classes], dtype=np.float64)
    return inter, total


def dice_from_counts(inter: np.ndarray, total: np.ndarray, empty: float = float("nan")) -> np.ndarray:
    """2 x intersection / total per class; ``empty`` where the class is in neither map."""
    inter, total = np.asarray(inter, dtype=np.float64), np.asarray(total, dtype=np.float64)
    return np.where(total > 0, 2.0 * inter / np.maximum(total, 1), empty)


def _overlaps(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """256 x 256 voxel counts of (truth label, predicted label)."""
    both = truth.astype(np.int64).ravel() * 256 + pred.astype(np.int64).ravel()
    return np.bincount(both, minlength=256 * 256).reshape(256, 256)


SPLIT_SHARE = 0.2  # a second predicted number covering this share of a true tooth splits it


def split_teeth(pred: np.ndarray, truth: np.ndarray) -> list[int]:
    """True teeth covered by two predicted numbers, each over ``SPLIT_SHARE`` of the tooth or more (label values
    as given). The lost teeth are :func:`evaluate_pair`'s ``missed_fdi``."""
    table = _overlaps(pred, truth)
    teeth = np.flatnonzero(table[1:].sum(axis=1)) + 1
    return [int(n) for n in teeth if (table[n, 1:] >= SPLIT_SHARE * table[n].sum()).sum() >= 2]


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndi.binary_erosion(mask, border_value=0)


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: np.ndarray) -> float | None:
    """95th-percentile symmetric surface distance (mm) of two binary masks, computed on their joint box."""
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return None
    union = pred | truth
    lo, hi = bounding_box(union, margin=1)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    a, b = pred[box], truth[box]
    sa, sb = _surface(a), _surface(b)
    to_b = ndi.distance_transform_edt(~sb, sampling=spacing)
    to_a = ndi.distance_transform_edt(~sa, sampling=spacing)
    distances = np.concatenate([to_b[sa], to_a[sb]])
    return float(np.percentile(distances, 95))


def evaluate_pair(
    pred: np.ndarray, truth: np.ndarray, spacing: Any = (1.0, 1.0, 1.0), with_hd95: bool = True
) -> dict[str, Any]:
    """Metrics of one predicted FDI map against the truth FDI map on the same grid (see the module doc);
    ``with_hd95`` False leaves out the surface distance (``hd95_mm`` None), the one costly metric (0.8 s on a
    crop: two distance maps)."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise InputError(f"Prediction shape {pred.shape} differs from truth shape {truth.shape}; use the same grid.")
    pred = np.clip(pred, 0, 255).astype(np.uint8)
    truth = np.clip(truth, 0, 255).astype(np.uint8)
    spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    table = _overlaps(pred, truth)
    truth_ids = [int(f) for f in np.flatnonzero(table.sum(axis=1)) if f > 0]
    pred_ids = [int(f) for f in np.flatnonzero(table.sum(axis=0)) if f > 0]
    per_tooth, identified, missed, wrong = {}, [], [], {}
    for f in truth_ids:
        size_t, size_p = table[f].sum(), table[:, f].sum()
        per_tooth[f] = float(dice_from_counts(table[f, f], size_t + size_p))
        covering = table[f, 1:]
        best = int(np.argmax(covering)) + 1 if covering.any() else 0
        if best == f:
            identified.append(f)
        elif best:
            wrong[f] = best
        if covering.sum() < 0.5 * size_t:
            missed.append(f)
    spurious = [f for f in pred_ids if table[1:, f].sum() == 0]
    children = _children_scores(truth, spacing, truth_ids, identified, missed)
    classes_p, classes_t = fdi_map_to_classes(pred), fdi_map_to_classes(truth)
    types = sorted((set(np.unique(classes_p).tolist()) | set(np.unique(classes_t).tolist())) - {0})
    return {
        "dice_binary": dice(pred > 0, truth > 0),
        "dice_per_tooth": float(np.mean(list(per_tooth.values()))) if per_tooth else None,
        "dice_types": float(np.mean([dice(classes_p == t, classes_t == t) for t in types])) if types else 1.0,
        "identification_accuracy": len(identified) / len(truth_ids) if truth_ids else None,
        "hd95_mm": hd95(pred > 0, truth > 0, spacing) if with_hd95 else None,
        "truth_teeth": len(truth_ids),
        "predicted_teeth": len(pred_ids),
        "identified": len(identified),
        "missed": len(missed),
        "spurious": len(spurious),
        "unnumbered": sum(1 for f in pred_ids if is_unnumbered(f)),
        "missed_fdi": missed,
        "spurious_fdi": spurious,
        "misidentified": {str(k): v for k, v in wrong.items()},
        "dice_by_tooth": {str(k): round(float(v), 4) for k, v in per_tooth.items()},
        **children,
    }


def _fraction(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _children_scores(truth: np.ndarray, spacing: np.ndarray, truth_ids: list, identified: list, missed: list) -> dict:
    """The children's scan scores (module doc); nulls and zero counts for an adult truth."""
    primary = [f for f in truth_ids if is_primary(f)]
    developing = developing_teeth(truth, spacing, truth_ids) if primary else []
    erupted = [f for f in truth_ids if is_fdi(f) and f not in developing]
    found = [f for f in developing if f not in missed]
    mixed = bool(primary)
    return {
        "identification_erupted": _fraction(len(set(identified) & set(erupted)), len(erupted)) if mixed else None,
        "developing_recall": _fraction(len(found), len(developing)) if mixed else None,
        "developing_numbering": _fraction(len(set(identified) & set(found)), len(found)) if mixed else None,
        "primary_teeth": len(primary),
        "developing_teeth": len(developing),
        "developing_fdi": developing,
    }


def developing_teeth(truth: np.ndarray, spacing: np.ndarray, truth_ids: list) -> list[int]:
    """The truth's developing permanent teeth: beneath a primary predecessor, or (both jaws) deep in the jaw."""
    ids = set(truth_ids)
    found = {f for f in ids if is_fdi(f) and not is_primary(f) and f + 40 in ids}
    teeth = [f for f in sorted(ids) if is_fdi(f)]
    jaws = np.array([is_upper(f) for f in teeth])
    if min(jaws.sum(), (~jaws).sum()) < 4:
        return sorted(found)
    index = np.nonzero(np.isin(truth, teeth))
    points = np.stack(index, axis=1) * spacing
    rank = np.searchsorted(teeth, truth[index])
    count = np.bincount(rank, minlength=len(teeth))[:, None]
    centroids = np.stack([np.bincount(rank, points[:, a], len(teeth)) for a in range(3)], axis=1) / count
    centred = centroids.copy()
    for jaw in (jaws, ~jaws):
        centred[jaw] -= centroids[jaw].mean(axis=0)
    normal = np.linalg.eigh(centred.T @ centred)[1][:, 0]
    if centroids[jaws].mean(axis=0) @ normal < centroids[~jaws].mean(axis=0) @ normal:
        normal = -normal  # + towards the upper jaw
    height = points @ normal
    low, high = np.full(len(teeth), np.inf), np.full(len(teeth), -np.inf)
    np.minimum.at(low, rank, height)
    np.maximum.at(high, rank, height)
    depth = np.where(jaws, low, -high)  # how deep in its jaw each tooth's occlusal end lies
    for jaw in (jaws, ~jaws):
        level = np.quantile(depth[jaw], LEVEL_QUANTILE)
        deep = jaw & (depth - level > DEVELOPING_DEPTH_MM)
        found |= {teeth[i] for i in np.flatnonzero(deep) if not is_primary(teeth[i])}
    return sorted(found)


# Longer suffixes first: NAME.seg.nrrd is case NAME, not case NAME.seg.
_PRED_SUFFIXES = (".teeth.nrrd", ".seg.nrrd", ".nrrd", ".nii.gz", ".nii")
_TRUTH_SUFFIXES = (".labels.nrrd", ".seg.nrrd", ".nrrd", ".nii.gz", ".nii")


def _cases(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Case name -> file; the first matching suffix in ``suffixes`` wins (NAME.teeth.nrrd before NAME.nrrd)."""
    found: dict[str, tuple[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        for rank, suffix in enumerate(suffixes):
            if path.is_file() and path.name.endswith(suffix):
                name = path.name[: -len(suffix)]
                if name and (name not in found or rank < found[name][0]):
                    found[name] = (rank, path)
                break
    return {name: path for name, (_rank, path) in found.items()}


def _to_fdi(array: np.ndarray, label_table: str) -> np.ndarray:
    return np.asarray(array) if str(label_table).lower() == "fdi" else to_fdi(array, label_table)


def check_label_values(array: np.ndarray, what: str, fdi: bool, unnumbered: bool = False) -> None:
    """A label map holds whole numbers (and, for FDI maps, 0 and FDI tooth numbers only, plus unnumbered teeth'
    labels 100-255 where ``unnumbered``: predictions); say what is wrong."""
    array = np.asarray(array)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise InputError(f"{what} holds NaN or infinite values, so it is not a label map; give a label map.")
        if not np.array_equal(array, np.rint(array)):
            raise InputError(f"{what} holds fractional values (a grey-value image?), not labels; give a label map.")
    if not fdi:
        return
    allowed = is_tooth_label if unnumbered else is_fdi
    values = np.unique(array)
    wrong = [v for v in values.tolist() if v != 0 and not (float(v).is_integer() and allowed(int(v)))]
    if wrong:
        shown = ", ".join(f"{v:g}" for v in wrong[:8]) + (f" and {len(wrong) - 8} more" if len(wrong) > 8 else "")
        known = "0 background, 11-48" + (", unnumbered teeth 100-255" if unnumbered else "")
        raise InputError(
            f"{what} holds values {shown} that are not FDI tooth numbers ({known}); give an FDI label "
            "map, or name its label values with --label-table."
        )


def evaluate_dirs(
    pred_dir: str | os.PathLike, truth_dir: str | os.PathLike, label_table: str = "fdi", reporter: Any = None
) -> dict[str, Any]:
    """Metrics of every case found in both folders (matched by name) and their mean."""
    from TeethSegmentationLib.io.read_write import read_volume

    pred_dir, truth_dir = Path(pred_dir), Path(truth_dir)
    for folder, what in ((pred_dir, "prediction"), (truth_dir, "truth")):
        if not folder.is_dir():
            raise InputError(f"The {what} folder {str(folder)!r} does not exist; give an existing folder.")
    preds, truths = _cases(pred_dir, _PRED_SUFFIXES), _cases(truth_dir, _TRUTH_SUFFIXES)
    names = sorted(set(preds) & set(truths))
    if not names:
        raise InputError(
            f"No case is in both {str(pred_dir)!r} and {str(truth_dir)!r}; "
            "name them NAME.teeth.nrrd and NAME.labels.nrrd "
            "(or NAME.nrrd in both)."
        )
    cases = {}
    for number, name in enumerate(names):
        pred, truth = read_volume(preds[name]), read_volume(truths[name])
        if pred.shape != truth.shape or not np.allclose(pred.ijk_to_ras, truth.ijk_to_ras, atol=1e-3):
            raise InputError(
                f"Case {name!r}: the prediction and the truth are not on the same grid; resample one onto the other."
            )
        check_label_values(truth.array, f"Case {name!r}: the truth", fdi=str(label_table).lower() == "fdi")
        check_label_values(pred.array, f"Case {name!r}: the prediction", fdi=True, unnumbered=True)
        truth_fdi = _to_fdi(truth.array, label_table)
        cases[name] = evaluate_pair(np.rint(pred.array).astype(np.int64), truth_fdi, truth.spacing)
        if reporter is not None:
            reporter.progress("evaluate", (number + 1) / len(names), name)
    return {
        "cases": cases,
        "mean": mean_metrics(list(cases.values())),
        "unmatched_predictions": sorted(set(preds) - set(truths)),
        "unmatched_truths": sorted(set(truths) - set(preds)),
    }


def mean_metrics(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of the rate metrics (None values skipped) and sums of the counts over cases."""
    mean: dict[str, Any] = {"cases": len(cases)}
    for key in MEAN_KEYS:
        values = [c[key] for c in cases if c.get(key) is not None]
        mean[key] = float(np.mean(values)) if values else None
    for key in COUNT_KEYS:
        mean[key] = int(sum(c[key] for c in cases))
    return mean


def format_table(result: dict[str, Any]) -> str:
    """A readable table: one row per case and the mean."""
    head = f"{'case':<24}{'Dice':>7}{'tooth':>7}{'type':>7}{'ident':>7}{'HD95':>8}"
    head += f"{'GT':>5}{'pred':>5}{'miss':>5}{'spur':>5}"
    rows = [head, "-" * len(head)]

    def fmt(value: Any, width: int, digits: int = 3) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    def row(name: str, m: dict[str, Any]) -> str:
        return (
            f"{name[:23]:<24}{fmt(m['dice_binary'], 7)}{fmt(m['dice_per_tooth'], 7)}{fmt(m['dice_types'], 7)}"
            f"{fmt(m['identification_accuracy'], 7)}{fmt(m['hd95_mm'], 8, 2)}{m['truth_teeth']:>5}"
            f"{m['predicted_teeth']:>5}{m['missed']:>5}{m['spurious']:>5}"
        )

    rows += [row(name, m) for name, m in result["cases"].items()]
    rows += ["-" * len(head), row(f"mean ({result['mean']['cases']} cases)", result["mean"])]
    mean = result["mean"]
    if mean.get("primary_teeth"):
        rows.append(
            f"children: identification over primary + erupted {fmt(mean['identification_erupted'], 6)}, "
            f"developing teeth {mean['developing_teeth']}: recall {fmt(mean['developing_recall'], 6)}, "
            f"numbers {fmt(mean['developing_numbering'], 6)}"
        )
    return "\n".join(rows)
