"""Volume I/O, reorientation and resampling: header conventions, Slicer agreement, exact round trips."""

from __future__ import annotations

import gzip
import itertools

import nrrd
import numpy as np
import pytest
from geometry_helpers import rotation

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.io import resample
from TeethSegmentationLib.io.orientation import reorient_like, reorient_to_ras, undo_reorientation
from TeethSegmentationLib.io.read_write import read_volume, write_volume
from TeethSegmentationLib.io.resample import (
    _outside,
    resample_to_reference,
    resample_to_spacing,
)
from TeethSegmentationLib.io.volume import Volume, bounding_box, crop, make_matrix, pad, paste

LPS_FLIP = np.diag([-1.0, -1.0, 1.0])
SHAPE = (24, 20, 16)


def _phantom(shape=SHAPE, dtype=np.int16) -> np.ndarray:
    """Asymmetric smooth content (a ramp plus a ball off-centre): any axis swap or flip shows."""
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    ball = ((i - 7) ** 2 + (j - 12) ** 2 + (k - 5) ** 2 < 16) * 50
    return (i + 3 * j + 7 * k + ball).astype(dtype)


# (header space, rows of space directions in that space, origin) -- every convention a user meets.
CASES = {
    "lps": ("left-posterior-superior", np.diag([0.5, 0.6, 0.7]), [10.0, -20.0, 30.0]),
    "ras": ("right-anterior-superior", np.diag([0.5, 0.6, 0.7]), [10.0, -20.0, 30.0]),
    "lps_short": ("LPS", np.diag([0.4, 0.4, 0.4]), [1.0, 2.0, 3.0]),
    "ras_short": ("RAS", np.diag([0.4, 0.4, 0.4]), [1.0, 2.0, 3.0]),
    "negative": ("left-posterior-superior", np.diag([-0.5, 0.6, -0.7]), [5.0, 6.0, -7.0]),
    "permuted": ("left-posterior-superior", np.array([[0, 0, 0.7], [0.5, 0, 0], [0, 0.6, 0]]), [3.0, -4.0, 5.0]),
    "left_handed": ("left-posterior-superior", np.array([[0, 0, 0.7], [-0.5, 0, 0], [0, 0.6, 0]]), [3.0, -4.0, 5.0]),
    "oblique": ("left-posterior-superior", (rotation(15, -25, 40) * [0.5, 0.6, 0.7]).T, [-12.5, 7.25, 40.0]),
    "oblique_ras": ("right-anterior-superior", (rotation(-30, 10, 70) * [0.3, 0.3, 0.8]).T, [1.5, 2.5, -3.5]),
}


def _expected_matrix(space: str, rows: np.ndarray, origin) -> np.ndarray:
    to_ras = LPS_FLIP if space.lower() in ("left-posterior-superior", "lps") else np.eye(3)
    return make_matrix(to_ras @ np.asarray(rows).T, [1, 1, 1], to_ras @ np.asarray(origin))


def _write_case(path, case: str, array=None, encoding="gzip", detached=False):
    space, rows, origin = CASES[case]
    array = _phantom() if array is None else array
    header = {"space": space, "space directions": rows, "space origin": origin, "encoding": encoding}
    header["kinds"] = ["domain"] * 3
    nrrd.write(str(path), array, header, detached_header=detached)
    return array, _expected_matrix(space, rows, origin)


def _assert_same_grid_as_slicer(ours: Volume, slicer_matrix: np.ndarray, slicer_array: np.ndarray) -> None:
    """Identical for right-handed grids; Slicer reverses k of a left-handed one (same voxels, other order)."""
    if np.linalg.det(ours.ijk_to_ras[:3, :3]) > 0:
        np.testing.assert_allclose(ours.ijk_to_ras, slicer_matrix, atol=1e-5)
        np.testing.assert_array_equal(ours.array, slicer_array)
        return
    flip_k = make_matrix(np.diag([1, 1, -1]), [1, 1, 1], [0, 0, ours.shape[2] - 1])
    np.testing.assert_allclose(ours.ijk_to_ras @ flip_k, slicer_matrix, atol=1e-5)
    np.testing.assert_array_equal(ours.array[:, :, ::-1], slicer_array)


