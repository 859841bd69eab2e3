"""Training data: finding cases, reading and preparing them once per stage, sampling patches.

A case is an image file and its label file. Each is read, turned to RAS, resampled to the stage's
isotropic grid (image linear, labels nearest), normalised exactly as inference does, and kept in
memory (float16 image, uint8 labels). Labels are kept as FDI numbers when the source has them, so
a left-right flip can swap quadrants before the 9-class target is made.

Patches are drawn by :class:`PatchDataset`. Item ``i`` of epoch ``e`` on rank ``r`` is a pure
function of ``(seed, e, r, i)``: the same whatever the number of DataLoader workers, and a resumed
run sees exactly the patches an uninterrupted one would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.events import NullReporter, Reporter
from TeethSegmentationLib.fdi import (
    ALL_FDI_NUMBERS,
    NUM_CLASSES,
    NUM_CLASSES_MIXED,
    PRIMARY_CLASS_OFFSET,
    fdi_map_to_classes,
)
from TeethSegmentationLib.io.volume import bounding_box
from TeethSegmentationLib.label_tables import to_fdi
from TeethSegmentationLib.nets.normalize import Normalization, normalize
from TeethSegmentationLib.training import augment
from TeethSegmentationLib.training.contact_target import contact_target

IMAGE_EXTENSIONS = (".nrrd", ".nhdr", ".nii.gz", ".nii")  # what io.read_write reads
LABEL_SUFFIXES = (".labels", "_labels", "-labels", ".label", "_label", "-label", ".seg", "_seg")
LABEL_KINDS = ("auto", "fdi", "classes", "binary")
DEFAULT_NORMALIZATION = Normalization()


@dataclass(frozen=True)
class Case:
    name: str
    image: Path
    labels: Path


def _split_extension(path: Path) -> tuple[str, str]:
    lower = path.name.lower()
    for ext in IMAGE_EXTENSIONS:
        if lower.endswith(ext):
            return path.name[: -len(ext)], path.name[-len(ext) :]
    return path.stem, path.suffix


def find_cases(data_dir: str | os.PathLike) -> list[Case]:
    """Pairs ``NAME.ext`` + ``NAME.labels.ext`` (or _labels, .label, .seg ...) in a folder, sorted by name."""
    folder = Path(data_dir)
    if not folder.is_dir():
        raise InputError(f"Training data folder {folder} does not exist.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and _split_extension(p)[1].lower() in IMAGE_EXTENSIONS)
    stems = {_split_extension(p)[0]: p for p in files}
    cases = []
    for stem, path in stems.items():
        if any(stem.lower().endswith(s) for s in LABEL_SUFFIXES):
            continue
        label = next((stems[stem + s] for s in LABEL_SUFFIXES if stem + s in stems), None)
        if label is not None:
            cases.append(Case(stem, path, label))
    if not cases:
        raise InputError(f"No training cases in {folder}; put pairs like case01.nrrd + case01.labels.nrrd there.")
    return cases


def cases_from_paths(images: list[str], labels: list[str]) -> list[Case]:
    if len(images) != len(labels):
        raise InputError(f"Got {len(images)} images but {len(labels)} label maps; give one label map per image.")
    if not images:
        raise InputError("No training data; give --images with --labels, or --data with a folder.")
    cases = []
    for image, label in zip(images, labels, strict=True):
        for path in (image, label):
            if not Path(path).is_file():
                raise InputError(f"Training file {path} does not exist.")
        cases.append(Case(_split_extension(Path(image))[0], Path(image), Path(label)))
    return cases


# --- Label sources.


def detect_label_kind(values: np.ndarray) -> str:
    """'binary' (0/1), 'classes' (0..8) or 'fdi' (0 + FDI numbers) from the values present."""
    values = set(int(v) for v in values)
    if values <= {0, 1}:
        return "binary"
    if values <= set(range(9)):
        return "classes"
    if values <= {0, *ALL_FDI_NUMBERS}:
        return "fdi"
    unknown = sorted(values - {0, *ALL_FDI_NUMBERS})
    raise InputError(
        f"Label values {unknown[:12]} are neither FDI tooth numbers, tooth types 0-8 nor binary 0/1; "
        "pass --label-table (toothfairy2, dentvoxel or a JSON file)."
    )


def canonical_labels(array: np.ndarray, kind: str = "auto", table: str | None = None) -> tuple[np.ndarray, str]:
    """(uint8 labels, kind): FDI through ``table`` when given, else checked against ``kind``."""
    if table:
        if kind not in ("auto", "fdi"):
            raise InputError("--label-table makes FDI labels; leave --label-kind at auto or fdi.")
        return to_fdi(array, table), "fdi"
    values = np.unique(array)
    if kind == "auto":
        kind = detect_label_kind(values)
    allowed = {"fdi": {0, *ALL_FDI_NUMBERS}, "classes": set(range(9)), "binary": {0, 1}}.get(kind)
    if allowed is None:
        raise InputError(f"Unknown label kind {kind!r}; use one of {', '.join(LABEL_KINDS)}.")
    unknown = sorted(set(int(v) for v in values) - allowed)
    if unknown:
        raise InputError(f"Label values {unknown[:12]} are not valid for --label-kind {kind}.")
    return np.asarray(array).astype(np.uint8), kind


def _check_label_values(array: np.ndarray, path: Path) -> None:
    """Label maps hold whole numbers: a float map with NaN, infinities or fractions is an image, not labels."""
    if np.asarray(array).dtype.kind != "f":
        return
    if not np.isfinite(array).all():
        raise InputError(f"Label map {path} holds NaN or infinite values; give a label map of whole numbers.")
    if not np.array_equal(array, np.rint(array)):
        raise InputError(f"Label map {path} holds fractional values; give a label map of whole numbers.")


def stage_target(labels: np.ndarray, kind: str, stage: str, classes: int = NUM_CLASSES) -> np.ndarray:
    """uint8 target: "teeth" 0/1, "types" classes 0..8 (or 0..13 with ``classes`` 14: primary types 9..13),
    "contacts" 0/1 where two teeth touch (``contact_target``)."""
    if stage == "teeth":
        return (labels > 0).astype(np.uint8)
    if kind == "binary":
        raise InputError("Binary teeth labels can only train the teeth stage; types need FDI or tooth-type labels.")
    if stage == "contacts":
        if kind != "fdi":
            raise InputError("The contacts network needs FDI labels (one number per tooth), not tooth types.")
        return contact_target(labels)
    return fdi_map_to_classes(labels, classes) if kind == "fdi" else labels.astype(np.uint8)


# --- Prepared cases.


@dataclass
class PreparedCase:
    name: str
    image: np.ndarray  # float16, normalised, RAS-aligned, isotropic
    labels: np.ndarray  # uint8, FDI / classes / binary as ``kind`` says
    kind: str
    cval: float  # padding value of the image (its minimum)
    groups: dict[int, np.ndarray] = field(default_factory=dict)  # tooth type (or 1) -> flat voxel indices
    box: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # (lo, hi) voxel box of the teeth, None without

    def region(self, margin: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) voxels: the teeth box grown by ``margin`` and clipped, or the whole volume (margin None
        or no teeth)."""
        lo, hi = np.zeros(3, dtype=int), np.asarray(self.labels.shape)
        if margin is None or self.box is None:
            return lo, hi
        return np.maximum(np.asarray(self.box[0]) - margin, lo), np.minimum(np.asarray(self.box[1]) + margin, hi)


