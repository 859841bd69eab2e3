"""DICOM input as users have it: series folders, several series, modalities, rescaling, multi-frame."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from geometry_helpers import rotation

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.io.read_write import read_volume, write_volume
from TeethSegmentationLib.io.volume import Volume, make_matrix

pydicom = pytest.importorskip("pydicom")
from dicom_writers import write_dicom_multiframe, write_dicom_series  # noqa: E402

from TeethSegmentationLib.io.dicom import read_dicom  # noqa: E402

SHAPE = (20, 16, 12)


def _phantom(oblique: bool = True) -> Volume:
    """A CT-like int16 volume (air, soft tissue, a dense ball) on an oblique grid with distinct spacings."""
    i, j, k = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    array = np.full(SHAPE, -1000, np.int16)
    array[2:-2, 2:-2, 1:-1] = 40 + i[2:-2, 2:-2, 1:-1] + 2 * j[2:-2, 2:-2, 1:-1] + 3 * k[2:-2, 2:-2, 1:-1]
    array[((i - 7) ** 2 + (j - 9) ** 2 + (k - 4) ** 2) < 9] = 2500
    directions = rotation(12, -8, 25) if oblique else np.eye(3)
    return Volume(array, make_matrix(directions, [0.3, 0.35, 0.4], [-20.5, 31.25, 12.0]), space="LPS")


def _modify(files, **attributes) -> None:
    for file in files:
        dataset = pydicom.dcmread(str(file))
        for name, value in attributes.items():
            setattr(dataset, name, value)
        dataset.save_as(str(file))


def test_series_matches_the_nrrd_of_the_same_volume(tmp_path):
    phantom = _phantom()
    write_dicom_series(phantom, tmp_path / "series")
    from_dicom = read_dicom(tmp_path / "series")
    from_nrrd = read_volume(write_volume(phantom, tmp_path / "same.nrrd"))
    np.testing.assert_allclose(from_dicom.ijk_to_ras, from_nrrd.ijk_to_ras, atol=1e-4)
    np.testing.assert_array_equal(from_dicom.array, from_nrrd.array)
    assert from_dicom.array.dtype == np.int16 and from_dicom.space == "LPS"
    assert from_dicom.meta["format"] == "dicom" and from_dicom.meta["modality"] == "CT"


def test_nested_shuffled_files_and_a_single_file_pick(tmp_path):
    phantom = _phantom()
    files = write_dicom_series(phantom, tmp_path / "export" / "flat")
    nested = tmp_path / "export" / "deep" / "er"
    nested.mkdir(parents=True)
    for n, file in enumerate(files):  # names no longer follow the slice order, no extension, some deeper
        target = (nested if n % 2 else file.parent) / f"IM{(7 * n) % len(files):04d}x{n}"
        shutil.move(str(file), str(target))
    (tmp_path / "export" / "README.txt").write_text("not DICOM")
    volume = read_volume(tmp_path / "export")
    np.testing.assert_allclose(volume.ijk_to_ras, phantom.ijk_to_ras, atol=1e-4)
    np.testing.assert_array_equal(volume.array, phantom.array)
    one_file = next(nested.iterdir())
    picked = read_volume(one_file)  # extensionless file: recognised by its DICM magic, loads its series
    np.testing.assert_array_equal(picked.array, phantom.array[:, :, 1::2])  # the slices in that folder
    np.testing.assert_allclose(picked.spacing[2], 2 * phantom.spacing[2])


def test_two_series_need_a_choice(tmp_path):
    write_dicom_series(_phantom(), tmp_path / "a", series_uid="1.2.3.4", description="bone")
    write_dicom_series(_phantom(oblique=False), tmp_path / "b", series_uid="1.2.3.5", description="soft")
    with pytest.raises(InputError) as info:
        read_volume(tmp_path)
    message = str(info.value)
    assert "1.2.3.4" in message and "1.2.3.5" in message and "--series UID" in message
    assert "'bone'" in message and "12 slices" in message and "\n" not in message
    chosen = read_volume(tmp_path, series_uid="1.2.3.5")
    np.testing.assert_allclose(chosen.ijk_to_ras, _phantom(oblique=False).ijk_to_ras, atol=1e-4)
    with pytest.raises(InputError, match="1.2.3.9 is not in"):
        read_volume(tmp_path, series_uid="1.2.3.9")


def test_non_ct_series_are_refused_or_skipped(tmp_path):
    write_dicom_series(_phantom(), tmp_path / "mr", modality="MR")
    with pytest.raises(InputError, match="is MR, not CT/CBCT") as info:
        read_dicom(tmp_path / "mr")
    assert "\n" not in str(info.value)
    write_dicom_series(_phantom(oblique=False), tmp_path / "ct", modality="CT")
    volume = read_dicom(tmp_path)  # the only CT-like series is taken
    np.testing.assert_array_equal(volume.array, _phantom().array)


def test_rescale_slope_and_intercept(tmp_path):
    phantom = _phantom()
    shifted = phantom.with_array((phantom.array + 1000).astype(np.int16))
    files = write_dicom_series(shifted, tmp_path / "hu")
    _modify(files, RescaleIntercept=-1000)
    volume = read_dicom(tmp_path / "hu")
    assert volume.array.dtype == np.int16
    np.testing.assert_array_equal(volume.array, phantom.array)
    _modify(files, RescaleSlope=0.5, RescaleIntercept=-1000)
    volume = read_dicom(tmp_path / "hu")
    assert volume.array.dtype == np.float32
    np.testing.assert_allclose(volume.array, shifted.array * 0.5 - 1000)


def test_enhanced_multiframe_file(tmp_path):
    phantom = _phantom()
    order = np.random.default_rng(3).permutation(SHAPE[2])
    path = write_dicom_multiframe(phantom, tmp_path / "ct.dcm", frame_order=order)
    volume = read_volume(path)
    np.testing.assert_allclose(volume.ijk_to_ras, phantom.ijk_to_ras, atol=1e-4)
    np.testing.assert_array_equal(volume.array, phantom.array)
    folder_volume = read_volume(tmp_path)  # a folder holding the one multi-frame file
    np.testing.assert_array_equal(folder_volume.array, phantom.array)


def test_folders_without_images_and_duplicate_slices(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="No DICOM images were found"):
        read_volume(tmp_path / "empty")
    files = write_dicom_series(_phantom(), tmp_path / "twice" / "one", series_uid="1.2.3")
    copies = write_dicom_series(_phantom(), tmp_path / "twice" / "two", series_uid="1.2.3")
    assert len(files) == len(copies)
    with pytest.raises(InputError, match="several slices at the same position"):
        read_volume(tmp_path / "twice")