def _slicer_load(slicer_scene, path, label=False):
    """Load with Slicer's own reader; returns (ijk->RAS 4x4, array in [i, j, k])."""
    import vtk

    node = slicer_scene.logics["volumes"].AddArchetypeVolume(str(path), "v", 1 if label else 0)
    assert node is not None, f"Slicer could not read {path}"
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    return ijk_to_ras, slicer_scene.slicer.util.arrayFromVolume(node).transpose(2, 1, 0)


# --------------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize("case", sorted(CASES))
def test_nrrd_conventions_read_as_ras(tmp_path, case):
    array, expected = _write_case(tmp_path / "v.nrrd", case)
    volume = read_volume(tmp_path / "v.nrrd")
    np.testing.assert_allclose(volume.ijk_to_ras, expected, atol=1e-12)
    np.testing.assert_array_equal(volume.array, array)
    assert volume.space == ("RAS" if CASES[case][0].lower().startswith("r") else "LPS")
    assert volume.meta["format"] == "nrrd" and volume.meta["source"].endswith("v.nrrd")


@pytest.mark.parametrize("case", ["lps", "ras", "permuted", "oblique", "oblique_ras", "negative", "left_handed"])
def test_reader_agrees_with_slicer(tmp_path, slicer_scene, case):
    path = tmp_path / f"{case}.nrrd"
    _write_case(path, case)
    _assert_same_grid_as_slicer(read_volume(path), *_slicer_load(slicer_scene, path))


def test_nrrd_without_space_is_lps_with_spacings_like_slicer(tmp_path, slicer_scene):
    path = tmp_path / "plain.nrrd"
    nrrd.write(str(path), _phantom(), {"spacings": [0.5, 0.7, 0.9]})
    ours = read_volume(path)
    np.testing.assert_allclose(ours.ijk_to_ras, np.diag([-0.5, -0.7, 0.9, 1.0]))
    np.testing.assert_allclose(_slicer_load(slicer_scene, path)[0], ours.ijk_to_ras, atol=1e-5)


@pytest.mark.parametrize("encoding,detached", [("raw", False), ("gzip", True), ("raw", True)])
def test_nrrd_encodings_and_detached_headers(tmp_path, encoding, detached):
    name = "v.nhdr" if detached else "v.nrrd"
    array, expected = _write_case(tmp_path / name, "oblique", encoding=encoding, detached=detached)
    volume = read_volume(tmp_path / name)
    np.testing.assert_allclose(volume.ijk_to_ras, expected, atol=1e-12)
    np.testing.assert_array_equal(volume.array, array)


@pytest.mark.parametrize(
    "dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "float32", "float64"]
)
def test_scalar_types_keep_their_dtype(tmp_path, dtype):
    array = (_phantom() % 100).astype(dtype)
    _write_case(tmp_path / "v.nrrd", "lps", array)
    volume = read_volume(tmp_path / "v.nrrd")
    assert volume.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(volume.array, array)


def test_big_endian_nrrd_comes_back_native(tmp_path):
    array = _phantom().astype(">i2")
    _write_case(tmp_path / "v.nrrd", "lps", array)
    volume = read_volume(tmp_path / "v.nrrd")
    assert volume.array.dtype.isnative
    np.testing.assert_array_equal(volume.array, array)


def test_singleton_component_axes_are_squeezed(tmp_path):
    array = _phantom()[None]
    header = {"space": "LPS", "kinds": ["vector", "domain", "domain", "domain"]}
    header["space directions"] = np.vstack([np.full(3, np.nan), np.diag([0.5, 0.5, 0.5])])
    nrrd.write(str(tmp_path / "v.nrrd"), array, header)
    assert read_volume(tmp_path / "v.nrrd").shape == SHAPE


