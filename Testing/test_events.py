"""events: JSON lines on stdout for the Slicer module, the terminal progress bar, stage slices, jsonable."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import torch

from TeethSegmentationLib.events import JsonEventWriter, NullReporter, StageReporter, TerminalReporter, jsonable


def test_jsonable_gives_exactly_the_built_in_types():
    value = {
        1: np.float32(0.5),
        "a": np.arange(3),
        "path": Path("/tmp/x"),
        "nan": float("nan"),
        "inf": np.float64(np.inf),
        "version": torch.__version__,
        "tensor": torch.tensor([1.5, 2.5]),
        "tuple": (np.int64(3), None, True),
    }
    plain = jsonable(value)
    assert plain == {
        "1": 0.5,
        "a": [0, 1, 2],
        "path": "/tmp/x",
        "nan": None,
        "inf": None,
        "version": str(torch.__version__),
        "tensor": [1.5, 2.5],
        "tuple": [3, None, True],
    }
    assert type(plain["version"]) is str and type(plain["tuple"][0]) is int
    json.dumps(plain, allow_nan=False)  # strict JSON


def test_writer_emits_one_flushed_json_object_per_line():
    stream = io.StringIO()
    writer = JsonEventWriter(stream)
    writer.progress("teeth", 1.7, "done", eta_seconds=float("nan"))
    writer.log("careful", "warning")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["progress", "log"]
    assert records[0]["fraction"] == 1.0 and records[0]["eta_seconds"] is None and records[0]["stage"] == "teeth"
    assert records[1] == {"event": "log", "time": records[1]["time"], "level": "warning", "message": "careful"}


def test_stage_reporter_maps_a_sub_task_into_a_slice_of_its_stage():
    stream = io.StringIO()
    sub = StageReporter(JsonEventWriter(stream), "types", 0.2, 0.6)
    sub.progress("ignored", 0.5, "half")
    sub.log("note")
    progress, note = (json.loads(line) for line in stream.getvalue().splitlines())
    assert progress["stage"] == "types" and math.isclose(progress["fraction"], 0.4) and note["message"] == "note"


def test_terminal_reporter_writes_lines_when_not_a_terminal():
    stream = io.StringIO()
    reporter = TerminalReporter(stream)
    reporter.progress("teeth", 1.0, "found")
    reporter.log("hello", "warning")
    lines = stream.getvalue().splitlines()
    assert lines[0].strip().startswith("teeth [") and "100.0% found" in lines[0] and lines[1] == "warning: hello"


def test_null_reporter_logs_through_logging(caplog):
    with caplog.at_level("INFO", logger="TeethSegmentationLib"):
        NullReporter().log("to the log", "info")
        NullReporter().progress("teeth", 0.5)
    assert [r.getMessage() for r in caplog.records] == ["to the log"]