def teeth_box(labels: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(lo, hi exclusive) voxel box of the non-zero labels; None when there are none."""
    box = bounding_box(labels > 0)
    return None if box is None else (tuple(box[0].tolist()), tuple(box[1].tolist()))


def _read(path: Path):
    from TeethSegmentationLib.io.orientation import reorient_to_ras
    from TeethSegmentationLib.io.read_write import read_volume

    try:
        return reorient_to_ras(read_volume(path))
    except InputError:
        raise
    except (OSError, ValueError) as error:
        raise InputError(f"Cannot read {path}: {error}".rstrip(".") + ".") from None


def foreground_groups(labels: np.ndarray, kind: str) -> dict[int, np.ndarray]:
    """Flat indices of the tooth voxels, grouped by tooth type (one group for binary labels).

    FDI labels group by the 14 mixed classes whatever the model's classes: the five primary types are
    groups of their own, so a child's primary teeth are drawn as often as its permanent types. (Lumped with
    the permanent type of their place, a 14-class network had not learnt them after 3,600 steps; drawn by
    class, it learnt the primary canines and molars in 3,500 more.)"""
    if kind == "binary":
        types = (labels > 0).astype(np.uint8)
    else:
        types = stage_target(labels, kind, "types", NUM_CLASSES_MIXED if kind == "fdi" else NUM_CLASSES)
    dtype = np.int32 if labels.size < 2**31 else np.int64
    return {int(t): np.flatnonzero(types == t).astype(dtype) for t in np.unique(types) if t > 0}


def prepare_case(
    case: Case,
    spacing: float,
    normalization: Normalization = DEFAULT_NORMALIZATION,
    label_kind: str = "auto",
    label_table: str | None = None,
) -> PreparedCase:
    from TeethSegmentationLib.io.resample import resample_to_spacing

    image, labels = _read(case.image), _read(case.labels)
    if image.shape != labels.shape or not np.allclose(image.ijk_to_ras, labels.ijk_to_ras, atol=1e-3):
        raise InputError(f"Label map {case.labels} does not lie on the grid of image {case.image}.")
    _check_label_values(labels.array, case.labels)
    canonical, kind = canonical_labels(labels.array, label_kind, label_table)
    image = resample_to_spacing(image, spacing, order=1)
    labels = resample_to_spacing(labels.with_array(canonical), spacing, order=0)
    array = normalize(image.array, normalization)
    label_array = np.asarray(labels.array).astype(np.uint8)
    return PreparedCase(
        name=case.name,
        image=array.astype(np.float16),
        labels=label_array,
        kind=kind,
        cval=float(array.min()),
        groups=foreground_groups(label_array, kind),
        box=teeth_box(label_array),
    )


def prepare_cases(
    cases: list[Case],
    spacing: float,
    normalization: Normalization = DEFAULT_NORMALIZATION,
    label_kind: str = "auto",
    label_table: str | None = None,
    reporter: Reporter | None = None,
    stage_name: str = "prepare",
    processes: int = 0,
) -> list[PreparedCase]:
    """Each case read and prepared, in order; ``processes`` > 1 prepares them side by side (a GPU machine's
    many cores: hundreds of cases take 0.5-1 s each on one core)."""
    if not cases:
        return []
    reporter = reporter or NullReporter()
    args = (spacing, normalization, label_kind, label_table)
    if processes > 1 and len(cases) > 1:
        out = _prepare_in_processes(cases, args, min(processes, len(cases)), reporter, stage_name)
    else:
        out = []
        for i, case in enumerate(cases):
            reporter.progress(stage_name, i / len(cases), f"reading {case.name}")
            out.append(prepare_case(case, *args))
    reporter.progress(stage_name, 1.0, f"{len(cases)} cases at {spacing:g} mm")
    return out


def _prepare_in_processes(
    cases: list[Case], args: tuple, processes: int, reporter: Reporter, stage_name: str
) -> list[PreparedCase]:
    """The cases in order; the first bad one (in case order) raises its error, and the cases not started yet
    are dropped rather than awaited."""
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(processes)
    try:
        futures = [pool.submit(prepare_case, case, *args) for case in cases]
        out = []
        for future in futures:
            out.append(future.result())
            reporter.progress(stage_name, len(out) / len(cases), f"{len(out)} of {len(cases)} cases read")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return out


# --- Patches.

PRIMARY_INCISOR_CLASSES = (PRIMARY_CLASS_OFFSET + 1, PRIMARY_CLASS_OFFSET + 2)  # their groups (14-class ids)


@dataclass(frozen=True)
class SamplingParams:
    patch: int = 64
    foreground_fraction: float = 2 / 3
    augment: augment.AugmentParams = augment.AugmentParams()
    teeth_channel: bool = False  # stage 2 "image+teeth": a second input channel from the teeth mask
    # Background patches from the teeth box grown by this many voxels (stage 2 sees only that box at
    # inference); None: from anywhere in the volume (stage 1 must learn the whole head).
    background_margin: int | None = None
    classes: int = NUM_CLASSES  # of the types network: 9, or 14 with the primary types
    # Share of the tooth-centred patches of a case with primary incisors that are drawn on them.
    primary_incisor_share: float = 0.0
    spacing_mm: float = 0.5  # the stage's grid: movement, blooming and halo are drawn in millimetres


def choose_center(case: PreparedCase, rng: np.random.Generator, params: SamplingParams) -> np.ndarray:
    """A tooth voxel of a type drawn uniformly among those present (with jitter), or any voxel of the
    volume (or of the teeth box grown by ``background_margin``). A case with primary incisors has
    ``primary_incisor_share`` of its tooth-centred patches drawn on them."""
    if case.groups and rng.random() < params.foreground_fraction:
        types = sorted(case.groups)
        incisors = [t for t in PRIMARY_INCISOR_CLASSES if t in case.groups]
        # No draw at a share of 0: the patches of every earlier recipe stay the same.
        if incisors and params.primary_incisor_share > 0 and rng.random() < params.primary_incisor_share:
            types = incisors
        voxels = case.groups[types[rng.integers(len(types))]]
        center = np.array(np.unravel_index(int(voxels[rng.integers(len(voxels))]), case.image.shape))
        return center + rng.integers(-(params.patch // 4), params.patch // 4 + 1, 3)
    lo, hi = case.region(params.background_margin)
    return np.array([rng.integers(a, b) for a, b in zip(lo, hi, strict=True)])


def make_patch(
    case: PreparedCase, rng: np.random.Generator, params: SamplingParams, stage: str
) -> tuple[np.ndarray, np.ndarray]:
    """(image [C, P, P, P] float32, target [P, P, P] uint8) for one training step."""
    center = choose_center(case, rng, params)
    size = (params.patch,) * 3
    image, labels = augment.sample_patch(
        case.image, case.labels, center, size, augment.random_matrix(rng, params.augment), case.cval
    )
    if rng.random() < params.augment.p_flip:
        image, labels = augment.flip_left_right(image, labels, fdi_labels=case.kind == "fdi")
    # Solid crowns fill one tooth's shell by its label: only FDI labels tell the teeth apart (classes join 11 and 21).
    teeth = labels if case.kind == "fdi" else None
    image = augment.augment_intensity(image, rng, params.augment, params.spacing_mm, teeth)
    target = stage_target(labels, case.kind, stage, params.classes)
    channels = [image]
    if params.teeth_channel:
        channels.append(augment.teeth_channel(labels > 0, rng))
    return np.stack(channels), target


def item_rng(seed: int, epoch: int, rank: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch), int(rank), int(index)])


class PatchDataset(torch.utils.data.Dataset):
    """``length`` random patches per epoch; item i depends only on (seed, epoch, rank, i)."""

    def __init__(
        self, cases: list[PreparedCase], params: SamplingParams, stage: str, length: int, seed: int = 0, rank: int = 0
    ) -> None:
        if not cases:
            raise InputError("No training cases left after holding out the validation cases.")
        self.cases, self.params, self.stage = cases, params, stage
        self.length, self.seed, self.rank, self.epoch = length, seed, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = item_rng(self.seed, self.epoch, self.rank, index)
        case = self.cases[int(rng.integers(len(self.cases)))]
        image, target = make_patch(case, rng, self.params, self.stage)
        return torch.from_numpy(image), torch.from_numpy(target)