def test_nifti_is_ras_and_remembers_format(tmp_path):
    nib = pytest.importorskip("nibabel")
    matrix = make_matrix(rotation(5, 10, -20), [0.3, 0.4, 0.5], [1, 2, 3])
    nib.save(nib.Nifti1Image(_phantom(), matrix), str(tmp_path / "v.nii.gz"))
    volume = read_volume(tmp_path / "v.nii.gz")
    np.testing.assert_allclose(volume.ijk_to_ras, matrix, atol=1e-5)
    np.testing.assert_array_equal(volume.array, _phantom())
    assert volume.space == "RAS" and volume.meta["format"] == "nifti"
    nib.save(nib.Nifti1Image(_phantom()[..., None], matrix), str(tmp_path / "t.nii"))
    assert read_volume(tmp_path / "t.nii").shape == SHAPE  # a trailing singleton 4th axis is squeezed


# --------------------------------------------------------------------------------------------- bad input


def _bad_files(tmp_path) -> dict:
    """name -> path of every kind of bad input a user can hand over."""
    nib = pytest.importorskip("nibabel")
    files = {"missing": tmp_path / "nothere.nrrd"}
    nrrd.write(str(tmp_path / "flat.nrrd"), np.zeros((8, 8), np.int16))
    nrrd.write(str(tmp_path / "time.nrrd"), np.zeros((4, 4, 4, 3), np.int16))
    rgb = {"kinds": ["RGB-color", "domain", "domain", "domain"]}
    nrrd.write(str(tmp_path / "rgb.nrrd"), np.zeros((3, 4, 4, 4), np.uint8), rgb)
    (tmp_path / "empty.nrrd").write_text("NRRD0004\ntype: short\ndimension: 3\nsizes: 4 0 4\nencoding: raw\n\n")
    (tmp_path / "corrupt.nrrd").write_bytes(b"this is not a NRRD header\n\x00\x01")
    nrrd.write(str(tmp_path / "short.nrrd"), np.zeros((8, 8, 8), np.int16), {"encoding": "gzip"})
    (tmp_path / "short.nrrd").write_bytes((tmp_path / "short.nrrd").read_bytes()[:-20])  # truncated data
    (tmp_path / "scan.mha").write_bytes(b"ObjectType = Image\n")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 5), np.float32), np.eye(4)), str(tmp_path / "fmri.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), str(tmp_path / "flat.nii"))
    (tmp_path / "broken.nii.gz").write_bytes(gzip.compress(b"not nifti at all"))
    names = ["flat.nrrd", "time.nrrd", "rgb.nrrd", "empty.nrrd", "corrupt.nrrd", "short.nrrd", "scan.mha"]
    names += ["fmri.nii.gz", "flat.nii", "broken.nii.gz"]
    return files | {name: tmp_path / name for name in names}


def test_bad_inputs_raise_one_sentence(tmp_path):
    expected_words = {
        "missing": "does not exist",
        "flat.nrrd": "2D",
        "time.nrrd": "4D",
        "rgb.nrrd": "colour",
        "empty.nrrd": "empty",
        "corrupt.nrrd": "could not be read",
        "short.nrrd": "could not be read",
        "scan.mha": "unsupported",
        "fmri.nii.gz": "4D",
        "flat.nii": "2D",
        "broken.nii.gz": "could not be read",
    }
    for name, path in _bad_files(tmp_path).items():
        with pytest.raises(InputError) as info:
            read_volume(path)
        message = str(info.value)
        assert expected_words[name] in message, (name, message)
        assert "\n" not in message and message.endswith("."), (name, message)


# --------------------------------------------------------------------------------------------- writing


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])
def test_write_read_round_trip(tmp_path, case, suffix):
    _write_case(tmp_path / "in.nrrd", case)
    original = read_volume(tmp_path / "in.nrrd")
    out = write_volume(original, tmp_path / f"out{suffix}")
    again = read_volume(out)
    np.testing.assert_allclose(again.ijk_to_ras, original.ijk_to_ras, atol=1e-12 if suffix == ".nrrd" else 1e-5)
    np.testing.assert_array_equal(again.array, original.array)
    assert again.array.dtype == original.array.dtype
    if suffix == ".nrrd":
        assert again.space == original.space
        long_name = {"LPS": "left-posterior-superior", "RAS": "right-anterior-superior"}[original.space]
        assert nrrd.read_header(str(out))["space"] == long_name


