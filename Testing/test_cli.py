"""cli: the exit codes (0 ok, 1 failure, 2 bad input, 130 cancelled), one sentence, JSON lines with --events.

Real commands only: an unknown command, a missing folder, a real run stopped by SIGTERM. Exit 1 with one
sentence (a diverging training) is a row of test_hostile_training.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from TeethSegmentationLib import __version__, cli

ROOT = Path(__file__).resolve().parents[1]


def test_version_exits_0(capsys):
    assert cli.main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_usage_errors_are_one_sentence_and_exit_2(capsys):
    assert cli.main(["nosuchcommand"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith("(see 'teethseg --help').") and "Traceback" not in err


def test_bad_input_with_events_is_a_json_error_event(tmp_path, capsys):
    code = cli.main(["evaluate", "--pred", str(tmp_path / "none"), "--truth", str(tmp_path), "--events"])
    out = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in out]  # stdout is JSON lines only
    assert code == 2 and [r["event"] for r in records] == ["start", "error"]
    assert records[-1]["code"] == 2 and records[-1]["message"].endswith(".")


def test_sigterm_cancels_with_130_and_an_error_event(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "TeethSegmentationLib", "phantom", str(tmp_path / "out"), "--cases", "40",
            "--size", "tiny", "--events"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines = [process.stdout.readline()]  # "start": the command is running
    while "progress" not in lines[-1] and lines[-1]:
        lines.append(process.stdout.readline())
    process.send_signal(signal.SIGTERM)
    rest, _err = process.communicate(timeout=120)
    records = [json.loads(line) for line in lines + rest.splitlines() if line.strip()]
    assert process.returncode == 130, records[-1]
    assert records[-1] == {"event": "error", "time": records[-1]["time"], "message": "Cancelled.", "code": 130}


def test_segment_reports_progress_before_it_imports_torch(tmp_path):
    """The first progress event comes once the inputs are checked, before torch (seconds) is imported."""
    from TeethSegmentationLib.io.read_write import write_volume
    from TeethSegmentationLib.phantom import make_phantom

    source = write_volume(make_phantom(0, size="tiny").image, tmp_path / "scan.nrrd")
    child = f"""
import argparse, sys
from TeethSegmentationLib.commands import segment

class FirstProgress:
    def progress(self, stage, fraction, message="", **extra):
        print(stage, "torch" in sys.modules)
        sys.exit(0)

    def log(self, message, level="info"):
        pass

parser = argparse.ArgumentParser()
segment.add_arguments(parser)
segment.run(parser.parse_args([{str(source)!r}, "-o", {str(tmp_path / "out")!r}]), FirstProgress())
"""
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["load", "False"]


def test_the_command_line_ends_with_every_event_flushed_and_its_exit_code(tmp_path):
    """`python -m TeethSegmentationLib` and `teethseg` end through cli.exit_now (os._exit: torch's teardown
    takes half a second): every JSON line still reaches the pipe, the last one is the result or the error,
    and the exit code is the command's."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    engine = [sys.executable, "-m", "TeethSegmentationLib"]
    ok = subprocess.run([*engine, "phantom", str(tmp_path / "out"), "--size", "tiny", "--events"],
                        capture_output=True, text=True, env=env, timeout=120)
    records = [json.loads(line) for line in ok.stdout.splitlines()]
    assert ok.returncode == 0 and records[0]["event"] == "start" and records[-1]["event"] == "result", ok.stderr
    bad = subprocess.run([*engine, "segment", str(tmp_path / "none.nrrd"), "-o", str(tmp_path / "o"), "--events"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and json.loads(bad.stdout.splitlines()[-1])["code"] == 2
    assert bad.stderr.strip().endswith(".")
    script = "import sys; sys.argv = ['teethseg', '--version']; from TeethSegmentationLib.cli import console_main\n"
    version = subprocess.run([sys.executable, "-c", script + "console_main()"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert version.returncode == 0 and version.stdout.strip() == f"teethseg {__version__}"


def test_under_a_profiler_the_command_line_exits_the_usual_way(tmp_path):
    """cli.exit_now leaves the exit to the interpreter under cProfile (or coverage), which then writes its file."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    profile = tmp_path / "version.prof"
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "TeethSegmentationLib",
                           "--version"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and profile.stat().st_size > 0, done.stderr
