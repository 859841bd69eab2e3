"""make_phantom: plan the anatomy, pick the grid, draw, simulate the scanner, store like a real file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from TeethSegmentationLib import fdi
from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.events import NullReporter, Reporter
from TeethSegmentationLib.io.volume import Volume
from TeethSegmentationLib.phantom import scanner
from TeethSegmentationLib.phantom import tissue as T
from TeethSegmentationLib.phantom.choices import CONVENTIONS, DENTITIONS, FOVS, GREYS, SIZES
from TeethSegmentationLib.phantom.dentition import Dentition, plan_dentition
from TeethSegmentationLib.phantom.family import Family
from TeethSegmentationLib.phantom.family import family as family_of
from TeethSegmentationLib.phantom.field_of_view import field_of_view, pick_grid
from TeethSegmentationLib.phantom.grid import Convention, Grid, apply_convention, pick_convention, slices
from TeethSegmentationLib.phantom.head import HeadPlan, paint_head, plan_head
from TeethSegmentationLib.phantom.mouth import paint_brackets, paint_tooth
from TeethSegmentationLib.phantom.tooth import local_box


@dataclass
class PhantomCase:
    image: Volume  # grey values (int16, uint16, uint8 or float32 depending on the grey kind)
    labels: Volume  # uint8 FDI label map on the same grid
    info: dict  # JSON-able description: seed, sizes, present/missing teeth, metal, grey mapping...

    def write(self, image: str | Path, labels: str | Path) -> tuple[Path, Path]:
        """Both files as NRRD (each write atomic), the labels last: a case whose labels file exists is whole,
        which is how the scripts' and the replay cache tell a finished case from one cut off."""
        from TeethSegmentationLib.io.read_write import write_volume

        return write_volume(self.image, image), write_volume(self.labels, labels)


def _check(size: str, fov: str, grey: str, convention: str) -> None:
    for name, value, allowed in (
        ("size", size, SIZES),
        ("fov", fov, FOVS),
        ("grey", grey, GREYS),
        ("convention", convention, CONVENTIONS),
    ):
        if value not in allowed:
            raise InputError(f"Unknown phantom {name} {value!r}: use one of {', '.join(allowed)}.")


def _spacing(spacing, conv: Convention) -> np.ndarray | None:
    """User spacing (file axis order) -> spacing along the generation axes x, y, z."""
    if spacing is None:
        return None
    values = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,)).copy()
    if not np.all((values > 0.05) & (values < 10)):
        raise InputError(f"Phantom spacing {spacing!r} must be between 0.05 and 10 mm.")
    out = np.empty(3)
    out[list(conv.perm)] = values
    return out