def test_write_uses_reference_convention_and_raw_encoding(tmp_path):
    image = Volume(_phantom(), make_matrix(np.eye(3), [0.5] * 3, [1, 2, 3]), space="RAS")
    labels = Volume((_phantom() % 7).astype(np.uint8), image.ijk_to_ras, space="LPS")
    out = write_volume(labels, tmp_path / "labels.nrrd", compress=False, reference=image)
    header = nrrd.read_header(str(out))
    assert header["space"] == "right-anterior-superior" and header["encoding"] == "raw"
    np.testing.assert_array_equal(read_volume(out).array, labels.array)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "int64", "bool"])
def test_label_maps_round_trip_exactly(tmp_path, suffix, dtype):
    labels = (_phantom() % 49).astype(dtype)
    volume = Volume(labels, make_matrix(rotation(0, 0, 90), [0.25] * 3, [0, 0, 0]))
    again = read_volume(write_volume(volume, tmp_path / f"labels{suffix}"))
    np.testing.assert_array_equal(again.array, labels)
    assert again.array.dtype.kind in "iu"


@pytest.mark.parametrize(
    "box", [None, (slice(3, 9), slice(2, 5), slice(0, 7)), (slice(0, 12), slice(8, 9), slice(7, 8))]
)
@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint32"])
def test_a_label_map_file_holds_its_voxels_in_nrrd_order_with_pynrrds_header(tmp_path, monkeypatch, box, dtype):
    """Label maps are written by io.nrrd_labels (zeros neither reordered nor deflated, runs of them as one
    repeated deflate segment): the file's data are exactly the voxels in Fortran order, one gzip member, and
    pynrrd reads the same header fields and voxels as from its own file."""
    import gzip

    import nrrd

    from TeethSegmentationLib.io import nrrd_labels
    from TeethSegmentationLib.io.nrrd_file import fortran_ordered, nrrd_header

    monkeypatch.setattr(nrrd_labels, "ZERO_SEGMENT", 64)  # tiny maps then hold many whole segments of zeros
    labels = np.zeros((12, 9, 8), dtype)
    if box is not None:
        shape = tuple(s.stop - s.start for s in box)
        labels[box] = (np.arange(np.prod(shape)).reshape(shape) % 7 - 3).astype(dtype)
    volume = Volume(labels, make_matrix(rotation(0, 0, 90), [0.25, 0.3, 0.5], [10.5, -3, 7]))
    ours = write_volume(volume, tmp_path / "ours.nrrd")
    nrrd.write(str(tmp_path / "pynrrd.nrrd"), labels, nrrd_header(volume, "LPS", True), index_order="F")
    data, header = nrrd.read(str(ours))
    _, expected = nrrd.read(str(tmp_path / "pynrrd.nrrd"))
    np.testing.assert_array_equal(data, labels)
    assert header.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(header[key], value)
    raw = ours.read_bytes()
    assert gzip.decompress(raw[raw.index(b"\n\n") + 2 :]) == labels.astype(labels.dtype.newbyteorder("<")).tobytes("F")
    np.testing.assert_array_equal(read_volume(ours).array, labels)
    raw_file = write_volume(volume, tmp_path / "raw.nrrd", compress=False)
    np.testing.assert_array_equal(read_volume(raw_file).array, labels)
    image = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    assert fortran_ordered(image) is image  # raw writes and images go through pynrrd


