"""The module widget's button, status and event logic (presenter.py) against real engine child processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest
from presenter_polling import poll_until_done

from TeethSegmentationLib.presenter import Inputs, Presenter, model_choices
from TeethSegmentationLib.runner import EngineRunner, device_probe

FRESH = Inputs(input_name="CBCT", output_name="", segment_count=0)
SEGMENTED = Inputs(input_name="CBCT", output_name="CBCT teeth", segment_count=28, training_pairs=1)


def _wait_for_probe(presenter: Presenter, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while presenter.probe is not None:
        presenter.poll()
        assert time.monotonic() < deadline, "the probe did not end in time"
        time.sleep(0.02)


def test_fresh_scene_can_segment_without_choosing_an_output():
    buttons = Presenter().buttons(FRESH)
    assert buttons.segment and "'CBCT teeth'" in buttons.segment_tooltip
    assert not (buttons.cancel or buttons.export or buttons.correct or buttons.train or buttons.cancel_train)
    nothing = Presenter().buttons(Inputs())
    assert not nothing.segment and nothing.segment_tooltip == "Select an input volume."
    done = Presenter().buttons(SEGMENTED)
    assert done.segment and done.export and done.correct and done.train and "'CBCT teeth'" in done.segment_tooltip


def test_a_real_engine_job_drives_progress_log_and_buttons(tmp_path):
    presenter = Presenter(tr=lambda text: "T:" + text)  # every user-facing text goes through tr
    runner = EngineRunner(["phantom", str(tmp_path), "--cases", "2", "--size", "tiny", "--seed", "3"]).start()
    presenter.start(runner, "segment")
    assert presenter.status == "T:Starting..." and presenter.fraction == 0.0
    seen = []

    def during(p: Presenter):
        buttons = p.buttons(SEGMENTED)
        assert buttons.cancel and not (buttons.segment or buttons.export or buttons.correct or buttons.train)
        seen.append(p.fraction)

    outcome = poll_until_done(presenter, during=during)
    assert outcome.status == "ok" and outcome.task == "segment" and outcome.runner is runner
    assert presenter.fraction == 1.0 and not presenter.busy
    assert seen == sorted(seen) and all(0.0 <= f <= 1.0 for f in seen)
    assert any(line.startswith("T:Started phantom") for line in presenter.take_log())
    assert presenter.take_log() == []
    presenter.finished("Found 28 teeth.")
    assert presenter.status == "Found 28 teeth." and presenter.buttons(SEGMENTED).segment
    presenter.note("Wrote teeth.nrrd.")  # an export: the status line only
    assert (presenter.status, presenter.fraction) == ("Wrote teeth.nrrd.", 1.0)


def test_cancel_ends_the_process_tree_and_gives_the_buttons_back(tmp_path):
    presenter = Presenter()
    owned = tmp_path / "owned"
    owned.mkdir()
    runner = EngineRunner(["phantom", str(tmp_path / "cases"), "--cases", "50", "--size", "small"],
                          temp_folder=owned).start()
    presenter.start(runner, "segment")
    deadline = time.monotonic() + 60
    while not any(e["event"] == "start" for e in runner.events):
        assert presenter.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    family = [psutil.Process(runner.pid)] + psutil.Process(runner.pid).children(recursive=True)
    assert presenter.buttons(SEGMENTED).cancel
    presenter.cancel()
    assert presenter.status == "Cancelled." and presenter.fraction == 0.0 and not presenter.busy
    buttons = presenter.buttons(SEGMENTED)
    assert buttons.segment and not buttons.cancel and buttons.export
    assert presenter.poll() is None  # nothing left to report
    _gone, alive = psutil.wait_procs(family, timeout=2.0)
    assert not alive and not owned.exists()


def test_bad_input_and_a_crash_are_reported_as_failures(tmp_path):
    presenter = Presenter()
    missing = tmp_path / "missing.nrrd"
    presenter.start(EngineRunner(["segment", str(missing), "--output", str(tmp_path / "out")]).start(), "segment")
    outcome = poll_until_done(presenter)
    assert outcome.status == "bad_input" and str(missing) in outcome.message and "\n" not in outcome.message
    assert presenter.status == outcome.message and presenter.fraction == 0.0
    assert presenter.buttons(FRESH).segment
    crash = "import sys; sys.stderr.write('Traceback...\\nMemoryError: out of memory\\n'); sys.exit(1)"
    presenter.start(EngineRunner([], command=[sys.executable, "-c", crash]).start(), "train")
    assert presenter.buttons(SEGMENTED).cancel_train and not presenter.buttons(SEGMENTED).cancel
    outcome = poll_until_done(presenter)
    assert outcome.status == "failed" and outcome.task == "train"
    assert outcome.message == "MemoryError: out of memory" and "Traceback" in outcome.details


def test_a_crashed_probe_is_a_failure_and_never_gates_the_buttons(tmp_path):
    presenter = Presenter()
    crash = "import time; time.sleep(0.5); raise RuntimeError('the driver is gone')"
    presenter.start_probe(EngineRunner([], command=[sys.executable, "-c", crash]).start())
    assert presenter.device == "Checking for a GPU..." and not presenter.needs_probe
    buttons = presenter.buttons(FRESH)
    assert buttons.segment and not buttons.cancel  # the probe is not a job
    status, fraction = presenter.status, presenter.fraction
    _wait_for_probe(presenter)
    assert presenter.device == "Could not check for a GPU: RuntimeError: the driver is gone"
    assert (presenter.status, presenter.fraction) == (status, fraction)


def test_probe_and_job_run_side_by_side(tmp_path):
    """The real probe (torch in a child Python) while a job runs: each keeps to its own line."""
    presenter = Presenter()
    presenter.start_probe(device_probe().start())
    runner = EngineRunner(["phantom", str(tmp_path), "--cases", "1", "--size", "tiny"]).start()
    presenter.start(runner, "segment")
    assert presenter.buttons(SEGMENTED).cancel
    outcome = poll_until_done(presenter)
    _wait_for_probe(presenter)
    assert outcome.status == "ok" and presenter.fraction == 1.0
    import torch

    expected = "GPU found: " if torch.cuda.is_available() else "No GPU found: the CPU will be used."
    assert presenter.device.startswith(expected) or presenter.device == "Apple GPU found (MPS)."


def test_one_job_at_a_time(tmp_path):
    presenter = Presenter()
    presenter.start(EngineRunner([], command=[sys.executable, "-c", "import time; time.sleep(30)"]).start(), "train")
    with pytest.raises(RuntimeError):
        presenter.start(EngineRunner(["phantom"]), "segment")
    presenter.cancel()


def test_model_choices_follow_the_parameter_node():
    mine = [Path("/models/a.pt"), Path("/models/b.pt")]
    items, index = model_choices(mine, "")
    assert [label for label, _path in items] == ["Default model (shipped)", "a", "b"] and index == 0
    assert model_choices(mine, "/models/b.pt")[1] == 2
    items, index = model_choices(mine, "/elsewhere/c.pt")  # restored from a scene: shown, not dropped
    assert items[index] == ("c.pt (file)", "/elsewhere/c.pt") and len(items) == 4


@pytest.mark.slow
def test_real_segmentation_through_the_presenter(tmp_path):
    phantom = EngineRunner(["phantom", str(tmp_path), "--cases", "1", "--size", "tiny", "--seed", "7"]).start()
    presenter = Presenter()
    presenter.start(phantom, "segment")
    assert poll_until_done(presenter).status == "ok"
    args = ["segment", str(tmp_path / "case00.nrrd"), "--output", str(tmp_path / "out"), "--device", "cpu"]
    presenter.start(EngineRunner(args).start(), "segment")
    stages = set()
    outcome = poll_until_done(presenter, timeout=600, during=lambda p: stages.add(p.status.split(":")[0]))
    assert outcome.status == "ok", outcome.message
    assert presenter.fraction == 1.0 and (tmp_path / "out" / "case00.teeth.nrrd").exists()
    assert {"teeth", "types"} <= stages, stages
