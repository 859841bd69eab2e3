"""Progress and messages: JSON lines for the Slicer module, a progress bar for a terminal.

With ``--events`` stdout carries one JSON object per line and nothing else::

    {"event": "start", "command": "segment", ...}
    {"event": "progress", "stage": "teeth", "fraction": 0.42, "message": "..."}
    {"event": "log", "level": "info", "message": "..."}
    {"event": "result", ...}
    {"event": "error", "message": "...", "code": 2}

Library code never prints: it receives a :class:`Reporter` and calls ``progress``/``log``.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import Any, Protocol, TextIO

log = logging.getLogger("TeethSegmentationLib")


class Reporter(Protocol):
    def progress(self, stage: str, fraction: float, message: str = "", **extra: Any) -> None: ...

    def log(self, message: str, level: str = "info") -> None: ...


class NullReporter:
    """Reports to the ``logging`` module only; the default for library calls."""

    def progress(self, stage: str, fraction: float, message: str = "", **extra: Any) -> None:
        pass

    def log(self, message: str, level: str = "info") -> None:
        log.log(logging.getLevelName(level.upper()), message)


def jsonable(value: Any) -> Any:
    """Plain JSON values of exactly the built-in types: numpy scalars/arrays, paths and str/int
    subclasses (e.g. torch's TorchVersion) become str/int/float; NaN and inf become null."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    return str(value)


class JsonEventWriter:
    """One JSON object per line on ``stream`` (stdout), flushed at once so a reader sees it live."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def emit(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **jsonable(fields)}
        self.stream.write(json.dumps(record, allow_nan=False) + "\n")
        self.stream.flush()

    def progress(self, stage: str, fraction: float, message: str = "", **extra: Any) -> None:
        self.emit("progress", stage=stage, fraction=float(min(max(fraction, 0.0), 1.0)), message=message, **extra)

    def log(self, message: str, level: str = "info") -> None:
        self.emit("log", level=level, message=message)


class TerminalReporter:
    """A one-line progress bar and plain messages on stderr for a person at a terminal."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self._last = 0.0
        self._bar_open = False

    def progress(self, stage: str, fraction: float, message: str = "", **extra: Any) -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < 0.1:
            return
        self._last = now
        filled = int(round(self.width * min(max(fraction, 0.0), 1.0)))
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"\r{stage:>10} [{bar}] {100 * fraction:5.1f}% {message}"[:160]
        if self.stream.isatty():
            self.stream.write(text.ljust(100))
            self._bar_open = fraction < 1.0
            if not self._bar_open:
                self.stream.write("\n")
        elif fraction >= 1.0 or message:
            self.stream.write(text.lstrip("\r") + "\n")
        self.stream.flush()

    def log(self, message: str, level: str = "info") -> None:
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False
        prefix = "" if level == "info" else f"{level}: "
        self.stream.write(f"{prefix}{message}\n")
        self.stream.flush()


class StageReporter:
    """Maps a sub-task's 0..1 progress into a slice [start, end] of a parent stage."""

    def __init__(self, parent: Reporter, stage: str, start: float = 0.0, end: float = 1.0) -> None:
        self.parent, self.stage, self.start, self.end = parent, stage, start, end

    def progress(self, stage: str, fraction: float, message: str = "", **extra: Any) -> None:
        self.parent.progress(self.stage, self.start + (self.end - self.start) * fraction, message, **extra)

    def log(self, message: str, level: str = "info") -> None:
        self.parent.log(message, level)
