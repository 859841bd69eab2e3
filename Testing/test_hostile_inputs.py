"""Hostile and unlucky inputs (issue 13), as a table: each row is one input a careless, unlucky or hostile
user gives ``teethseg``, the exit code and the one sentence it must get, and nothing may be left behind.

The command runs in-process (``cli.main``) on tiny real files; only the signal rows start a child.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import nrrd
import numpy as np
import pytest
from hostile_files import (
    dicom_series,
    files_under,
    flip_weight_byte,
    gzip_bomb,
    model_dict,
    modify_dicom,
    overfull_gzip,
    patch_nifti,
    run_cli,
    scan,
    segment,
    tiny_model,
    write_header,
    write_nifti,
    write_nrrd,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


# ------------------------------------------------------------------ rows: (tmp, model) -> (argv, code, phrase)


def constant(tmp, model):
    return segment([write_nrrd(tmp / "zero.nrrd", np.zeros((16, 16, 16), np.int16))], tmp / "out", model), 2, \
        "no image content"


def all_nan(tmp, model):
    return segment([write_nrrd(tmp / "nan.nrrd", np.full((16, 16, 16), np.nan, np.float32))], tmp / "out", model), \
        2, "no image content"


def all_inf(tmp, model):
    return segment([write_nrrd(tmp / "inf.nrrd", np.full((16, 16, 16), np.inf, np.float32))], tmp / "out", model), \
        2, "no image content"


def nifti_nan_sform(tmp, model):
    return segment([patch_nifti(write_nifti(tmp / "s.nii", scan()), nan_sform=True)], tmp / "out", model), 2, "sform"


def nifti_singular_qform(tmp, model):
    path = patch_nifti(write_nifti(tmp / "q.nii", scan()), singular_qform=True)
    return segment([path], tmp / "out", model), 2, "qform"


def nrrd_nan_directions(tmp, model):
    directions = np.eye(3) * 0.5
    directions[1, 1] = np.nan
    path = write_nrrd(tmp / "d.nrrd", scan(), **{"space directions": directions})
    return segment([path], tmp / "out", model), 2, "space directions"


def nrrd_two_direction_rows(tmp, model):
    path = write_header(tmp / "two.nhdr", ["type: short", "dimension: 3", "sizes: 4 4 4", "encoding: raw",
                                           "space: left-posterior-superior", "space directions: (1,0,0) (0,1,0)",
                                           "data file: two.raw"])
    (tmp / "two.raw").write_bytes(bytes(128))
    return segment([path], tmp / "out", model), 2, "space directions"


def dicom_pixel_spacing_zero(tmp, model):
    modify_dicom(dicom_series(tmp / "dcm"), PixelSpacing=[0, 0])
    return segment([tmp / "dcm"], tmp / "out", model), 2, "PixelSpacing"


def dicom_nan_position(tmp, model):
    files = dicom_series(tmp / "dcm")
    modify_dicom(files[2:3], ImagePositionPatient=["nan", "0", "1"])
    return segment([tmp / "dcm"], tmp / "out", model), 2, "ImagePositionPatient"


def dicom_zero_orientation(tmp, model):
    modify_dicom(dicom_series(tmp / "dcm"), ImageOrientationPatient=[0, 0, 0, 0, 0, 0])
    return segment([tmp / "dcm"], tmp / "out", model), 2, "ImageOrientationPatient"


def dicom_slices_missing(tmp, model):
    files = dicom_series(tmp / "dcm", slices=12)
    for file in files[3:9]:
        file.unlink()  # a 3.5 mm hole in a 0.5 mm series
    return segment([tmp / "dcm"], tmp / "out", model), 2, "slices are missing"


def same_stem(tmp, model):
    (tmp / "d1").mkdir(), (tmp / "d2").mkdir()
    inputs = [write_nrrd(tmp / d / "scan.nrrd", scan()) for d in ("d1", "d2")]
    return segment(inputs, tmp / "out", model), 2, "both write outputs named 'scan'"


def bad_later_input(tmp, model):
    later = tmp / "slice.nrrd"
    nrrd.write(str(later), np.zeros((8, 8), np.int16))
    return segment([write_nrrd(tmp / "good.nrrd", scan()), later], tmp / "out", model), 2, "2D image"


def five_mm_metre_across(tmp, model):
    return segment([write_nrrd(tmp / "wide.nrrd", scan((40, 40, 40)), spacing=25.0)], tmp / "out", model), 2, \
        "more than any head scan"


def nifti_metres(tmp, model):
    return segment([patch_nifti(write_nifti(tmp / "m.nii", scan()), metres=True)], tmp / "out", model), 2, \
        "check the voxel size and its unit"


def nrrd_gzip_bomb(tmp, model):
    return segment([gzip_bomb(tmp / "bomb.nrrd", 1600)], tmp / "out", model), 2, "more than any CBCT scan"


def nrrd_overfull_gzip(tmp, model):
    return segment([overfull_gzip(tmp / "over.nrrd")], tmp / "out", model), 2, \
        "over.nrrd holds more voxel data than its header's sizes say"


def empty_nrrd(tmp, model):
    (tmp / "empty.nrrd").touch()
    return segment([tmp / "empty.nrrd"], tmp / "out", model), 2, "is empty (0 bytes)"


def empty_nhdr(tmp, model):
    (tmp / "empty.nhdr").touch()
    return segment([tmp / "empty.nhdr"], tmp / "out", model), 2, "is empty (0 bytes)"


def output_is_a_file(tmp, model):
    (tmp / "out").write_text("keep me")
    return segment([write_nrrd(tmp / "scan.nrrd", scan())], tmp / "out", model), 2, "is an existing file"


def output_empty_string(tmp, model):
    return segment([write_nrrd(tmp / "scan.nrrd", scan())], "", model), 2, "empty string"


def series_for_nrrd(tmp, model):
    return segment([write_nrrd(tmp / "scan.nrrd", scan())], tmp / "out", model, "--series", "1.2.3"), 2, \
        "--series picks a DICOM series"


def detached_outside(tmp, model):
    (tmp / "h").mkdir()
    path = write_header(tmp / "h" / "x.nhdr", ["type: uint8", "dimension: 3", "sizes: 1 1 1", "encoding: raw",
                                               "data file: ../secret.raw"])
    (tmp / "secret.raw").write_bytes(b"\x01")
    return segment([path], tmp / "out", model), 2, "outside its own folder"


def detached_absolute(tmp, model):
    size = os.path.getsize("/etc/passwd")
    path = write_header(tmp / "p.nhdr", ["type: uint8", "dimension: 3", f"sizes: {size} 1 1", "encoding: raw",
                                         "data file: /etc/passwd"])
    return segment([path], tmp / "out", model), 2, "outside its own folder"


def detached_fifo(tmp, model):
    os.mkfifo(tmp / "pipe.raw")
    path = write_header(tmp / "f.nhdr", ["type: uint8", "dimension: 3", "sizes: 2 2 2", "encoding: raw",
                                         "data file: pipe.raw"])
    return segment([path], tmp / "out", model), 2, "not a regular file"


def model_start_filters_4000(tmp, model):
    return segment([write_nrrd(tmp / "s.nrrd", scan())], tmp / "out", model_dict(model, **{
        "teeth.arch.start_filters": 4000})), 2, "teeth.arch.start_filters = 4000"


def model_flipped_byte(tmp, model):
    bad = flip_weight_byte(model)
    return segment([write_nrrd(tmp / "s.nrrd", scan())], tmp / "out", bad), 2, f"Model file {bad} is damaged"


def model_pickled_object(tmp, model):
    import torch

    torch.save({"format": "teethseg-model", "code": Path("x")}, tmp / "obj.pt")
    return segment([write_nrrd(tmp / "s.nrrd", scan())], tmp / "out", tmp / "obj.pt"), 2, "holds Python objects"


def _evaluate(tmp, truth: np.ndarray):
    (tmp / "pred").mkdir(), (tmp / "truth").mkdir()
    labels = np.zeros(truth.shape, np.uint8)
    labels[2:6, 2:6, 2:6] = 11
    write_nrrd(tmp / "pred" / "case.teeth.nrrd", labels)
    write_nrrd(tmp / "truth" / "case.labels.nrrd", truth)
    return ["evaluate", "--pred", str(tmp / "pred"), "--truth", str(tmp / "truth"), "--events"]


def evaluate_ct_as_truth(tmp, model):
    return _evaluate(tmp, scan((8, 8, 8)).astype(np.float32) + 0.25), 2, "fractional values"


def evaluate_truth_300_and_minus_11(tmp, model):
    truth = np.zeros((8, 8, 8), np.int16)
    truth[1, 1, 1], truth[2, 2, 2], truth[3, 3, 3] = 300, -11, 11
    return _evaluate(tmp, truth), 2, "holds values -11, 300 that are not FDI tooth numbers"


def evaluate_nan_truth(tmp, model):
    truth = np.zeros((8, 8, 8), np.float32)
    truth[1, 1, 1] = np.nan
    return _evaluate(tmp, truth), 2, "NaN or infinite values"


ROWS: list[Callable] = [
    constant, all_nan, all_inf, nifti_nan_sform, nifti_singular_qform, nrrd_nan_directions, nrrd_two_direction_rows,
    dicom_pixel_spacing_zero, dicom_nan_position, dicom_zero_orientation, dicom_slices_missing, same_stem,
    bad_later_input, five_mm_metre_across, nifti_metres, nrrd_gzip_bomb, nrrd_overfull_gzip, empty_nrrd, empty_nhdr,
    output_is_a_file, output_empty_string, series_for_nrrd, detached_outside, detached_absolute, detached_fifo,
    model_start_filters_4000, model_flipped_byte, model_pickled_object, evaluate_ct_as_truth,
    evaluate_truth_300_and_minus_11, evaluate_nan_truth,
]


@pytest.mark.parametrize("row", ROWS, ids=[row.__name__ for row in ROWS])
def test_hostile_input_gets_one_sentence_and_leaves_nothing(row, tmp_path, model, capsys, monkeypatch) -> None:
    pytest.importorskip("pydicom") if row.__name__.startswith("dicom") else None
    argv, code, phrase = row(tmp_path, model)
    monkeypatch.chdir(tmp_path)
    before = files_under(tmp_path)
    got, lines = run_cli(argv, capsys)
    assert got == code, lines
    assert len(lines) == 1 and lines[0].endswith("."), lines
    assert phrase in lines[0], lines[0]
    assert "weights_only" not in lines[0] and "Traceback" not in lines[0]
    assert files_under(tmp_path) == before  # no output, no temporary file, not even the output folder


MALFORMED_MODELS = [  # (field changes, phrase): absurd architecture fields and malformed values
    ({"teeth.arch.n_blocks": 0}, "teeth.arch.n_blocks = 0"),
    ({"types.arch.start_filters": -3}, "types.arch.start_filters = -3"),
    ({"types.arch.start_filters": 9.5}, "not a whole number"),
    ({"teeth.arch.out_channels": 4}, "teeth.arch.out_channels = 4, not 1"),
    ({"types.arch": "unet"}, "malformed 'types' network"),
    ({"teeth.state_dict": [1, 2]}, "malformed 'teeth.state_dict'"),
    ({"types.input": "photo"}, "types.input 'photo'"),
    ({"patch_size": 1}, "patch_size = 1"),
    ({"spacing_mm": 0.0}, "spacing_mm = 0.0"),
    ({"teeth_spacing_mm": "one"}, "not a number"),
    ({"normalization": [5, 99]}, "malformed 'normalization'"),
    ({"normalization.low_percentile": 99.9}, "low bounds are not below"),
    ({"format_version": "1"}, "format_version '1', not a whole number"),
    ({"training": "lots"}, "malformed 'training'"),
]


@pytest.mark.parametrize("changes, phrase", MALFORMED_MODELS, ids=[p for _c, p in MALFORMED_MODELS])
def test_malformed_model_fields_get_one_sentence(changes, phrase, tmp_path, model, capsys) -> None:
    bad = model_dict(model, **changes)
    source = write_nrrd(tmp_path / "s.nrrd", scan())
    before = files_under(tmp_path)
    code, lines = run_cli(segment([source], tmp_path / "out", bad), capsys)
    assert code == 2 and len(lines) == 1 and phrase in lines[0] and str(bad) in lines[0], lines
    assert files_under(tmp_path) == before


def test_a_few_nan_and_inf_voxels_are_missing_data(tmp_path, model, capsys) -> None:
    array = scan().astype(np.float32)
    array[0, 0, :3] = [np.nan, np.inf, -np.inf]
    source = write_nrrd(tmp_path / "holes.nrrd", array)
    code, lines = run_cli(segment([source], tmp_path / "out", model), capsys)
    assert code == 0, lines
    assert sorted(files_under(tmp_path / "out")) == ["holes.report.json", "holes.seg.nrrd", "holes.teeth.nrrd"]
