"""What the module's widget shows, decided without Qt: button states, status, progress, log and outcomes.

The widget binds Qt signals to a :class:`Presenter` and copies its state onto the widgets; everything
that decides what the user sees lives here and is tested against real engine processes. Two runners
are kept apart: the *job* (segment, train or finetune), which owns the buttons, status and progress bar, and
the *device probe*, which only ever writes the device line and never gates a button. A finished fine-tuning
leaves a verdict (:meth:`Presenter.finetune_verdict`): the new model becomes the default only when it did
better on the held-back scan, else it waits as the *candidate* until the user makes it the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from TeethSegmentationLib.runner import EngineRunner

Translate = Callable[[str], str]
# A fine-tuning reports each stage from 0 to 1 ("train teeth" and "train types" share one 0..1): the span of the
# progress bar each stage fills, by stage-name prefix, so the bar only ever moves forward.
FINETUNE_SPANS = (("prepare cases", 0.0, 0.15), ("replay phantoms", 0.15, 0.2), ("prepare ", 0.2, 0.25),
                  ("train ", 0.25, 0.9), ("held-back scan", 0.9, 1.0))
STAGED_MODEL = "model.pt"  # where a fine-tuning job writes its model, inside the job's private folder


def _same(text: str) -> str:
    return text


@dataclass(frozen=True)
class Inputs:
    """What the parameter node and the scene hold, as plain values."""

    input_name: str = ""  # the input volume's name; "" when none is chosen
    output_name: str = ""  # the chosen output segmentation's name; "" makes "<input> teeth"
    segment_count: int = 0  # segments in the output segmentation
    training_pairs: int = 0
    library_cases: int = 0  # cases in the user's case library
    case_selected: bool = False  # a row of the case library is selected
    user_default: bool = False  # the user has a default model of their own (not the shipped one)


@dataclass(frozen=True)
class Buttons:
    segment: bool
    segment_tooltip: str
    cancel: bool
    export: bool
    correct: bool
    train: bool
    cancel_train: bool
    add_case: bool = False
    remove_case: bool = False
    improve: bool = False
    cancel_improve: bool = False
    make_default: bool = False
    revert: bool = False


@dataclass(frozen=True)
class Outcome:
    """How a job ended: ``status`` is the runner's exit status (ok, failed, bad_input, cancelled)."""

    task: str
    status: str
    message: str
    details: str
    runner: EngineRunner


@dataclass(frozen=True)
class FinetuneVerdict:
    """What to do with a fine-tuned model: ``install`` it as the default now (it did better on the held-back
    scan), or ``ask`` the user (it did not, or there was no held-back scan); ``message`` says which and why."""

    model: str
    install: bool
    ask: bool
    message: str


