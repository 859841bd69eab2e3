"""A 9-year-old's phantom through the whole pipeline with the shipped model (slow).

The shipped model has 14 classes (primary types next to the permanent ones) and the mixed numbering: on this
case it gives identification 0.95 with every developing tooth found and numbered right (model card,
"Children's scans"). Asserted with a margin: valid unique labels on the input's grid, primary numbers and
developing teeth in the report, and the children's scores."""

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
    assert len(numbers) == len(set(numbers))
    assert sum(fdi.is_primary(n) for n in numbers) >= 8  # the case holds 14 primary teeth
    developing = [t["fdi"] for t in report["teeth"] if t["developing"]]
    assert len(developing) >= 12 and not any(fdi.is_primary(n) for n in developing)
    assert json.loads((tmp_path / "out" / "child.report.json").read_text())["tooth_count"] == len(report["teeth"])
    metrics = evaluate_pair(result.array, case.labels.array, case.labels.spacing)
    assert metrics["primary_teeth"] >= 10 and metrics["developing_teeth"] >= 12
    assert metrics["dice_binary"] >= 0.85 and metrics["missed"] <= 2, metrics
    assert metrics["identification_accuracy"] >= 0.85 and metrics["developing_recall"] >= 0.9, metrics
    assert metrics["developing_numbering"] >= 0.9, metrics