def test_write_is_atomic_and_leaves_no_temporary(tmp_path):
    volume = Volume(_phantom(), np.eye(4))
    write_volume(volume, tmp_path / "a.nrrd")
    with pytest.raises(ValueError):
        write_volume(Volume(np.zeros((4, 4)), np.eye(4)), tmp_path / "b.nrrd")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nrrd"]
    with pytest.raises(InputError, match="unsupported output type"):
        write_volume(volume, tmp_path / "c.mha")


@pytest.mark.parametrize("case", ["lps", "ras", "permuted", "oblique", "left_handed"])
def test_written_nrrd_opens_in_slicer_on_the_same_grid(tmp_path, slicer_scene, case):
    _write_case(tmp_path / "in.nrrd", case)
    labels = read_volume(tmp_path / "in.nrrd")
    labels.array = (labels.array % 5).astype(np.uint8)
    out = write_volume(labels, tmp_path / "labels.nrrd")
    _assert_same_grid_as_slicer(labels, *_slicer_load(slicer_scene, out, label=True))


# --------------------------------------------------------------------------------------------- reorienting


@pytest.mark.parametrize("case", sorted(CASES))
def test_reorient_to_ras_is_exact_and_lossless(tmp_path, case):
    _write_case(tmp_path / "v.nrrd", case)
    original = read_volume(tmp_path / "v.nrrd")
    ras = reorient_to_ras(original)
    assert np.all(np.diag(ras.directions) > 0)
    if not case.startswith("oblique"):
        np.testing.assert_allclose(ras.directions, np.eye(3), atol=1e-12)
    # No other signed permutation of the axes is closer to +R, +A, +S.
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product([-1, 1], repeat=3):
            assert np.trace(original.directions[:, perm] * signs) <= np.trace(ras.directions) + 1e-12
    # Every voxel keeps its RAS position: compare the values found at the same points.
    ijk = np.array([[0, 0, 0], [3, 5, 7], [SHAPE[0] - 1, 2, SHAPE[2] - 1]])
    points = original.ijk_to_ras_points(ijk)
    ras_ijk = np.rint(ras.ras_to_ijk_points(points)).astype(int)
    np.testing.assert_allclose(ras.ijk_to_ras_points(ras_ijk), points, atol=1e-9)
    assert [ras.array[tuple(p)] for p in ras_ijk] == [original.array[tuple(p)] for p in ijk]
    back = reorient_like(ras, original)
    np.testing.assert_array_equal(back.array, original.array)
    np.testing.assert_array_equal(back.ijk_to_ras, original.ijk_to_ras)
    np.testing.assert_array_equal(undo_reorientation(ras, ras.meta["reorientation"]), original.array)


def test_oblique_reorientation_keeps_its_rotation_residue(tmp_path):
    _write_case(tmp_path / "v.nrrd", "oblique")
    original = read_volume(tmp_path / "v.nrrd")
    ras = reorient_to_ras(original)
    np.testing.assert_allclose(np.abs(np.linalg.det(ras.directions)), 1.0)
    assert not np.allclose(ras.directions, np.eye(3), atol=0.05)  # still oblique: no interpolation happened


# --------------------------------------------------------------------------------------------- resampling