def make_phantom(
    seed: int,
    size: str = "realistic",
    fov: str = "crop",
    grey: str = "random",
    spacing: float | tuple | None = None,
    convention: str = "random",
    family: str = "A",
    dentition: str = "permanent",
    age: float | None = None,
    **options,
) -> PhantomCase:
    """A synthetic dental CBCT with its exact FDI label map, deterministic for a seed.

    ``family``: "A" (the training family) or "B" (never trained on: other shapes, arches, grey values,
    texture, noise and artefacts). ``fov`` "lower" / "upper": one arch, the other outside the scan.
    ``dentition`` "mixed": a child of ``age`` years (default: drawn from 6-14) with primary teeth, erupted
    permanent ones and permanent teeth forming in their crypts; "permanent" (the default) is unchanged.
    Options: ``missing`` (False: all 32 teeth), ``metal`` (False: no restorations, implants, brackets),
    ``artifacts`` (False: no streaks, rings, cupping, drift), ``noise`` (False), ``bite_gap`` (mm).
    """
    _check(size, fov, grey, convention)
    if dentition not in DENTITIONS:
        raise InputError(f"Unknown phantom dentition {dentition!r}: use one of {', '.join(DENTITIONS)}.")
    if dentition == "mixed":
        from TeethSegmentationLib.phantom.children import check_age

        drawn = np.random.default_rng([seed, 3]).uniform(6.0, 14.0)
        options = {**options, "dentition": "mixed", "age": check_age(drawn if age is None else age)}
    fam = family_of(family)
    rng = np.random.default_rng(seed)
    conv = pick_convention(np.random.default_rng([seed, 1]), convention)  # own stream: same anatomy in any convention
    extra = np.random.default_rng([seed, 2])  # own stream: the anatomy added to family A's first draws
    if fov in ("lower", "upper") and "bite_gap" not in options:
        options = {**options, "bite_gap": float(extra.uniform(6, 10))}  # open on a bite block
    dent = plan_dentition(rng, fov, options, fam, extra)
    head = plan_head(rng, dent, fov)
    lo, hi, cut = field_of_view(rng, dent, fov)
    grid = pick_grid(rng, lo, hi, size, fov, _spacing(spacing, conv))
    brackets = options.get("metal", True) and rng.random() < (0.15 if fov == "crop" else 0.25)
    hu, label_map, objects = _draw(rng, grid, dent, head, fov, brackets, fam, extra)
    effects = _scanner(rng, hu, grid, objects, fov, options, fam, extra)
    kind = str(rng.choice(GREYS[:4], p=[0.25, 0.35, 0.25, 0.15])) if grey == "random" else grey
    values, mapping = scanner.to_grey(hu, kind, rng, gamma=float(extra.uniform(*fam.gamma)))
    del hu
    image_array, matrix = apply_convention(values, grid.ijk_to_ras, conv)
    label_array, _ = apply_convention(label_map, grid.ijk_to_ras, conv)
    counts = np.bincount(label_array.ravel(), minlength=256)
    present = [n for n in fdi.ALL_FDI_NUMBERS if counts[n] > 0]
    info = {
        "seed": int(seed),
        "family": fam.name,
        "size": size,
        "fov": fov,
        "grey": kind,
        "dtype": str(image_array.dtype),
        "shape": list(image_array.shape),
        "spacing": [round(float(s), 4) for s in np.linalg.norm(matrix[:3, :3], axis=0)],
        "convention": conv.describe(),
        "present": present,
        "voxels": {str(n): int(counts[n]) for n in present},
        "cut_teeth": sorted(p.fdi for p in dent.teeth if p.natural and _cut(grid, p)),
        "cropped_side": cut,
        "brackets": bool(brackets),
        "grey_mapping": _rounded(mapping),
        **dent.info,
        **effects,
        "teeth": {str(p.fdi): _geometry(p) for p in dent.teeth if p.natural and p.fdi in present},
        "dental_work": {
            str(p.fdi): {"kind": "implant" if p.implant else "pontic", **_geometry(p)}
            for p in dent.teeth
            if not p.natural
        },
    }
    image = Volume(image_array, matrix, conv.space, {"phantom": True})
    return PhantomCase(image, Volume(label_array, matrix.copy(), conv.space, {"phantom": True}), info)


def _rounded(mapping: dict) -> dict:
    return {
        k: (np.round(v, 3).tolist() if isinstance(v, (list, np.ndarray)) else round(float(v), 3))
        for k, v in mapping.items()
    }


def _geometry(plan) -> dict:
    """Where a tooth is: cervical centre and long axis (RAS, towards the crown), root count, trunk and length."""
    return {
        "cej": np.round(plan.centre, 3).tolist(),
        "axis": np.round(plan.frame[:, 2], 4).tolist(),
        "distal": np.round(plan.frame[:, 0], 4).tolist(),
        "buccal": np.round(plan.frame[:, 1], 4).tolist(),
        "roots": plan.shape.root_count,
        "trunk_mm": round(plan.shape.trunk, 2),
        "root_mm": round(plan.shape.root, 2),
        "crown_mm": round(plan.shape.crown, 2),
    }


def _cut(grid: Grid, plan) -> bool:
    lo, hi = local_box(plan, margin=-1.0)
    top = grid.origin + (np.array(grid.shape) - 1) * grid.spacing
    return bool(np.any(lo < grid.origin) or np.any(hi > top))


def _paint_region(grid: Grid, dent: Dentition, head: HeadPlan, fov: str, brackets: bool, teeth: bool):
    """Tissue classes (and labels) of one grid; teeth only when asked (not on a coarse grid)."""
    tissue = np.full(grid.shape, T.AIR, dtype=np.uint8)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    paint_head(tissue, grid, dent, head, fov)
    objects: list[dict] = []
    if teeth:
        fine = float(grid.spacing.max()) <= 0.6
        # Natural teeth first, so that implants and brackets never take a labelled voxel.
        for plan in sorted(dent.teeth, key=lambda p: not p.natural):
            obj = paint_tooth(tissue, labels, grid, plan, fine)
            if obj:
                objects.append(obj)
        if brackets:
            chosen = [p for p in dent.teeth if p.type <= 5 and p.natural and not p.impacted]
            objects += paint_brackets(tissue, labels, grid, chosen)
    return tissue, labels, objects


