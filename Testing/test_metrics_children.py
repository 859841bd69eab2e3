"""evaluate on children's scans: identification over primary + erupted permanent teeth, developing recall and
numbering; adult truths keep these scores null."""

from __future__ import annotations

import numpy as np
import pytest

from TeethSegmentationLib import fdi
from TeethSegmentationLib.metrics import evaluate_pair, format_table, mean_metrics
from TeethSegmentationLib.phantom import make_phantom


@pytest.fixture(scope="module")
def child():
    case = make_phantom(3, size="small", dentition="mixed", age=9.0)
    return case.labels.array, np.linalg.norm(case.labels.ijk_to_ras[:3, :3], axis=0), case.info


def test_perfect_prediction_scores_one(child):
    truth, spacing, info = child
    scores = evaluate_pair(truth, truth, spacing)
    assert scores["identification_erupted"] == scores["developing_recall"] == scores["developing_numbering"] == 1.0
    assert scores["developing_fdi"] == info["developing"] and scores["primary_teeth"] == len(info["primary"])


def test_nine_class_style_prediction_loses_primary_and_developing_teeth(child):
    """Primary teeth given their place's permanent number, developing teeth not found, one misnumbered."""
    truth, spacing, info = child
    pred = truth.copy()
    for n in info["developing"]:
        pred[truth == n] = 0
    for n in info["primary"]:
        pred[truth == n] = fdi.successor(n)
    scores = evaluate_pair(pred, truth, spacing)
    erupted = len(info["primary"]) + len(info["erupted_permanent"])
    assert scores["identification_erupted"] == pytest.approx(len(info["erupted_permanent"]) / erupted)
    assert scores["developing_recall"] == 0.0 and scores["developing_numbering"] is None
    found = truth.copy()
    found[truth == 15], found[truth == 14] = 14, 15  # found, but the two premolars' numbers swapped
    scores = evaluate_pair(found, truth, spacing)
    assert scores["developing_recall"] == 1.0
    assert scores["developing_numbering"] == pytest.approx(1 - 2 / len(info["developing"]))
    mean = mean_metrics([scores])
    assert mean["developing_teeth"] == len(info["developing"]) and "children:" in format_table(
        {"cases": {"c": scores}, "mean": mean}
    )


def test_adult_truth_has_no_children_scores():
    truth = np.zeros((30, 30, 30), np.uint8)
    truth[2:8, 2:8, 2:8], truth[10:16, 2:8, 2:8], truth[2:8, 20:26, 20:26] = 11, 21, 36
    scores = evaluate_pair(truth, truth, (0.5, 0.5, 0.5))
    assert scores["identification_erupted"] is None and scores["developing_recall"] is None
    assert scores["primary_teeth"] == scores["developing_teeth"] == 0 and scores["developing_fdi"] == []
    assert "children:" not in format_table({"cases": {"a": scores}, "mean": mean_metrics([scores])})
