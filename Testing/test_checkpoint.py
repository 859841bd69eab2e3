"""training.checkpoint: weights_only round trip, exact random-number state, refusals with one sentence."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.events import jsonable
from TeethSegmentationLib.training.checkpoint import (
    CHECKPOINT_FORMAT_VERSION,
    checkpoint_path,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _draws() -> tuple[float, float, float]:
    return float(torch.rand(1)), float(np.random.rand()), random.random()


def test_checkpoint_path_is_beside_the_model():
    assert str(checkpoint_path("out/model.pt")) == "out/model.pt.ckpt"


def test_round_trip_keeps_tensors_and_plain_values_and_the_random_state(tmp_path):
    state = {"nets": {"teeth": {"w": torch.arange(4.0)}}, "history": jsonable([{"loss": np.float32(0.25)}])}
    path = save_checkpoint(tmp_path / "m.pt.ckpt", state)
    expected = _draws()
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["nets"]["teeth"]["w"], torch.arange(4.0)) and loaded["history"] == [{"loss": 0.25}]
    assert loaded["format_version"] == CHECKPOINT_FORMAT_VERSION
    set_rng_state(loaded["rng"])
    assert _draws() == expected  # the same numbers as right after saving
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt.ckpt"]  # no temporary file left


def test_numpy_values_are_refused_by_weights_only_loading_so_callers_pass_jsonable_ones(tmp_path):
    path = save_checkpoint(tmp_path / "bad.ckpt", {"best": {"teeth": np.float64(0.5)}})
    with pytest.raises(InputError, match="cannot be read"):
        load_checkpoint(path)


def test_missing_foreign_and_newer_files_are_one_sentence(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "none.ckpt")
    torch.save({"format": "something-else"}, tmp_path / "foreign.ckpt")
    with pytest.raises(InputError, match="not a TeethSegmentation training checkpoint"):
        load_checkpoint(tmp_path / "foreign.ckpt")
    newer = {**rng_state(), "format": "teethseg-checkpoint", "format_version": CHECKPOINT_FORMAT_VERSION + 1}
    torch.save(newer, tmp_path / "newer.ckpt")
    with pytest.raises(InputError, match="newer"):
        load_checkpoint(tmp_path / "newer.ckpt")