def _ramp(volume: Volume) -> np.ndarray:
    """A linear function of RAS position: linear interpolation reproduces it exactly inside the grid."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in volume.shape], indexing="ij"), axis=-1).reshape(-1, 3)
    ras = volume.ijk_to_ras_points(ijk)
    return (ras @ [1.0, -2.0, 0.5] + 100).reshape(volume.shape)


def test_resample_to_spacing_keeps_extent_and_is_linear_exact():
    source = Volume(np.zeros(SHAPE), make_matrix(rotation(10, 20, 30), [0.5, 0.6, 0.8], [4, 5, 6]))
    source.array = _ramp(source).astype(np.float64)
    out = resample_to_spacing(source, 0.3)
    assert out.array.dtype == np.float32
    np.testing.assert_allclose(out.spacing, 0.3)
    np.testing.assert_allclose(out.directions, source.directions, atol=1e-12)
    np.testing.assert_allclose(np.array(out.shape) * 0.3, np.array(SHAPE) * source.spacing, atol=0.3)
    centre = (np.array(SHAPE) - 1) / 2
    np.testing.assert_allclose(
        out.ijk_to_ras_points((np.array(out.shape) - 1) / 2), source.ijk_to_ras_points(centre), atol=1e-9
    )
    inside = out.array[2:-2, 2:-2, 2:-2]
    np.testing.assert_allclose(inside, _ramp(out)[2:-2, 2:-2, 2:-2], atol=2e-3)


def test_resample_to_spacing_labels_keep_dtype_and_values():
    labels = Volume((_phantom() % 3 * 11).astype(np.uint8), make_matrix(np.eye(3), [0.4, 0.4, 0.4], [0, 0, 0]))
    out = resample_to_spacing(labels, [0.8, 0.4, 0.2], order=0)
    assert out.array.dtype == np.uint8 and out.shape == (12, 20, 32)
    assert set(np.unique(out.array)) <= {0, 11, 22}


def test_slabs_give_the_same_result(monkeypatch):
    source = Volume(_phantom().astype(np.float32), make_matrix(rotation(0, 30, 0), [0.5] * 3, [0, 0, 0]))
    reference = Volume(np.zeros((30, 20, 10)), make_matrix(rotation(20, 0, 10), [0.4] * 3, [1, 1, 1]))
    whole = resample_to_reference(source, reference, order=1, cval=-7)
    monkeypatch.setattr(resample, "SLAB_VOXELS", 500)
    sliced = resample_to_reference(source, reference, order=1, cval=-7)
    np.testing.assert_array_equal(sliced.array, whole.array)
    assert (whole.array == -7).any() and (whole.array != -7).any()


def test_resample_to_reference_identity_and_outside():
    source = Volume(_phantom(), make_matrix(rotation(10, 0, 0), [0.5] * 3, [0, 0, 0]))
    same = resample_to_reference(source, source, order=0)
    np.testing.assert_array_equal(same.array, source.array)
    far = Volume(np.zeros((4, 4, 4)), make_matrix(np.eye(3), [1] * 3, [500, 500, 500]), space="RAS")
    outside = resample_to_reference(source, far, order=1, cval=-1000)
    assert np.all(outside.array == -1000) and outside.space == "RAS"


def test_resample_to_oblique_reference_is_linear_exact():
    source = Volume(np.zeros(SHAPE), make_matrix(np.eye(3), [0.5] * 3, [0, 0, 0]))
    source.array = _ramp(source)
    reference = Volume(np.zeros((10, 10, 10)), make_matrix(rotation(30, -20, 45), [0.4] * 3, [5, 4, 3]))
    out = resample_to_reference(source, reference, order=1, cval=-1)
    ijk = source.ras_to_ijk_points(reference.ijk_to_ras_points(np.argwhere(np.ones(reference.shape))))
    inside = np.all((ijk >= 0) & (ijk <= np.array(SHAPE) - 1), axis=1).reshape(reference.shape)
    outside = np.any((ijk < -0.5) | (ijk > np.array(SHAPE) - 0.5), axis=1).reshape(reference.shape)
    assert inside.sum() > 300 and outside.sum() > 50
    np.testing.assert_allclose(out.array[inside], _ramp(reference)[inside], atol=1e-3)
    assert np.all(out.array[outside] == -1)


def test_known_voxel_lands_on_the_same_point_after_reorient_resample_and_back(tmp_path):
    _write_case(tmp_path / "v.nrrd", "oblique")
    original = read_volume(tmp_path / "v.nrrd")
    labels = np.zeros(SHAPE, np.uint8)
    labels[10:13, 6:9, 4:7] = 36  # a 3x3x3 "tooth" centred on voxel (11, 7, 5)
    target = original.ijk_to_ras_points([11, 7, 5])[0]
    model_grid = resample_to_spacing(reorient_to_ras(original.with_array(labels)), 0.35, order=0)
    found = model_grid.ijk_to_ras_points(np.argwhere(model_grid.array == 36).mean(axis=0))[0]
    assert np.linalg.norm(found - target) < 0.2
    back = resample_to_reference(model_grid, original, order=0)
    assert back.space == original.space
    np.testing.assert_array_equal(back.array, labels)


def test_label_slabs_match(monkeypatch):
    labels = Volume((_phantom() % 4).astype(np.uint8), make_matrix(np.eye(3), [0.5] * 3, [0, 0, 0]))
    reference = Volume(np.zeros((20, 30, 12)), make_matrix(rotation(0, 0, 25), [0.3] * 3, [1, 0, 1]))
    whole = resample_to_reference(labels, reference, order=0)
    assert whole.array.dtype == np.uint8 and set(np.unique(whole.array)) <= {0, 1, 2, 3}
    monkeypatch.setattr(resample, "SLAB_VOXELS", 700)
    np.testing.assert_array_equal(resample_to_reference(labels, reference, order=0).array, whole.array)


def test_nearest_by_axes_is_scipys_order_0_zoom_shift():
    """The axis-aligned label resampling gathers per axis; it picks the voxels scipy's affine_transform picks
    (order 0, mode nearest), on grids where a voxel centre falls exactly half-way (ties), flipped or not, and on
    random ones."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for _ in range(800):
        src = rng.integers(0, 50, tuple(rng.integers(1, 10, 3))).astype(np.uint8)
        scale = rng.choice([0.5, 0.8, 1.25, 2.0, 0.4, 1.0, 0.625, 1 / 3, 0.1 * rng.integers(1, 30)], 3)
        scale *= rng.choice([1, 1, -1], 3)  # flipped axes too
        offset = rng.choice([0.0, -0.25, 0.25, 0.5, -0.5, 1.5, 8.5], 3) + rng.choice([0.0, 0.0, rng.normal()], 3)
        shape = tuple(int(n) for n in rng.integers(1, 16, 3))
        want = np.empty(shape, np.uint8)
        ndimage.affine_transform(src, scale, offset, output=want, order=0, mode="nearest", prefilter=False)
        np.testing.assert_array_equal(resample.nearest_by_axes(src, scale, offset, shape), want)


