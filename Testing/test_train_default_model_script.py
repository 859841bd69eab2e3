"""scripts/train_default_model.py: the extra young children are 6-9-year-olds of their own names and seeds, with
primary teeth (what the option is for); the other scanners' grey values can be left out of the recipe, and a
share of stage 2's patches drawn on the primary incisors reaches stage 2 alone."""

from __future__ import annotations

import importlib

import numpy as np
from script_modules import SCRIPTS, load_script

from TeethSegmentationLib import fdi
from TeethSegmentationLib.io.read_write import read_volume
from TeethSegmentationLib.training.config import TrainConfig


def _script():
    return load_script("train_default_model")


def test_young_children_are_named_apart_and_have_primary_teeth(tmp_path):
    script = _script()
    young = script.write_children(tmp_path, 2, script.YOUNG_SEED, "tiny", script.YOUNG_AGES, prefix="young")
    older = script.write_children(tmp_path, 1, script.CHILD_SEED, "tiny", script.CHILD_AGES)
    assert young == ["young000", "young001"] and older == ["child000"]
    assert 6.0 <= script.YOUNG_AGES[0] < script.YOUNG_AGES[1] <= 9.0
    for name in young:
        labels = read_volume(tmp_path / f"{name}.labels.nrrd").array
        assert any(fdi.is_primary(int(n)) for n in np.unique(labels) if n), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}{suffix}" for n in young + older for suffix in (".nrrd", ".labels.nrrd")
    )


def test_the_scanner_augmentation_is_on_unless_left_out(tmp_path):
    script = _script()
    on = script.common_options(script.parse_args([]), tmp_path)
    off = script.common_options(script.parse_args(["--no-scanner-augment"]), tmp_path)
    assert on["scanner_augment"] is True and off["scanner_augment"] is False
    assert TrainConfig(**off).scanner_augment is False and TrainConfig(**on).scanner_augment is True


def test_the_artefact_augmentation_is_off_unless_asked_for_and_reaches_both_stages(tmp_path):
    from TeethSegmentationLib.training.augment import ARTEFACTS
    from TeethSegmentationLib.training.trainer import Trainer

    script = _script()
    off = script.common_options(script.parse_args([]), tmp_path)
    on = script.common_options(script.parse_args(["--artefact-augment"]), tmp_path)
    assert off["artefact_augment"] is False and TrainConfig().artefact_augment is False
    for options, expected in ((off, {"p_motion": 0.0, "p_metal": 0.0}), (on, ARTEFACTS)):
        trainer = Trainer(TrainConfig(**options))
        trainer.model = trainer._build_model()
        for stage in ("types", "teeth"):
            drawn = trainer.sampling_params(stage).augment
            assert {"p_motion": drawn.p_motion, "p_metal": drawn.p_metal} == expected
    # the movement is drawn in millimetres of each stage's own grid
    assert trainer.sampling_params("teeth").spacing_mm == trainer.model.teeth_spacing_mm == 1.0
    assert trainer.sampling_params("types").spacing_mm == trainer.model.spacing_mm == 0.5


def test_the_primary_incisor_share_reaches_stage_2s_sampling_only(tmp_path):
    from TeethSegmentationLib.training.trainer import Trainer

    script = _script()
    argv = ["--primary-incisor-share", "0.25", "--types-classes", "14"]
    options = script.common_options(script.parse_args(argv), tmp_path)
    assert script.common_options(script.parse_args([]), tmp_path)["primary_incisor_share"] == 0.0
    trainer = Trainer(TrainConfig(**options))
    trainer.model = trainer._build_model()
    assert trainer.sampling_params("types").primary_incisor_share == 0.25
    assert trainer.sampling_params("teeth").primary_incisor_share == 0.0


def test_phantoms_drawn_side_by_side_equal_those_drawn_in_order(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))  # spawned processes import the script by its name
    script = importlib.import_module("train_default_model")
    in_order = script.write_cases(tmp_path / "a", 2, script.TRAIN_SEED, ["crop", "lower"], "tiny")
    side_by_side = script.write_cases(tmp_path / "b", 2, script.TRAIN_SEED, ["crop", "lower"], "tiny", jobs=2)
    assert in_order == side_by_side == ["case000", "case001"]
    for name in in_order:
        for suffix in (".nrrd", ".labels.nrrd"):
            a, b = (read_volume(tmp_path / d / f"{name}{suffix}") for d in "ab")
            assert np.array_equal(a.array, b.array) and np.allclose(a.ijk_to_ras, b.ijk_to_ras)


def test_draw_only_writes_the_training_set_and_trains_nothing(tmp_path, monkeypatch):
    """The GPU script draws the phantoms once (``--draw-only``) and then trains two candidates from them at once:
    the drawing writes every training case and nothing else, and a second drawing adds none."""
    script = _script()
    argv = ["train_default_model.py", "--draw-only", "--work", str(tmp_path), "--train-cases", "1", "--children",
            "1", "--young-children", "1", "--size", "tiny", "--output", str(tmp_path / "model.pt")]
    monkeypatch.setattr("sys.argv", argv)
    assert script.main() == 0
    written = sorted(p.name for p in (tmp_path / "train").iterdir())
    assert written == sorted(f"{n}{s}" for n in ("case000", "child000", "young000") for s in (".nrrd", ".labels.nrrd"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]  # no model, no validation
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "train").iterdir()}
    assert script.main() == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "train").iterdir()} == stamps
