"""A 9-year-old's phantom through the whole pipeline with the shipped model (slow).

The shipped model has 9 classes and was trained on adults only: it cannot give primary numbers and does not
mark developing teeth, so this asserts what must hold with it (valid, unique labels on the input's grid, the
teeth found, children's scores computed, no crash), not the issue's accuracy targets, which need the
14-class retrain (Resources/Models/README.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from TeethSegmentationLib import fdi
from TeethSegmentationLib.inference.outputs import segment_file
from TeethSegmentationLib.inference.pipeline import SegmentOptions
from TeethSegmentationLib.io.read_write import read_volume, write_volume
from TeethSegmentationLib.metrics import evaluate_pair
from TeethSegmentationLib.nets.model_file import DEFAULT_MODEL_PATH, load_model
from TeethSegmentationLib.phantom import make_phantom

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason="the default model has not been built"),
]


def test_mixed_phantom_end_to_end(tmp_path):
    case = make_phantom(30_009, size="realistic", fov="crop", dentition="mixed", age=9.0)
    write_volume(case.image, tmp_path / "child.nrrd")
    report = segment_file(tmp_path / "child.nrrd", tmp_path / "out", load_model(), SegmentOptions(device="cpu"))
    result = read_volume(report["outputs"]["teeth"])
    assert result.shape == case.labels.shape and np.allclose(result.ijk_to_ras, case.labels.ijk_to_ras, atol=1e-4)
    values = [int(v) for v in np.unique(result.array) if v]
    assert values and all(fdi.is_tooth_label(v) for v in values)
    numbers = [t["fdi"] for t in report["teeth"] if t["numbered"]]
    assert len(numbers) == len(set(numbers)) and not any(fdi.is_primary(n) for n in numbers)  # 9 classes
    assert all(t["developing"] is False for t in report["teeth"])
    assert json.loads((tmp_path / "out" / "child.report.json").read_text())["tooth_count"] == len(report["teeth"])
    metrics = evaluate_pair(result.array, case.labels.array, case.labels.spacing)
    assert metrics["primary_teeth"] >= 10 and metrics["developing_teeth"] >= 12
    assert metrics["identification_erupted"] is not None and metrics["developing_numbering"] is not None
    # The teeth are found, primary and forming ones included (this case with the shipped model: binary Dice
    # 0.84, none missed, developing recall 1.0; identification 0.26, as a 9-class model numbers by place).
    assert metrics["dice_binary"] >= 0.75 and metrics["missed"] <= 3 and metrics["developing_recall"] >= 0.8, metrics
