"""Improve model through the presenter: real `teethseg finetune` child processes on a tiny case library, the
verdict (better / not better / no held-back scan), cancel, failure, and the model list and card that follow."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _train_phantoms import tiny_parent_model, write_cases  # noqa: E402
from presenter_polling import poll_until_done  # noqa: E402

from TeethSegmentationLib import case_library  # noqa: E402
from TeethSegmentationLib.case_library import CaseLibrary  # noqa: E402
from TeethSegmentationLib.nets.model_file import DEFAULT_MODEL_PATH, load_model, save_model  # noqa: E402
from TeethSegmentationLib.presenter import (  # noqa: E402
    STAGED_MODEL,
    Inputs,
    Presenter,
    card_text,
    case_rows,
    finetune_runner,
    held_back_text,
    model_choices,
)

QUICK = ["--epochs", "1", "--steps-per-epoch", "1", "--replay-phantoms", "0", "--seed", "0"]
CORRECTED = Inputs(input_name="CBCT", output_name="CBCT teeth", segment_count=28, library_cases=2,
                   case_selected=True, user_default=True)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return tiny_parent_model(tmp_path_factory.mktemp("init") / "tiny-parent.pt")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> list[tuple[Path, Path]]:
    return write_cases(tmp_path_factory.mktemp("pairs"), 2, seed=40)


def _library(root: Path, pairs: list[tuple[Path, Path]], count: int) -> CaseLibrary:
    library = CaseLibrary(root)
    for image, labels in pairs[:count]:
        library.add_files(image, labels, "Doe_Jane")
    return library


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _run(presenter: Presenter, runner, timeout: float = 300.0, during=None):
    presenter.start(runner.start(), "finetune")
    return poll_until_done(presenter, timeout, during)


def test_improve_on_one_case_asks_and_the_user_makes_it_the_default_then_reverts(tmp_path, pairs, tiny_model):
    library = _library(tmp_path / "settings", pairs, 1)
    before = _snapshot(library.cases_dir)
    presenter = Presenter(tr=lambda text: "T:" + text)
    seen = []

    def during(p: Presenter) -> None:
        buttons = p.buttons(CORRECTED)
        assert buttons.cancel_improve and not (buttons.improve or buttons.add_case or buttons.remove_case
                                               or buttons.revert or buttons.make_default or buttons.segment)
        seen.append(p.fraction)

    runner = finetune_runner(library.root, tmp_path / "job", str(tiny_model), "cpu", extra=QUICK)
    outcome = _run(presenter, runner, during=during)
    assert outcome.status == "ok" and outcome.task == "finetune", outcome.message
    assert seen == sorted(seen) and presenter.fraction == 1.0
    published = case_library.publish_model(tmp_path / "job" / STAGED_MODEL, tmp_path / "settings" / "Models")
    runner.cleanup()
    verdict = presenter.finetune_verdict(runner.result, str(published))
    assert runner.result["better"] is None and runner.result["held_back"] is None  # one case: nothing held back
    assert verdict.ask and not verdict.install and presenter.candidate == str(published)
    assert verdict.message.startswith("T:No held-back scan") and presenter.status == verdict.message
    assert presenter.buttons(CORRECTED).make_default and not presenter.buttons(CORRECTED).cancel_improve
    assert _snapshot(library.cases_dir) == before and not (tmp_path / "job").exists()

    card = case_library.read_card(published)
    assert card["cases"] == 1 and card["parent"]["name"] == "tiny-parent.pt"
    assert card_text(card, str(published)).startswith(f"Fine-tuned on 1 of your cases on {card['date'][:10]}, from "
                                                      "tiny-parent.pt. No held-back scan")
    default = case_library.make_default(published, library.root)
    presenter.default_changed("made default")
    assert not presenter.buttons(CORRECTED).make_default and presenter.candidate == ""
    assert default.read_bytes() == published.read_bytes() and case_library.read_card(default) == card
    items, index = model_choices([published], "", user_default=case_library.read_card(default))
    assert items[0] == (f"Default model (yours, {card['date'][:10]})", "") and index == 0
    assert items[1] == (published.stem, str(published))

    case_library.revert_to_shipped(library.root)
    assert not default.exists() and not case_library.card_path(default).exists() and published.exists()
    assert model_choices([published], "")[0][0] == ("Default model (shipped)", "")
    assert not presenter.buttons(Inputs(library_cases=1)).revert


def test_a_model_that_is_no_better_on_the_held_back_scan_is_only_offered(tmp_path, pairs, tiny_model):
    """A learning rate too small to change anything: the new model ties the old one on the held-back scan,
    which is not better, so it is kept as a candidate and the default is not replaced."""
    library = _library(tmp_path / "settings", pairs, 2)
    presenter = Presenter()
    runner = finetune_runner(library.root, tmp_path / "job", str(tiny_model), "cpu", extra=[*QUICK, "--lr", "1e-12"])
    outcome = _run(presenter, runner)
    assert outcome.status == "ok", outcome.message
    result = runner.result
    assert result["better"] is False and result["train_cases"] == 1
    verdict = presenter.finetune_verdict(result, str(tmp_path / "job" / STAGED_MODEL))
    figure = held_back_text(result["held_back"])
    before, after = (result["held_back"][k]["dice_per_tooth"] for k in ("before", "after"))
    assert figure == f"On your held-back scan: per-tooth Dice before {before:.2f}, after {after:.2f}."
    assert verdict.ask and not verdict.install and verdict.message.startswith(figure)
    assert "did not do better, so your default model stays" in verdict.message
    assert presenter.buttons(CORRECTED).make_default
    runner.cleanup()


@pytest.fixture(scope="module")
def miscalibrated_model(tmp_path_factory) -> Path:
    """The shipped model pushed to call teeth central incisors (types bias +8): a few steps on the user's
    cases repair it, so the held-back scan measures a real improvement."""
    model = load_model(DEFAULT_MODEL_PATH)
    last = [layer for layer in model.types_net.modules() if isinstance(layer, torch.nn.Conv3d)][-1]
    with torch.no_grad():
        last.bias[1] += 8.0
    path = tmp_path_factory.mktemp("init") / "miscalibrated.pt"
    save_model(model, path)
    return path


def test_a_model_that_does_better_on_the_held_back_scan_becomes_the_default(tmp_path, pairs, miscalibrated_model):
    library = _library(tmp_path / "settings", pairs, 2)
    presenter = Presenter()
    presenter.candidate = str(tmp_path / "an-older-candidate.pt")
    # float32: the same steps on every CPU (bf16 autocast, where a CPU has it, repairs this model less in 3 steps)
    extra = ["--epochs", "1", "--steps-per-epoch", "3", "--replay-phantoms", "0", "--lr", "1e-3"]
    extra += ["--precision", "float32"]
    runner = finetune_runner(library.root, tmp_path / "job", str(miscalibrated_model), "cpu", extra=extra)
    outcome = _run(presenter, runner)
    assert outcome.status == "ok", outcome.message
    held = runner.result["held_back"]
    assert runner.result["better"] is True, runner.result["figure"]
    assert held["after"]["dice_per_tooth"] > held["before"]["dice_per_tooth"]
    published = case_library.publish_model(tmp_path / "job" / STAGED_MODEL, tmp_path / "settings" / "Models")
    runner.cleanup()
    verdict = presenter.finetune_verdict(runner.result, str(published))
    assert verdict.install and not verdict.ask and presenter.candidate == ""
    assert verdict.message == held_back_text(held) + " The new model is now your default."
    assert not presenter.buttons(CORRECTED).make_default
    default = case_library.make_default(published, library.root)  # what the Logic does on verdict.install
    card = case_library.read_card(default)
    assert card["better"] is True and card_text(card, str(default)).endswith(held_back_text(held))


def test_the_verdict_of_a_better_model_names_skipped_cases():
    presenter = Presenter()
    presenter.candidate = "/old/candidate.pt"
    held = {"before": {"dice_per_tooth": 0.76}, "after": {"dice_per_tooth": 0.881}}
    verdict = presenter.finetune_verdict({"better": True, "held_back": held, "skipped": ["Case 'x' cannot be used."]},
                                         "/models/new.pt")
    assert verdict.install and not verdict.ask and presenter.candidate == ""
    assert verdict.message == ("On your held-back scan: per-tooth Dice before 0.76, after 0.88. "
                               "The new model is now your default. Case 'x' cannot be used.")
    assert not presenter.buttons(CORRECTED).make_default and presenter.fraction == 1.0


def test_cancel_kills_the_fine_tuning_and_leaves_no_model_and_a_clean_library(tmp_path, pairs, tiny_model):
    library = _library(tmp_path / "settings", pairs, 2)
    before = _snapshot(library.cases_dir)
    presenter = Presenter()
    long = ["--epochs", "50", "--steps-per-epoch", "50", "--replay-phantoms", "0"]
    runner = finetune_runner(library.root, tmp_path / "job", str(tiny_model), "cpu", extra=long).start()
    presenter.start(runner, "finetune")
    deadline = time.monotonic() + 120
    while not any(str(e.get("stage", "")).startswith("train ") for e in runner.events):
        assert presenter.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    family = [psutil.Process(runner.pid)] + psutil.Process(runner.pid).children(recursive=True)
    assert any((tmp_path / "job" / "tmp").iterdir())  # the engine's work folder lives in the job's folder
    presenter.cancel()
    assert presenter.status == "Cancelled." and not presenter.busy and presenter.candidate == ""
    assert presenter.buttons(CORRECTED).improve and not presenter.buttons(CORRECTED).cancel_improve
    _gone, alive = psutil.wait_procs(family, timeout=5.0)
    assert not alive and not (tmp_path / "job").exists()
    assert _snapshot(library.cases_dir) == before


def test_a_failed_fine_tuning_says_why_in_one_sentence(tmp_path, tiny_model):
    empty = CaseLibrary(tmp_path / "settings")
    empty.cases_dir.mkdir(parents=True)
    presenter = Presenter()
    outcome = _run(presenter, finetune_runner(empty.root, tmp_path / "job", str(tiny_model), "cpu"))
    assert outcome.status == "bad_input" and "has no cases yet" in outcome.message and "\n" not in outcome.message
    assert presenter.status == outcome.message and presenter.fraction == 0.0 and presenter.candidate == ""
    assert presenter.buttons(CORRECTED).improve
    outcome.runner.cleanup()
    assert not (tmp_path / "job").exists()


def test_case_rows_and_cards_without_lineage(tmp_path, pairs):
    library = _library(tmp_path / "lib", pairs, 2)
    rows = case_rows(library.list())
    assert [r[0] for r in rows] == [c.case_id for c in library.list()] and all(r[1] == "Doe_Jane" for r in rows)
    assert all("T" not in r[2] and len(r[2]) == 19 for r in rows)
    assert card_text(None, "") == "The shipped model (trained on synthetic phantoms)."
    assert card_text(None, "/m/trained.pt") == "trained.pt: no card (not made by Improve model)."
    (tmp_path / "bad.pt.card.json").write_text("[1, 2]")
    assert case_library.read_card(tmp_path / "bad.pt") is None
    with pytest.raises(case_library.InputError):
        case_library.make_default(tmp_path / "missing.pt", tmp_path / "lib")


def test_cases_added_from_the_scene_are_listed_removed_and_improve_the_model(slicer_scene, tmp_path, pairs,
                                                                             tiny_model):
    """Add to training cases (mrml on slicer-core) twice, list, remove one, add it again, then Improve model
    on what Slicer wrote: the held-back figure comes from a .seg.nrrd the scene exported."""
    from TeethSegmentationLib import mrml

    root = tmp_path / "settings"
    added = []
    for i, (image, labels) in enumerate(pairs):
        volume = slicer_scene.logics["volumes"].AddArchetypeVolume(str(image), f"Patient {i}", 0)
        node = slicer_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"Patient {i} teeth")
        node.CreateDefaultDisplayNodes()
        mrml.load_fdi_labelmap_as_segments(labels, node, volume, None, show_3d=False)
        added.append((volume, node, mrml.export_case_to_library(volume, node, root)))
    library = CaseLibrary(root)
    rows = case_rows(library.list())
    assert [(r[0], r[1]) for r in rows] == [(case_id, f"Patient {i}") for i, (_v, _n, case_id) in enumerate(added)]
    library.remove(rows[0][0])
    assert [r[1] for r in case_rows(library.list())] == ["Patient 1"]
    presenter = Presenter()
    assert presenter.buttons(Inputs("Patient 0", "Patient 0 teeth", 28, library_cases=1)).add_case
    mrml.export_case_to_library(added[0][0], added[0][1], root)  # now the newest: it is held back
    assert [r[1] for r in case_rows(library.list())] == ["Patient 1", "Patient 0"]
    runner = finetune_runner(root, tmp_path / "job", str(tiny_model), "cpu", extra=[*QUICK, "--lr", "1e-12"])
    outcome = _run(presenter, runner)
    assert outcome.status == "ok", outcome.message
    result = runner.result
    assert result["used_cases"] == 2 and result["train_cases"] == 1 and result["skipped"] == []
    assert result["held_back"]["after"]["truth_teeth"] == result["held_back"]["before"]["truth_teeth"] > 0
    runner.cleanup()
