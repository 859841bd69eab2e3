"""evaluate: metrics of predicted FDI maps, folder pairing and the `teethseg evaluate` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from TeethSegmentationLib import cli
from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.io.read_write import write_volume
from TeethSegmentationLib.io.volume import Volume
from TeethSegmentationLib.metrics import (
    dice,
    dice_from_counts,
    evaluate_dirs,
    evaluate_pair,
    format_table,
    overlap_counts,
    split_teeth,
)


def boxes() -> np.ndarray:
    labels = np.zeros((40, 30, 20), np.uint8)
    labels[2:10, 5:15, 5:15] = 11
    labels[12:20, 5:15, 5:15] = 21
    labels[22:30, 5:15, 5:15] = 36
    return labels


def test_pooled_dice_counts_with_an_absent_class_is_nan():
    pred = np.array([0, 1, 1, 2, 0])
    truth = np.array([0, 1, 0, 2, 2])
    inter, total = overlap_counts(pred, truth, [1, 2, 3])
    scores = dice_from_counts(inter, total)
    assert scores[:2] == pytest.approx([2 / 3, 2 / 3]) and math.isnan(scores[2])
    assert dice(pred == 3, truth == 3) == 1.0 and dice(pred == 1, truth == 1) == pytest.approx(2 / 3)


def test_perfect_prediction():
    truth = boxes()
    m = evaluate_pair(truth, truth, (0.5, 0.5, 0.5))
    assert m["dice_binary"] == m["dice_per_tooth"] == m["dice_types"] == m["identification_accuracy"] == 1.0
    assert m["hd95_mm"] == 0.0 and m["missed"] == m["spurious"] == 0 and m["truth_teeth"] == 3


def test_swapped_labels_lower_accuracy_only():
    truth = boxes()
    pred = truth.copy()
    pred[truth == 11], pred[truth == 21] = 21, 11
    m = evaluate_pair(pred, truth)
    assert m["dice_binary"] == 1.0 and m["identification_accuracy"] == pytest.approx(1 / 3)
    assert m["misidentified"] == {"11": 21, "21": 11} and m["dice_types"] == 1.0


def test_missing_and_spurious_teeth():
    truth = boxes()
    pred = truth.copy()
    pred[pred == 36] = 0
    pred[32:38, 20:26, 5:10] = 47
    m = evaluate_pair(pred, truth, 0.5)
    assert m["missed"] == 1 and m["missed_fdi"] == [36]
    assert m["spurious"] == 1 and m["spurious_fdi"] == [47]
    assert m["identification_accuracy"] == pytest.approx(2 / 3) and m["hd95_mm"] > 0



def test_split_and_lost_teeth():
    truth = boxes()
    pred = truth.copy()
    pred[6:10][pred[6:10] == 11] = 12  # half of 11 under a second number: split
    pred[12:14][pred[12:14] == 21] = 22  # a quarter of 21 (2 of its 8 slices): split
    pred[22:27][pred[22:27] == 36] = 0  # 36 five eighths gone: lost, and not split
    assert split_teeth(pred, truth) == [11, 21] and evaluate_pair(pred, truth, 0.5)["missed_fdi"] == [36]
    pred[12:13][truth[12:13] == 21] = 21  # 22 now holds one slice of eight: under a fifth, not a split
    assert split_teeth(pred, truth) == [11] and evaluate_pair(pred, truth, 0.5)["missed_fdi"] == [36]

def test_hd95_of_a_shift():
    truth = boxes()
    pred = np.roll(truth, 2, axis=0)
    m = evaluate_pair(pred, truth, (0.5, 0.5, 0.5))
    assert 0.5 <= m["hd95_mm"] <= 1.0 + 1e-6


def test_without_hd95_the_other_metrics_are_the_same():
    truth = boxes()
    pred = np.roll(truth, 2, axis=0)
    pred[pred == 36] = 0
    full, quick = evaluate_pair(pred, truth, 0.5), evaluate_pair(pred, truth, 0.5, with_hd95=False)
    assert full["hd95_mm"] > 0 and quick["hd95_mm"] is None
    assert {k: v for k, v in full.items() if k != "hd95_mm"} == {k: v for k, v in quick.items() if k != "hd95_mm"}


def test_shape_mismatch_is_refused():
    with pytest.raises(InputError):
        evaluate_pair(np.zeros((3, 3, 3)), np.zeros((3, 3, 4)))


def write_case(folder, name, array, spacing=0.5):
    folder.mkdir(exist_ok=True)
    write_volume(Volume(array, np.diag([spacing, spacing, spacing, 1.0]), space="RAS"), folder / name)


def test_evaluate_dirs_matches_seg_nrrd_files_by_their_case_name(tmp_path):
    truth = boxes()
    write_case(tmp_path / "truth", "d.seg.nrrd", truth)
    write_case(tmp_path / "pred", "d.seg.nrrd", truth)
    result = evaluate_dirs(tmp_path / "pred", tmp_path / "truth")
    assert set(result["cases"]) == {"d"} and result["cases"]["d"]["identification_accuracy"] == 1.0


def test_evaluate_dirs_pairs_by_name_and_checks_grids(tmp_path):
    truth = boxes()
    write_case(tmp_path / "truth", "a.labels.nrrd", truth)
    write_case(tmp_path / "pred", "a.teeth.nrrd", truth)
    write_case(tmp_path / "truth", "b.nrrd", truth)
    write_case(tmp_path / "pred", "b.nrrd", np.where(truth == 36, 0, truth).astype(np.uint8))
    write_case(tmp_path / "pred", "c.teeth.nrrd", truth)
    result = evaluate_dirs(tmp_path / "pred", tmp_path / "truth")
    assert set(result["cases"]) == {"a", "b"} and result["unmatched_predictions"] == ["c"]
    assert result["cases"]["a"]["identification_accuracy"] == 1.0 and result["mean"]["missed"] == 1
    assert "mean (2 cases)" in format_table(result)
    write_case(tmp_path / "pred", "a.teeth.nrrd", truth, spacing=0.6)
    with pytest.raises(InputError):
        evaluate_dirs(tmp_path / "pred", tmp_path / "truth")


def test_label_table_for_truth(tmp_path):
    tables = pytest.importorskip("TeethSegmentationLib.label_tables")
    truth = boxes()
    write_case(tmp_path / "truth", "a.nrrd", tables.from_fdi(truth, "dentvoxel").astype(np.uint8))
    write_case(tmp_path / "pred", "a.nrrd", truth)
    result = evaluate_dirs(tmp_path / "pred", tmp_path / "truth", label_table="dentvoxel")
    assert result["cases"]["a"]["identification_accuracy"] == 1.0


def test_command_json_events_and_output(tmp_path, capsys):
    truth = boxes()
    write_case(tmp_path / "truth", "a.labels.nrrd", truth)
    write_case(tmp_path / "pred", "a.teeth.nrrd", truth)
    base = ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth")]
    assert cli.main([*base, "--json", "--output", str(tmp_path / "m.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["mean"]["dice_binary"] == 1.0
    assert json.loads((tmp_path / "m.json").read_text())["cases"]["a"]["missed"] == 0
    assert cli.main(base) == 0
    assert "mean (1 cases)" in capsys.readouterr().out
    assert cli.main([*base, "--events"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["event"] == "result" and events[-1]["metrics"]["mean"]["identification_accuracy"] == 1.0
    assert cli.main(["evaluate", "--pred", str(tmp_path / "nope"), "--truth", str(tmp_path / "truth")]) == 2


def test_unnumbered_teeth_are_teeth_but_never_identified(tmp_path) -> None:
    truth = boxes()
    pred = truth.copy()
    pred[truth == 21] = 100  # found, but left unnumbered
    m = evaluate_pair(pred, truth)
    assert m["dice_binary"] == 1.0 and m["unnumbered"] == 1
    assert m["identified"] == 2 and m["misidentified"] == {"21": 100}
    for folder, labels in (("pred", pred), ("truth", truth)):
        (tmp_path / folder).mkdir()
        write_volume(Volume(labels, np.eye(4)), tmp_path / folder / "case.nrrd")
    assert evaluate_dirs(tmp_path / "pred", tmp_path / "truth")["mean"]["unnumbered"] == 1
    with pytest.raises(InputError, match="100"):  # a truth map has no unnumbered teeth
        evaluate_dirs(tmp_path / "truth", tmp_path / "pred")