def test_linear_by_axes_is_scipys_order_1_affine_transform():
    """The axis-aligned linear interpolation (the paste of probabilities) matches scipy's order-1 affine_transform,
    mode nearest, within float32 rounding: up- and downsampling, flips, positions past the edges."""
    from scipy import ndimage

    rng = np.random.default_rng(1)
    for _ in range(200):
        src = rng.random(tuple(rng.integers(1, 10, 3))).astype(np.float32)
        scale = rng.choice([0.5, 0.8, 1.25, 2.0, 0.4, 1.0], 3) * rng.choice([1, 1, -1], 3)
        offset = rng.choice([0.0, -0.25, 0.5, -1.5, 8.5], 3) + rng.normal(size=3)
        shape = tuple(int(n) for n in rng.integers(1, 16, 3))
        want = ndimage.affine_transform(src, scale, offset, output_shape=shape, order=1, mode="nearest",
                                        prefilter=False)
        np.testing.assert_allclose(resample.linear_by_axes(src, scale, offset, shape), want, atol=1e-5)


def test_interpolate_to_reference_matches_the_general_path(monkeypatch: pytest.MonkeyPatch):
    """Axis-aligned grids (flipped axes, slabs) give what resample_to_reference(order=1) gives, 0 outside the source;
    an oblique reference goes the general way."""
    rng = np.random.default_rng(2)
    source = Volume(rng.random((12, 10, 9)).astype(np.float32), np.diag([0.5, 0.5, 0.5, 1.0]))
    flipped = np.diag([-0.3, 0.3, 0.4, 1.0])
    flipped[:3, 3] = [4.0, -1.0, -0.7]
    reference = Volume(np.zeros((20, 22, 14), np.uint8), flipped)
    want = resample_to_reference(source, reference, order=1).array
    assert (want == 0).any() and (want > 0).any()  # the reference reaches past the source
    np.testing.assert_allclose(resample.interpolate_to_reference(source, reference).array, want, atol=1e-5)
    monkeypatch.setattr(resample, "SLAB_VOXELS", 300)
    np.testing.assert_allclose(resample.interpolate_to_reference(source, reference).array, want, atol=1e-5)
    tilted = np.eye(4)
    tilted[:3, :3] = rotation(0.0, 0.0, 20.0) * 0.4
    oblique = Volume(np.zeros((8, 8, 8), np.uint8), tilted)
    np.testing.assert_array_equal(
        resample.interpolate_to_reference(source, oblique).array, resample_to_reference(source, oblique, order=1).array
    )


