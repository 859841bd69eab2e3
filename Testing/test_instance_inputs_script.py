"""scripts/instance_inputs.py: the instance step's inputs of a phantom are cached with the truth on their grid, and
scoring them again runs today's instance step (the dev loop for instance rules)."""

from __future__ import annotations

import pickle

import numpy as np
from script_modules import load_script


def test_cached_inputs_hold_the_truth_on_their_grid_and_score_as_the_pipeline_numbers(tmp_path):
    script = load_script("instance_inputs")
    script.cache(tmp_path, ["11000:lower"], script.DEFAULT_MODEL_PATH, "small")
    (path,) = tmp_path.glob("*.pkl")
    with open(path, "rb") as f:
        inputs = pickle.load(f)
    assert inputs["truth"].shape == inputs["foreground"].shape == inputs["probs"].shape[1:]
    truth_teeth = [int(t) for t in np.unique(inputs["truth"]) if t]
    assert truth_teeth and all(30 < t < 50 for t in truth_teeth)  # a lower-only scan's teeth, on the fine grid
    totals = script.score(tmp_path)
    assert totals["teeth"] == len(truth_teeth) and totals["developing"] == 0
    assert totals["wrong"] <= 2  # the shipped model numbers a small lower arch almost perfectly