def _draw(rng, grid: Grid, dent: Dentition, head: HeadPlan, fov: str, brackets: bool, fam: Family, extra):
    factor = int(np.floor(1.0 / float(grid.spacing.max()))) if fov == "head" else 1
    table = T.lookup(rng, fam.hu)  # one set of grey values per case, shared by the coarse and the fine drawing
    if factor < 2:
        tissue, labels, objects = _paint_region(grid, dent, head, fov, brackets, True)
        return scanner.density(tissue, grid.spacing, table, rng, fam.texture), labels, objects
    # A whole head: the large anatomy on a ~1 mm grid, upsampled; the jaws redrawn at full resolution.
    coarse = grid.coarse(factor)
    tissue, _, _ = _paint_region(coarse, dent, head, fov, False, False)
    hu = _upsample(scanner.density(tissue, coarse.spacing, table, rng, fam.texture), factor, grid.shape)
    boxes = np.array([local_box(p) for p in dent.teeth])
    box = grid.index_box(boxes[:, 0].min(axis=0) - 10, boxes[:, 1].max(axis=0) + 10)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    objects: list[dict] = []
    if box is not None:
        sub = Grid(
            grid.origin + np.array(box[0]) * grid.spacing,
            grid.spacing,
            tuple(int(b - a) for a, b in zip(*box, strict=False)),
        )
        tissue, sub_labels, objects = _paint_region(sub, dent, head, fov, brackets, True)
        sl = slices(*box)
        hu[sl] = scanner.density(tissue, sub.spacing, table, rng, fam.texture)
        labels[sl] = sub_labels
    return hu, labels, objects


def _upsample(coarse: np.ndarray, factor: int, shape: tuple[int, int, int]) -> np.ndarray:
    import torch  # trilinear upsampling of a whole head: torch is several times faster than scipy here

    tensor = torch.from_numpy(coarse)[None, None]
    up = torch.nn.functional.interpolate(tensor, scale_factor=factor, mode="trilinear", align_corners=False)
    return np.ascontiguousarray(up[0, 0, : shape[0], : shape[1], : shape[2]].numpy())


def _scanner(rng, hu: np.ndarray, grid: Grid, objects: list[dict], fov: str, options: dict, fam: Family, extra) -> dict:
    effects: dict = {}
    blur_mm = rng.uniform(0.25, 0.5)
    scanner.blur(hu, grid.spacing, blur_mm)
    effects["blur_mm"] = round(float(blur_mm), 3)
    if options.get("artifacts", True):
        scanner.metal_streaks(hu, grid, objects, rng)
        effects.update(scanner.scanner_effects(hu, grid, rng, 1.5 if fov == "head" else 0.7))
        effects.update(scanner.family_artefacts(hu, grid, extra, fam.artefacts))
    low_dose = fov == "head" and rng.random() < 0.5
    sigma = rng.uniform(60, 140) if low_dose else rng.uniform(20, 70)
    if options.get("noise", True):
        scanner.add_noise(hu, rng, sigma, correlated=hu.size < 30_000_000, model=fam.noise)
    effects["noise_hu"] = round(float(sigma), 1)
    if fov == "head" or (fov in ("jaws", "lower", "upper") and rng.random() < 0.5):
        outside = float(rng.choice([-1000.0, -1024.0, -1500.0]))
        effects["fov_radius_mm"] = round(scanner.truncate_fov(hu, grid, rng, outside), 1)
    return effects


def write_phantoms(
    outdir,
    cases: int,
    seed: int,
    size: str = "realistic",
    fov: str = "crop",
    grey: str = "random",
    reporter: Reporter | None = None,
    picture: Callable[[Volume, Volume, Path, str], Path] | None = None,
    **kw,
) -> list[dict]:
    """Write OUTDIR/caseNN.nrrd and caseNN.labels.nrrd (case n has seed ``seed + n``); returns each case's info.

    ``picture(image, labels, path, title)``, when given, also draws OUTDIR/caseNN.png (the command passes
    the slice renderer: pictures sit in a layer above the phantoms).
    """
    if cases < 1:
        raise InputError(f"The number of phantom cases must be at least 1, not {cases}.")
    reporter = reporter or NullReporter()
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    width = max(2, len(str(cases - 1)))
    results = []
    for n in range(cases):
        case = make_phantom(seed + n, size=size, fov=fov, grey=grey, **kw)
        stem = f"case{n:0{width}d}"
        image, labels = case.write(out / f"{stem}.nrrd", out / f"{stem}.labels.nrrd")
        files = {"image": str(image), "labels": str(labels)}
        if picture is not None:
            title = f"{stem} (seed {seed + n}, {fov}, {case.info['grey']})"
            files["preview"] = str(picture(case.image, case.labels, out / f"{stem}.png", title))
        results.append({"case": stem, "files": files, **case.info})
        reporter.progress("phantom", (n + 1) / cases, f"{stem}: {len(case.info['present'])} teeth", case=stem)
    return results