# --------------------------------------------------------------------------------------------- boxes


def test_crop_pad_paste_and_bounding_box():
    source = Volume(_phantom(), make_matrix(rotation(10, 20, 30), [0.5, 0.6, 0.7], [1, 2, 3]))
    mask = np.zeros(SHAPE, bool)
    mask[3:9, 4:6, 10:12] = True
    lo, hi = bounding_box(mask)
    assert lo.tolist() == [3, 4, 10] and hi.tolist() == [9, 6, 12]
    assert bounding_box(mask, margin=5)[1].tolist() == [14, 11, 16]
    assert bounding_box(np.zeros(SHAPE, bool)) is None
    part = crop(source, lo, hi)
    np.testing.assert_allclose(part.ijk_to_ras_points([0, 0, 0]), source.ijk_to_ras_points(lo))
    np.testing.assert_array_equal(resample_to_reference(source, part).array, part.array)
    pasted = paste(part, source, lo, fill=-1)
    assert np.all(pasted.array[mask] == source.array[mask]) and np.all(pasted.array[~mask] == -1)
    padded = pad(part, 2, (1, 0, 3), value=-5)
    assert padded.shape == (9, 4, 7)
    np.testing.assert_array_equal(crop(padded, [2, 2, 2], [8, 4, 4]).array, part.array)
    np.testing.assert_allclose(padded.ijk_to_ras_points([2, 2, 2]), part.ijk_to_ras_points([0, 0, 0]))


def test_outside_axis_aligned_fast_path_matches_the_general_one():
    out_to_src = np.diag([0.7, -1.3, 2.0, 1.0])
    out_to_src[:3, 3] = [-3.2, 20.0, -1.0]
    skewed = out_to_src.copy()
    skewed[0, 1] = 1e-9  # not diagonal: takes the general path
    fast = _outside((12, 15, 9), out_to_src, (2, 0, 0), (10, 18, 7))
    general = _outside((12, 15, 9), skewed, (2, 0, 0), (10, 18, 7))
    assert fast.shape == (10, 18, 7) and fast.any() and not fast.all()
    np.testing.assert_array_equal(fast, general)


def test_reorient_without_copy_is_a_view_that_writes_through():
    matrix = np.array([[0, 0, -0.5, 10], [-0.4, 0, 0, 5], [0, 0.3, 0, -2], [0, 0, 0, 1.0]])
    original = Volume(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6), matrix)
    copied, view = reorient_to_ras(original), reorient_to_ras(original, copy=False)
    np.testing.assert_array_equal(view.array, copied.array)
    np.testing.assert_array_equal(view.ijk_to_ras, copied.ijk_to_ras)
    assert np.shares_memory(view.array, original.array) and not np.shares_memory(copied.array, original.array)
    view.array[0, 0, 0] = -7
    assert (original.array == -7).sum() == 1