class Presenter:
    """State of one module widget: the running job, the device probe, status text, progress and new log lines."""

    def __init__(self, tr: Translate = _same) -> None:
        self.tr = tr
        self.job: EngineRunner | None = None
        self.task = ""  # "segment", "train" or "finetune" while a job runs
        self.candidate = ""  # a fine-tuned model the user may make the default (it was not made so by itself)
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
            add_case=has_segments and bool(inputs.input_name), remove_case=not busy and inputs.case_selected,
            improve=not busy and inputs.library_cases > 0, cancel_improve=busy and self.task == "finetune",
            make_default=not busy and bool(self.candidate), revert=not busy and inputs.user_default,
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

    # --- fine-tuning

    def finetune_verdict(self, result: dict[str, Any] | None, model: str) -> FinetuneVerdict:
        """Decide on a finished fine-tuning's ``result`` event; ``model`` is where the new model now lies.

        Better on the held-back scan: it becomes the default. Not better, or no held-back scan (one case):
        it stays a candidate, offered with "Make it my default"; the default model stays as it was.
        """
        result = result or {}
        figure = held_back_text(result.get("held_back"), self.tr)
        better = result.get("better")
        if better is True:
            verdict = FinetuneVerdict(model, True, False, figure + " " + self.tr("The new model is now your default."))
        elif better is False:
            verdict = FinetuneVerdict(model, False, True, figure + " " + self.tr(
                "It did not do better, so your default model stays; press 'Make it my default' to use it anyway."))
        else:
            verdict = FinetuneVerdict(model, False, True, figure + " " + self.tr(
                "Press 'Make it my default' to use it for the next Segment."))
        self.candidate = model if verdict.ask else ""
        skipped = [str(s) for s in result.get("skipped", [])]
        self.finished(" ".join([verdict.message, *skipped]))
        return FinetuneVerdict(model, verdict.install, verdict.ask, self.status)

    def default_changed(self, message: str) -> None:
        """The user made a model the default, or reverted to the shipped one: no candidate is waiting."""
        self.candidate = ""
        self.note(message)

    def note(self, message: str) -> None:
        """A result that is not a job's (an export, a correction): the status line only."""
        self.status = message

    def _show(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            kind = event.get("event")
            if kind == "progress":
                self.fraction = self._overall(str(event.get("stage", "")), float(event.get("fraction", self.fraction)))
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

    def _overall(self, stage: str, fraction: float) -> float:
        """The progress bar's fraction for a stage's own ``fraction`` (a fine-tuning's stages: their spans)."""
        if self.task != "finetune":
            return fraction
        for prefix, low, high in FINETUNE_SPANS:
            if stage.startswith(prefix):
                return max(self.fraction, low + (high - low) * min(max(fraction, 0.0), 1.0))
        return self.fraction

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


def model_choices(user_models: list[Path], current: str, tr: Translate = _same,
                  user_default: dict[str, Any] | None = None) -> tuple[list[tuple[str, str]], int]:
    """The model combo box: (label, path) items and the index that shows ``current`` (the parameter node's path).

    "" is the default model: the user's own (``user_default``, its card; {} without one) when there is one,
    else the shipped one. A file outside the user's model folder gets an item of its own, so the combo box
    and the file field always show the same model.
    """
    if user_default is None:
        default = tr("Default model (shipped)")
    else:
        default = tr("Default model (yours, {date})").format(date=str(user_default.get("date") or "")[:10] or "?")
    items = [(default, "")] + [(path.stem, str(path)) for path in user_models]
    paths = [path for _label, path in items]
    if current and current not in paths:
        items.append((tr("{name} (file)").format(name=Path(current).name), current))
        paths.append(current)
    return items, paths.index(current) if current in paths else 0


def held_back_text(held_back: dict[str, Any] | None, tr: Translate = _same) -> str:
    """"On your held-back scan: per-tooth Dice before 0.xx, after 0.yy." from a result's or card's ``held_back``."""
    try:
        before = float(held_back["before"]["dice_per_tooth"])
        after = float(held_back["after"]["dice_per_tooth"])
    except (KeyError, TypeError, ValueError):
        return tr("No held-back scan (only one usable case): add a second corrected scan for a before/after figure.")
    return tr("On your held-back scan: per-tooth Dice before {before:.2f}, after {after:.2f}.").format(
        before=before, after=after)


def card_text(card: dict[str, Any] | None, path: str, tr: Translate = _same) -> str:
    """The model card under the model list: cases, date, parent model and the held-back figure.

    ``path`` "" is the shipped model; a model without a card (trained with Train, or another file) says so.
    """
    if not path:
        return tr("The shipped model (trained on synthetic phantoms).")
    if not card:
        return tr("{name}: no card (not made by Improve model).").format(name=Path(path).name)
    parent = card.get("parent") or {}
    text = tr("Fine-tuned on {cases} of your cases on {date}, from {parent}.").format(
        cases=card.get("cases", "?"), date=str(card.get("date") or "?")[:10], parent=parent.get("name") or "?")
    return text + " " + held_back_text(card.get("held_back"), tr)


def case_rows(cases: list[Any]) -> list[tuple[str, str, str]]:
    """The case library table: (case id, title, added) of each ``case_library.LibraryCase``, oldest first."""
    return [(case.case_id, case.title or case.case_id, case.added.replace("T", " ")) for case in cases]


def finetune_runner(library_root: str | os.PathLike, folder: str | os.PathLike, init: str | None = None,
                    device: str = "auto", python: str | None = None, extra: Sequence[str] = ()) -> EngineRunner:
    """A fine-tuning job (not started) on the case library, all of whose files stay in ``folder``.

    The model goes to ``folder/model.pt`` (published by the Logic when the job ends well) and the engine's
    temporary files under ``folder/tmp``, so a Cancel (tree-kill, then ``cleanup`` removes ``folder``) leaves
    no model and nothing else behind, even when the kill comes before the engine could clean up itself.
    ``init`` None fine-tunes the shipped model.
    """
    folder = Path(folder)
    temp = folder / "tmp"
    temp.mkdir(parents=True, exist_ok=True)
    args = ["finetune", "--data", str(library_root), "--output", str(folder / STAGED_MODEL), "--device", device]
    if init:
        args += ["--init", str(init)]
    env = {**os.environ, "TMPDIR": str(temp), "TEMP": str(temp), "TMP": str(temp)}
    return EngineRunner([*args, *extra], python=python, env=env, temp_folder=folder)
