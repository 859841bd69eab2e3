"""What the module's widget shows, decided without Qt: button states, status, progress, log and outcomes.

The widget binds Qt signals to a :class:`Presenter` and copies its state onto the widgets; everything
that decides what the user sees lives here and is tested against real engine processes. Two runners
are kept apart: the *job* (segment or train), which owns the buttons, status and progress bar, and the
*device probe*, which only ever writes the device line and never gates a button.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from TeethSegmentationLib.runner import EngineRunner

Translate = Callable[[str], str]


def _same(text: str) -> str:
    return text


@dataclass(frozen=True)
class Inputs:
    """What the parameter node and the scene hold, as plain values."""

    input_name: str = ""  # the input volume's name; "" when none is chosen
    output_name: str = ""  # the chosen output segmentation's name; "" makes "<input> teeth"
    segment_count: int = 0  # segments in the output segmentation
    training_pairs: int = 0


@dataclass(frozen=True)
class Buttons:
    segment: bool
    segment_tooltip: str
    cancel: bool
    export: bool
    correct: bool
    train: bool
    cancel_train: bool


@dataclass(frozen=True)
class Outcome:
    """How a job ended: ``status`` is the runner's exit status (ok, failed, bad_input, cancelled)."""

    task: str
    status: str
    message: str
    details: str
    runner: EngineRunner


class Presenter:
    """State of one module widget: the running job, the device probe, status text, progress and new log lines."""

    def __init__(self, tr: Translate = _same) -> None:
        self.tr = tr
        self.job: EngineRunner | None = None
        self.task = ""  # "segment" or "train" while a job runs
        self.probe: EngineRunner | None = None
        self.status = ""
        self.fraction = 0.0
        self.device = ""
        self._log: list[str] = []

    @property
    def busy(self) -> bool:
        return self.job is not None

    def buttons(self, inputs: Inputs) -> Buttons:
        tr, busy = self.tr, self.busy
        if not inputs.input_name:
            tooltip = tr("Select an input volume.")
        elif busy:
            tooltip = tr("Running: wait for it to finish or press Cancel.")
        else:
            output = inputs.output_name or tr("{volume} teeth").format(volume=inputs.input_name)
            tooltip = tr("Find and number the teeth of {volume} into '{output}'.").format(
                volume=inputs.input_name, output=output)
        has_segments = inputs.segment_count > 0 and not busy
        return Buttons(
            segment=bool(inputs.input_name) and not busy, segment_tooltip=tooltip,
            cancel=busy and self.task == "segment", export=has_segments, correct=has_segments,
            train=not busy and inputs.training_pairs > 0, cancel_train=busy and self.task == "train",
        )

    # --- the job

    def start(self, runner: EngineRunner, task: str) -> None:
        """Follow a started job (one at a time)."""
        if self.busy:
            raise RuntimeError("a job is already running")
        self.job, self.task = runner, task
        self.status, self.fraction = self.tr("Starting..."), 0.0

    def cancel(self) -> None:
        """End the job and everything it started; its folder is removed."""
        if self.job is None:
            return
        job, self.job, self.task = self.job, None, ""
        job.cancel()
        job.cleanup()
        self.status, self.fraction = self.tr("Cancelled."), 0.0

    def poll(self) -> Outcome | None:
        """Take new events of the job and the probe; the job's outcome once it has ended."""
        self._poll_probe()
        job = self.job
        if job is None:
            return None
        self._show(job.poll())
        if job.running:
            return None
        self._show(job.poll())
        self.job, task = None, self.task
        self.task = ""
        return self._outcome(job, task)

    def _outcome(self, job: EngineRunner, task: str) -> Outcome:
        status = job.exit_status or "failed"
        if status == "cancelled":
            message = self.tr("Cancelled.")
        elif status == "ok":
            message = self.status
        else:
            message = job.error_message or self.tr("The engine stopped with exit code {code}.").format(
                code=job.returncode)
        if status != "ok":
            self.status, self.fraction = message, 0.0
        return Outcome(task, status, message, "\n".join(job.stderr_tail), job)

    def finished(self, message: str) -> None:
        """The widget has used a job's result: say so, with a full progress bar."""
        self.status, self.fraction = message, 1.0

    def failed(self, message: str) -> None:
        self.status, self.fraction = message, 0.0

    def note(self, message: str) -> None:
        """A result that is not a job's (an export, a correction): the status line only."""
        self.status = message

    def _show(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event.get("event")
            if kind == "progress":
                self.fraction = float(event.get("fraction", self.fraction))
                stage, message = event.get("stage", ""), event.get("message", "")
                self.status = f"{stage}: {message}" if message else stage or self.status
            elif kind == "log":
                self._log.append(str(event.get("message", "")))
            elif kind == "start":
                self._log.append(self.tr("Started {command} (engine {version}).").format(
                    command=event.get("command", ""), version=event.get("version", "?")))
            elif kind == "result":
                self.fraction = 1.0
            elif kind == "error":
                self.status = str(event.get("message", ""))
                self._log.append(self.status)

    def take_log(self) -> list[str]:
        """Log lines that arrived since the last call."""
        lines, self._log = self._log, []
        return lines

    # --- the device probe

    def start_probe(self, runner: EngineRunner) -> None:
        self.probe = runner
        self.device = self.tr("Checking for a GPU...")

    @property
    def needs_probe(self) -> bool:
        return self.probe is None and not self.device

    def _poll_probe(self) -> None:
        probe = self.probe
        if probe is None:
            return
        probe.poll()
        if probe.running:
            return
        probe.poll()
        self.probe = None
        self.device = self._device_text(probe)

    def _device_text(self, probe: EngineRunner) -> str:
        result = probe.result
        if probe.exit_status != "ok" or result is None:
            reason = probe.error_message or self.tr("exit code {code}").format(code=probe.returncode)
            return self.tr("Could not check for a GPU: {reason}").format(reason=reason)
        if result.get("cuda"):
            return self.tr("GPU found: {name}").format(name=result.get("name") or "CUDA")
        if result.get("mps"):
            return self.tr("Apple GPU found (MPS).")
        return self.tr("No GPU found: the CPU will be used.")


def model_choices(user_models: list[Path], current: str, tr: Translate = _same) -> tuple[list[tuple[str, str]], int]:
    """The model combo box: (label, path) items and the index that shows ``current`` (the parameter node's path).

    "" is the shipped default model; a file outside the user's model folder gets an item of its own, so the
    combo box and the file field always show the same model.
    """
    items = [(tr("Default model (shipped)"), "")] + [(path.stem, str(path)) for path in user_models]
    paths = [path for _label, path in items]
    if current and current not in paths:
        items.append((tr("{name} (file)").format(name=Path(current).name), current))
        paths.append(current)
    return items, paths.index(current) if current in paths else 0
