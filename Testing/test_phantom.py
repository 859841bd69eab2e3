"""The synthetic CBCT phantom: deterministic, anatomically sane, exact labels in every file convention."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from scipy import ndimage

from TeethSegmentationLib import fdi
from TeethSegmentationLib.cli import main
from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.io.read_write import read_volume
from TeethSegmentationLib.phantom import make_phantom, write_phantoms


@pytest.fixture(scope="module")
def identity_cases():
    """Axis-aligned RAS cases in HU without cropping surprises: the anatomy checks read these."""
    return [make_phantom(seed, size="small", grey="hu", convention="ras_identity") for seed in range(3)]


def _ras_centroid(case, mask: np.ndarray) -> np.ndarray:
    return case.labels.ijk_to_ras_points(np.argwhere(mask).mean(axis=0))[0]


@pytest.mark.parametrize("last_bits", [-1, 0, 1])
def test_grid_size_does_not_hang_on_the_last_bits(last_bits):
    # A tiny phantom's spacing is its extent / n: the side is n steps give or take a rounding error of the CPU.
    from TeethSegmentationLib.phantom.grid import Grid

    extent = 123.456
    spacing = extent / 60
    hi = np.array([extent, 10.0, 10.0])
    hi[0] = np.nextafter(hi[0], hi[0] + last_bits) if last_bits else hi[0]
    assert Grid.around(np.zeros(3), hi, np.full(3, spacing)).shape[0] == 61


def test_deterministic_per_seed():
    a, b = make_phantom(7, size="tiny"), make_phantom(7, size="tiny")
    np.testing.assert_array_equal(a.image.array, b.image.array)
    np.testing.assert_array_equal(a.labels.array, b.labels.array)
    np.testing.assert_array_equal(a.image.ijk_to_ras, b.image.ijk_to_ras)
    assert a.info == b.info
    c = make_phantom(8, size="tiny")
    assert c.image.shape != a.image.shape or not np.array_equal(c.image.array, a.image.array)


def test_tiny_is_fast_and_small():
    make_phantom(0, size="tiny")  # warm up imports
    for seed in range(3):
        start = time.perf_counter()
        case = make_phantom(seed, size="tiny")
        assert time.perf_counter() - start < 1.0
        assert max(case.image.shape) <= 64 and min(case.image.shape) >= 24
        assert 0.9 <= case.image.spacing.min() and case.image.spacing.max() <= 1.6


def test_labels_valid_and_same_grid():
    for seed in range(4):
        case = make_phantom(seed, size="tiny")
        assert case.labels.array.dtype == np.uint8
        values = set(np.unique(case.labels.array).tolist()) - {0}
        assert values and values <= set(fdi.FDI_NUMBERS)
        assert case.labels.shape == case.image.shape
        np.testing.assert_array_equal(case.labels.ijk_to_ras, case.image.ijk_to_ras)
        assert case.labels.space == case.image.space
        assert sorted(values) == case.info["present"]
        assert not values & set(case.info["missing"])
        json.dumps(case.info)  # JSON-able


def test_teeth_brighter_than_bone_and_enamel_brightest(identity_cases):
    for case in identity_cases:
        img, lab = case.image.array.astype(np.float32), case.labels.array
        teeth = lab > 0
        near = ndimage.binary_dilation(teeth, iterations=3) & ~ndimage.binary_dilation(teeth, iterations=1)
        bone = near & (img > 200) & (img < 1400)  # the bone around the roots
        assert img[teeth].mean() > img[bone].mean() + 300
        # Enamel: the brightest tooth voxels sit in the crowns, at the occlusal ends.
        for n in case.info["present"]:
            if str(n) in case.info["restorations"] or n in case.info["impacted"]:
                continue
            z = np.argwhere(lab == n)[:, 2]
            crown_end = z.min() if fdi.is_upper(n) else z.max()
            values = img[lab == n]
            bright = np.argwhere((lab == n) & (img >= np.percentile(values, 95)))[:, 2]
            assert abs(np.median(bright) - crown_end) < abs(np.median(bright) - (z.max() + z.min() - crown_end))


def test_missing_teeth_absent_and_metal_teeth_labelled():
    seen_missing = seen_metal = False
    for seed in range(8):
        case = make_phantom(seed, size="tiny", convention="ras_identity", grey="hu")
        present = set(np.unique(case.labels.array).tolist())
        assert not present & set(case.info["missing"])
        assert not present & set(case.info["implants"])  # implants are metal without a tooth label
        seen_missing |= bool(case.info["missing"])
        for n in case.info["restorations"]:
            if int(n) in case.info["present"]:
                seen_metal = True
    assert seen_missing and seen_metal
    full = make_phantom(3, size="tiny", missing=False, convention="ras_identity")
    assert len(full.info["present"]) == 32 - len(full.info["cut_teeth"]) or len(full.info["present"]) >= 28


def test_each_tooth_one_component_with_plausible_volume(identity_cases):
    volumes: dict[int, list[float]] = {}
    for case in identity_cases:
        lab = case.labels.array
        voxel = float(np.prod(case.labels.spacing))
        for n in case.info["present"]:
            mask = lab == n
            pieces, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
            # A root tip thinner than a voxel may leave one voxel of its own: where depends on the CPU's last bits
            # (tooth 17 of seed 0 on an AVX2-only machine, not on an AVX-512 one). Pieces of 1-2 voxels are that.
            sizes = np.bincount(pieces.ravel())[1:]
            assert (sizes > 2).sum() == 1, f"tooth {n} of seed {case.info['seed']} is in pieces of {sorted(sizes)}"
            if n in case.info["cut_teeth"] or n in case.info["impacted"]:
                continue
            volume = mask.sum() * voxel
            assert 100 < volume < 2500, (n, volume)
            volumes.setdefault(n % 10, []).append(volume)
    assert np.mean(volumes[6]) > 1.4 * np.mean(volumes[1])
    assert np.mean(volumes[7]) > np.mean(volumes[2])


def test_quadrants_on_the_right_sides(identity_cases):
    for case in identity_cases:
        lab = case.labels.array
        centre = {n: _ras_centroid(case, lab == n) for n in case.info["present"]}
        midline = np.mean([c[0] for c in centre.values()])
        for n, c in centre.items():
            if fdi.quadrant(n) in (1, 4):
                assert c[0] > midline, n
            else:
                assert c[0] < midline, n
        upper = np.mean([c[2] for n, c in centre.items() if fdi.is_upper(n)])
        lower = np.mean([c[2] for n, c in centre.items() if not fdi.is_upper(n)])
        assert upper > lower + 8
        incisors = [c[1] for n, c in centre.items() if n % 10 == 1]
        molars = [c[1] for n, c in centre.items() if n % 10 == 6]
        assert min(incisors) > max(molars) + 15  # incisors at the front (+y)


@pytest.mark.parametrize(
    "grey,dtype,low,high",
    [
        ("hu", np.int16, -1024, 8191),
        ("uncalibrated", None, -2048, 16383),
        ("uint16", np.uint16, 0, 65535),
        ("uint8", np.uint8, 0, 255),
    ],
)
def test_grey_kinds(grey, dtype, low, high):
    for seed in range(3):
        case = make_phantom(seed, size="tiny", grey=grey)
        arr = case.image.array
        assert case.info["grey"] == grey
        if dtype is not None:
            assert arr.dtype == dtype
        else:
            assert arr.dtype in (np.int16, np.float32)
        assert arr.min() >= low and arr.max() <= high
        assert arr.max() > arr.min()
    uint8 = make_phantom(0, size="tiny", grey="uint8", convention="ras_identity")
    assert (uint8.image.array[uint8.labels.array > 0] == 255).any()  # enamel clipped by the window


def test_random_grey_and_bad_options():
    kinds = {make_phantom(seed, size="tiny").info["grey"] for seed in range(12)}
    assert len(kinds) >= 3
    with pytest.raises(InputError):
        make_phantom(0, size="huge")
    with pytest.raises(InputError):
        make_phantom(0, grey="hdr")
    with pytest.raises(InputError):
        make_phantom(0, spacing=-1)


def test_conventions_write_and_read_back_on_the_same_ras_points(tmp_path):
    reference = make_phantom(11, size="tiny", convention="ras_identity")
    ref = {n: _ras_centroid(reference, reference.labels.array == n) for n in reference.info["present"]}
    written = write_phantoms(tmp_path, 1, 11, size="tiny", convention="random")[0]
    image, labels = read_volume(written["files"]["image"]), read_volume(written["files"]["labels"])
    np.testing.assert_allclose(image.ijk_to_ras, labels.ijk_to_ras, atol=1e-5)
    assert labels.array.dtype == np.uint8 and image.shape == labels.shape
    tilt = written["convention"]["tilt_degrees"]
    for n, point in ref.items():
        got = labels.ijk_to_ras_points(np.argwhere(labels.array == n).mean(axis=0))[0]
        np.testing.assert_allclose(got, point, atol=1e-3 + 2.0 * tilt)
    # Several axis orders and both spaces show up across seeds.
    seen = {make_phantom(seed, size="tiny").info["convention"]["axes"] for seed in range(20, 30)}
    spaces = {make_phantom(seed, size="tiny").info["convention"]["space"] for seed in range(20, 30)}
    assert len(seen) >= 4 and spaces == {"LPS", "RAS"}


def test_convention_keeps_anatomy_exact(tmp_path):
    a = make_phantom(4, size="tiny", convention="ras_identity")
    for conv in ("lps_standard", "random"):
        b = make_phantom(4, size="tiny", convention=conv)
        for n in a.info["present"]:
            pa = _ras_centroid(a, a.labels.array == n)
            pb = _ras_centroid(b, b.labels.array == n)
            tilt = b.info["convention"]["tilt_degrees"]
            np.testing.assert_allclose(pb, pa, atol=1e-3 + 2.0 * tilt)
        if b.info["convention"]["tilt_degrees"] == 0:
            assert sorted(np.unique(b.labels.array)) == sorted(np.unique(a.labels.array))
    written = write_phantoms(tmp_path, 1, 4, size="tiny", convention="lps_standard")[0]
    back = read_volume(written["files"]["labels"])
    assert back.space == "LPS"
    for n in a.info["present"]:
        point = back.ijk_to_ras_points(np.argwhere(back.array == n).mean(axis=0))[0]
        np.testing.assert_allclose(point, _ras_centroid(a, a.labels.array == n), atol=1e-3)


def test_spacing_override_and_fovs():
    case = make_phantom(2, size="small", spacing=0.9, convention="ras_identity")
    np.testing.assert_allclose(case.image.spacing, 0.9)
    case = make_phantom(2, size="tiny", spacing=(1.0, 1.2, 1.5), convention="random")
    np.testing.assert_allclose(case.image.spacing, (1.0, 1.2, 1.5), atol=1e-9)
    jaws = make_phantom(2, size="tiny", fov="jaws")
    head = make_phantom(2, size="tiny", fov="head")
    crop = make_phantom(2, size="tiny", fov="crop")
    extent = {
        k: float(np.max((np.array(c.image.shape) - 1) * c.image.spacing))
        for k, c in (("crop", crop), ("jaws", jaws), ("head", head))
    }
    assert extent["crop"] < extent["jaws"] < extent["head"]
    assert len(head.info["present"]) > 20


def test_cli_writes_cases(tmp_path, capsys):
    code = main(["phantom", str(tmp_path / "out"), "--cases", "2", "--seed", "5", "--size", "tiny", "--events"])
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    result = events[-1]
    assert result["event"] == "result" and result["status"] == "ok"
    assert [e for e in events if e["event"] == "progress"]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["case00.labels.nrrd", "case00.nrrd", "case01.labels.nrrd", "case01.nrrd"]
    assert len(result["files"]) == 4
    labels = read_volume(tmp_path / "out" / "case01.labels.nrrd")
    assert sorted(int(v) for v in np.unique(labels.array) if v) == result["cases"][1]["present"]


def test_cli_bad_input(tmp_path):
    assert main(["phantom", str(tmp_path), "--cases", "0", "--size", "tiny"]) == 2
    assert main(["phantom", str(tmp_path), "--size", "giant"]) == 2


@pytest.mark.slow
def test_realistic_crop_is_a_few_seconds():
    start = time.perf_counter()
    case = make_phantom(0, size="realistic", fov="crop")
    assert time.perf_counter() - start < 10
    assert 100 <= min(case.image.shape) and max(case.image.shape) <= 260


@pytest.mark.slow
def test_head_is_cheap():
    start = time.perf_counter()
    case = make_phantom(1, size="realistic", fov="head", spacing=0.3)
    assert time.perf_counter() - start < 90
    assert len(case.info["present"]) > 20


# --- Anatomy (issue 12): textbook roots, single-arch scans, dental work, family B -----------------------

TEXTBOOK_ROOTS = {(True, 4): 2, (True, 6): 3, (True, 7): 3, (False, 6): 2, (False, 7): 2}  # every other tooth: 1


def _root_sections(case, depth_fraction: float = 0.3, min_area_mm2: float = 1.0) -> dict[int, int]:
    """Pieces of each tooth's label on a plane across its axis, 30 % of the way from the furcation to the
    apex (slivers under ``min_area_mm2`` ignored): one per root."""
    lab, origin, spacing = case.labels.array, case.labels.origin, case.labels.spacing
    step = 0.15
    grid = np.arange(-8, 8 + 1e-6, step)
    out = {}
    for key, geo in case.info["teeth"].items():
        cej, axis, distal = (np.array(geo[k]) for k in ("cej", "axis", "distal"))
        depth = geo["trunk_mm"] + depth_fraction * (geo["root_mm"] - geo["trunk_mm"])
        points = cej - axis * depth + grid[:, None, None] * distal + grid[None, :, None] * np.cross(axis, distal)
        ijk = ((points - origin) / spacing).reshape(-1, 3).T
        plane = ndimage.map_coordinates((lab == int(key)).astype(np.uint8), ijk, order=0).reshape(len(grid), -1)
        pieces, count = ndimage.label(plane)
        areas = ndimage.sum(plane, pieces, range(1, count + 1)) * step**2
        out[int(key)] = int((np.asarray(areas) >= min_area_mm2).sum())
    return out


@pytest.fixture(scope="module")
def fine_cases():
    """One 0.5 mm case per family, every tooth present, no metal: fine enough to count roots."""
    kw = dict(size="small", spacing=0.5, grey="hu", convention="ras_identity", missing=False, metal=False)
    return {fam: make_phantom(0, family=fam, **kw) for fam in ("A", "B")}


def test_textbook_root_counts_in_the_label_map(fine_cases):
    case = fine_cases["A"]
    sections = _root_sections(case)
    expected = {n: TEXTBOOK_ROOTS.get((fdi.is_upper(n), n % 10), 1) for n in case.info["present"]}
    assert {int(n): c for n, c in case.info["root_counts"].items()} == expected
    assert sections == expected
    assert {n for n, c in expected.items() if c == 3} >= {16, 17, 26, 27}  # upper molars: three roots
    assert {n for n, c in expected.items() if c == 2} >= {14, 24, 36, 37, 46, 47}
    # Family B has anatomical variants (one-rooted upper 4, two-rooted lower 3...), drawn as recorded.
    assert _root_sections(fine_cases["B"]) == {int(n): c for n, c in fine_cases["B"].info["root_counts"].items()}


def test_lower_molar_furcation_3_to_4_mm_below_the_cej(fine_cases):
    case = fine_cases["A"]
    for n in (36, 46):
        assert 3.0 <= case.info["teeth"][str(n)]["trunk_mm"] <= 4.0
    above = _root_sections(case, depth_fraction=-0.3 / case.info["teeth"]["46"]["root_mm"])
    assert above[46] == above[36] == 1  # the root trunk: one piece just above the furcation


def test_every_root_is_labelled_to_its_apex(fine_cases):
    case = fine_cases["A"]
    for key, geo in case.info["teeth"].items():
        if int(key) in case.info["impacted"] or int(key) in case.info["cut_teeth"]:
            continue
        voxels = case.labels.ijk_to_ras_points(np.argwhere(case.labels.array == int(key)))
        along = (voxels - np.array(geo["cej"])) @ np.array(geo["axis"])
        assert along.min() < -0.85 * geo["root_mm"], key  # the apex end is labelled
        assert along.max() > 0.8 * geo["crown_mm"], key  # and so is the crown


@pytest.mark.parametrize("family", ["A", "B"])
@pytest.mark.parametrize("fov", ["lower", "upper"])
def test_single_arch_fields_of_view_hold_only_that_jaw(fov, family):
    for seed in range(4):
        case = make_phantom(seed, size="tiny", fov=fov, family=family, convention="ras_identity", grey="hu")
        present = case.info["present"]
        assert present and all(fdi.is_upper(n) == (fov == "upper") for n in present), present
        assert len(present) >= 10
        z = case.labels.ijk_to_ras_points(np.argwhere(case.labels.array > 0))[:, 2]
        top = case.labels.origin[2] + (case.labels.shape[2] - 1) * case.labels.spacing[2]
        # The scan reaches past the roots into the jaw's bone, away from the occlusal plane.
        if fov == "lower":
            assert z.min() - case.labels.origin[2] > 5
        else:
            assert top - z.max() > 5


def test_quadrants_mirrored_in_every_family_and_field_of_view():
    for family in ("A", "B"):
        for fov in ("crop", "lower", "upper"):
            case = make_phantom(5, size="tiny", fov=fov, family=family, convention="ras_identity")
            for n in case.info["present"]:
                x = _ras_centroid(case, case.labels.array == n)[0]
                assert (x > 0) == (fdi.quadrant(n) in (1, 4)), (family, fov, n, x)  # +x = patient's right


def _dental_work_cases(kind: str, wanted: int = 2) -> list:
    found = []
    for seed in range(200):
        case = make_phantom(seed, size="tiny", grey="hu", convention="ras_identity", noise=False, artifacts=False)
        if any(w["kind"] == kind for w in case.info["dental_work"].values()):
            found.append(case)
            if len(found) == wanted:
                break
    assert found, f"no {kind} in 200 seeds"
    return found


@pytest.mark.parametrize("kind", ["pontic", "implant"])
def test_pontics_and_implants_are_drawn_but_not_labelled(kind):
    for case in _dental_work_cases(kind):
        for key, work in case.info["dental_work"].items():
            if work["kind"] != kind:
                continue
            assert int(key) not in case.info["present"]
            below = 0.5 * work["crown_mm"] if kind == "pontic" else -4.0  # the pontic's crown, the implant's screw
            centre = np.array(work["cej"]) + np.array(work["axis"]) * below
            voxels = case.image.ijk_to_ras_points(np.argwhere(np.ones(case.image.shape, dtype=bool)))
            near = (np.linalg.norm(voxels - centre, axis=1) < 2.0).reshape(case.image.shape)
            assert near.sum() >= 4
            assert np.median(case.image.array[near]) > 2500, (kind, key)  # ceramic, metal or titanium is there
            assert (case.labels.array[near] == 0).all(), (kind, key)  # ... and unlabelled
        abutments = [int(k) - 1 for k, w in case.info["dental_work"].items() if w["kind"] == "pontic"]
        for n in abutments:  # a bridge's abutments are natural teeth under metal crowns: labelled
            assert n in case.info["present"] and case.info["restorations"][str(n)] == "crown"


def test_family_b_differs_from_family_a():
    for seed in range(3):
        kw = dict(size="tiny", grey="hu", convention="ras_identity", noise=False, artifacts=False)
        a, b = make_phantom(seed, family="A", **kw), make_phantom(seed, family="B", **kw)
        assert (a.info["family"], b.info["family"]) == ("A", "B")
        assert (a.info["arch_form"], b.info["arch_form"]) == ("power", "catenary")
        assert a.info["missing"] == b.info["missing"]  # paired: the same teeth, drawn differently
        assert a.image.shape != b.image.shape or not np.array_equal(a.labels.array, b.labels.array)
        dentin_a = np.median(a.image.array[a.labels.array > 0])
        dentin_b = np.median(b.image.array[b.labels.array > 0])
        assert dentin_b < dentin_a - 150  # another grey-value profile (dentin 1550 HU, not 1900)
    a, b = make_phantom(0, size="tiny", family="A"), make_phantom(0, size="tiny", family="B")
    assert "aliasing_hu" in b.info and "aliasing_hu" not in a.info  # another scanner
    variants = [make_phantom(s, size="tiny", family="B").info["root_counts"] for s in range(3)]
    assert any(counts.get(k) != v for counts in variants for k, v in (("14", 2), ("24", 2), ("33", 1), ("43", 1)))


def test_cli_family_and_single_arch(tmp_path, capsys):
    out = tmp_path / "b"
    code = main(["phantom", str(out), "--size", "tiny", "--family", "B", "--fov", "lower", "--events"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["cases"][0]["family"] == "B"
    labels = read_volume(out / "case00.labels.nrrd")
    assert all(30 < v < 50 for v in np.unique(labels.array) if v)
    assert main(["phantom", str(tmp_path / "c"), "--size", "tiny", "--family", "C"]) == 2
