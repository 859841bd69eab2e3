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
            _, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
            assert count == 1, f"tooth {n} of seed {case.info['seed']} is in {count} pieces"
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
