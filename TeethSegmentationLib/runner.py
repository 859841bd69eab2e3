"""Run the engine as a child process and follow its JSON-line events, without Qt.

The Slicer module starts ``python -m TeethSegmentationLib <command> ... --events`` through
:class:`EngineRunner`, polls it from a timer (:meth:`EngineRunner.poll` never blocks) and cancels it
with a tree-kill: PythonSlicer is a launcher, so ending the launcher alone would leave Python running.

Two reader threads turn the child's output into events: stdout lines are parsed as JSON (a line
that is not JSON becomes a ``log`` event) and stderr lines are kept as a tail and forwarded as
``log`` events with ``"stream": "stderr"``.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from TeethSegmentationLib.errors import ExitCode

ENGINE_PACKAGE = "TeethSegmentationLib"
STDERR_TAIL_LINES = 200
_STATUS = {ExitCode.OK: "ok", ExitCode.BAD_INPUT: "bad_input", ExitCode.CANCELLED: "cancelled"}


# Which accelerator torch sees, asked of a child Python: importing torch in Slicer's GUI thread takes seconds.
DEVICE_PROBE = (
    "import json, torch; cuda = torch.cuda.is_available(); "
    "mps = bool(getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available()); "
    "print(json.dumps({'event': 'result', 'cuda': cuda, 'mps': mps, "
    "'name': torch.cuda.get_device_name(0) if cuda else ''}))"
)


def engine_folder() -> Path:
    """The folder that holds the ``TeethSegmentationLib`` package (in Slicer: the module's folder)."""
    return Path(__file__).resolve().parent.parent


def engine_command(subcommand_args: list[str], python: str | None = None) -> list[str]:
    """``[python, -m, TeethSegmentationLib, *args, --events]``."""
    args = [str(a) for a in subcommand_args]
    if "--events" not in args:
        args.append("--events")
    return [python or sys.executable, "-m", ENGINE_PACKAGE, *args]


def engine_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: this process's) that finds the engine and writes unbuffered UTF-8."""
    child = dict(os.environ if env is None else env)
    paths = [str(engine_folder())] + [p for p in child.get("PYTHONPATH", "").split(os.pathsep) if p]
    child["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    child["PYTHONUNBUFFERED"] = "1"
    child["PYTHONIOENCODING"] = "utf-8"
    return child


def _stderr_level(line: str) -> str:
    head = line.split(" ", 1)[0].upper()
    return {"WARNING": "warning", "ERROR": "error", "CRITICAL": "error", "DEBUG": "debug"}.get(head, "info")


def parse_event_line(line: str) -> dict[str, Any] | None:
    """One stdout line -> an event dict; a line that is not a JSON event becomes a ``log`` event."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if isinstance(record, dict) and isinstance(record.get("event"), str):
        return record
    return {"event": "log", "level": "info", "message": text, "stream": "stdout"}


def kill_process_tree(pid: int, timeout: float = 0.5) -> None:
    """Terminate a process and all its descendants (children first), then kill what survives ``timeout``."""
    import psutil  # here, not at the top: the module loads at Slicer's start, maybe before psutil is installed

    try:
        parent = psutil.Process(pid)
        family = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _gone, alive = psutil.wait_procs(family, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout)


class EngineRunner:
    """A background child process whose stdout carries JSON-line events.

    ``args`` are the engine's subcommand arguments (``["segment", "in.nrrd", "--output", "out"]``),
    run as ``python -m TeethSegmentationLib ... --events`` with ``python`` (default: this interpreter;
    in Slicer, PythonSlicer). ``command`` replaces that whole command line (any program that writes
    JSON lines). ``temp_folder`` is a folder the runner owns and :meth:`cleanup` removes.
    """

    def __init__(
        self,
        args: list[str],
        python: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        temp_folder: str | os.PathLike | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.command = [str(a) for a in command] if command else engine_command(args, python)
        self.env = engine_environment(env)
        self.cwd = cwd
        self.temp_folder = Path(temp_folder) if temp_folder else None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.events: list[dict[str, Any]] = []  # every event polled so far
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._process: subprocess.Popen | None = None
        self._threads: list[threading.Thread] = []
        self._cancelled = False
        self._error_event: dict[str, Any] | None = None

    # --- life cycle

    def start(self) -> EngineRunner:
        if self._process is not None:
            raise RuntimeError("this runner was already started")
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
        self._process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            creationflags=flags,
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(self._process.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self._process.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _read_stdout(self, stream: IO[str]) -> None:
        for line in iter(stream.readline, ""):
            event = parse_event_line(line)
            if event is not None:
                self._queue.put(event)
        stream.close()

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in iter(stream.readline, ""):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            self.stderr_tail.append(text)
            self._queue.put({"event": "log", "level": _stderr_level(text), "message": text, "stream": "stderr"})
        stream.close()

    def poll(self) -> list[dict[str, Any]]:
        """New events since the last call; never blocks. Call once more after ``running`` turns False."""
        new: list[dict[str, Any]] = []
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            if event.get("event") == "error":
                self._error_event = event
            new.append(event)
        self.events.extend(new)
        return new

    @property
    def started(self) -> bool:
        return self._process is not None

    @property
    def running(self) -> bool:
        """True until the child has exited and both readers have reached the end of its output."""
        if self._process is None:
            return False
        return self._process.poll() is None or any(t.is_alive() for t in self._threads)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        """The child's exit code; 130 (cancelled) after :meth:`cancel`, whatever the killed child returned."""
        code = None if self._process is None else self._process.poll()
        return int(ExitCode.CANCELLED) if code is not None and self._cancelled else code

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def exit_status(self) -> str | None:
        """``ok``, ``failed``, ``bad_input`` or ``cancelled``; None while running or before start."""
        code = self.returncode
        if code is None:
            return None
        if self._cancelled:
            return "cancelled"
        try:
            return _STATUS.get(ExitCode(code), "failed")
        except ValueError:
            return "failed"

    @property
    def error_message(self) -> str:
        """The engine's one-sentence error, else the last stderr line of a failed run, else ''."""
        self.poll()
        if self._error_event and self._error_event.get("message"):
            return str(self._error_event["message"])
        if self.exit_status in ("failed", "bad_input") and self.stderr_tail:
            return self.stderr_tail[-1]
        return ""

    @property
    def result(self) -> dict[str, Any] | None:
        """The final ``result`` event polled so far, if any."""
        return next((e for e in reversed(self.events) if e.get("event") == "result"), None)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the child and its output; the exit code, or None if it is still running."""
        if self._process is None:
            return None
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for thread in self._threads:
            thread.join(timeout)
        return self.returncode

    def cancel(self, timeout: float = 0.5) -> None:
        """End the child and every process it started; ``exit_status`` becomes ``cancelled``."""
        if self._process is None or self._process.poll() is not None:
            return
        self._cancelled = True
        kill_process_tree(self._process.pid, timeout)
        self.wait(timeout)

    def cleanup(self) -> None:
        """Remove the temporary folder this runner owns (if any)."""
        if self.temp_folder is not None:
            shutil.rmtree(self.temp_folder, ignore_errors=True)


def device_probe(python: str | None = None) -> EngineRunner:
    """A runner, not yet started, for :data:`DEVICE_PROBE` (its ``result`` event: ``cuda``, ``mps``, ``name``)."""
    return EngineRunner([], command=[python or sys.executable, "-c", DEVICE_PROBE])
