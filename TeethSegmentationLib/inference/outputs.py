"""A scan's output files: checked before any work, written into a private staging folder, published as one set.

The set of a scan ``NAME`` is ``NAME.teeth.nrrd``, ``NAME.seg.nrrd``, ``NAME.report.json`` and, when
asked for, ``NAME.types.nrrd`` and the folder ``NAME_stl/``. Publishing moves the previous set aside
and the new one in, with SIGINT/SIGTERM held back for those few renames: a reader finds the old set
or the new one, never a mix, and an STL folder is replaced as a whole. Links in the output folder are
moved aside, never followed. A staging folder left by a killed run (``.NAME.PID.*.partial``) is removed
by the next run, or rolled forward when the kill came in the middle of publishing.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from TeethSegmentationLib import __version__
from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.events import NullReporter, Reporter
from TeethSegmentationLib.inference.pipeline import SegmentOptions, SegmentResult, segment_volume
from TeethSegmentationLib.inference.reading import ReadScan, read_scan
from TeethSegmentationLib.io.output_folder import check_output_folder, output_name
from TeethSegmentationLib.io.read_write import write_volume
from TeethSegmentationLib.io.volume import Volume
from TeethSegmentationLib.nets.model_file import TeethModel

SET_SUFFIXES = (".teeth.nrrd", ".seg.nrrd", ".types.nrrd", ".report.json", "_stl")
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_READY = "publishing"  # marker in a staging folder: its set is complete and being moved into place
_REPLACED = "replaced"  # the previous set, moved aside while publishing


def build_report(
    source: Path, volume: Volume, result: SegmentResult, model: TeethModel, outputs: dict[str, str]
) -> dict[str, Any]:
    return {
        "input": str(source),
        "input_shape": list(volume.shape),
        "input_spacing_mm": [round(float(s), 6) for s in volume.spacing],
        "software_version": __version__,
        "device": result.device,
        "model": {"path": model.source, **model.describe()},
        "timings_s": result.timings,
        "warnings": result.warnings,
        "tooth_count": len(result.teeth),
        "teeth": [tooth.__dict__ for tooth in result.teeth],
        "outputs": outputs,
    }


def _write_outputs(
    staging: Path, name: str, volume: Volume, result: SegmentResult, options: SegmentOptions
) -> dict[str, Path]:
    """Every output into ``staging``; returns {kind: staged path}. The STL files, the slowest, are written in a
    thread while the label maps are (VTK and zlib let go of the GIL), and are waited for before returning."""
    from TeethSegmentationLib.io.seg_nrrd import write_segmentation

    stl, stl_folder = None, staging / f"{name}_stl"
    if options.stl:
        stl_folder.mkdir()
        stl = _Background(_write_stl, result.fdi, stl_folder, options.stl_space)
    try:
        staged = {"teeth": write_volume(result.fdi, staging / f"{name}.teeth.nrrd", reference=volume)}
        staged["seg"] = staging / f"{name}.seg.nrrd"
        write_segmentation(result.fdi, staged["seg"], developing={t.fdi for t in result.teeth if t.developing})
        if options.nine_class:
            staged["types"] = write_volume(result.types, staging / f"{name}.types.nrrd", reference=volume)
    except BaseException:
        if stl is not None:  # no writer left behind in a staging folder about to be removed
            stl.wait()
        raise
    if stl is not None:
        stl.join()
        staged["stl"] = stl_folder
    return staged


def _write_stl(fdi: Volume, folder: Path, space: str) -> None:
    from TeethSegmentationLib.io.stl import write_stl_per_tooth

    write_stl_per_tooth(fdi, folder, space=space)


class _Background:
    """``work(*args)`` in a daemon thread (a cancelled run exits without waiting for it); ``join`` waits and
    raises what it raised."""

    def __init__(self, work: Any, *args: Any) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work, *args), daemon=True)
        self._thread.start()

    def _run(self, work: Any, *args: Any) -> None:
        try:
            work(*args)
        except BaseException as error:  # re-raised in the caller's thread by join
            self._error = error

    def wait(self) -> None:
        self._thread.join()

    def join(self) -> None:
        self.wait()
        if self._error is not None:
            raise self._error


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT/SIGTERM wait until the block is done, then act as they came (the run is cancelled as usual).

    Held in Python, not with a thread signal mask: the OS may hand a signal to any of torch's threads."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: came.append(signum)) for s in HELD_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if came:
            signal.raise_signal(came[0])


def publish_set(staging: Path, output_dir: Path, name: str) -> None:
    """Replace the scan's previous set in ``output_dir`` by the one in ``staging`` (see the module doc)."""
    with _signals_held():
        items = sorted(p.name for p in staging.iterdir() if not p.name.startswith("."))
        (staging / _READY).write_text(json.dumps({"name": name, "items": items}), encoding="utf-8")
        _finish_publishing(staging, output_dir)


def _finish_publishing(staging: Path, output_dir: Path) -> None:
    """Move the old set aside (but not what is already the new set), then the rest of the new set in.

    Also what a later run does with the staging folder of a run killed while publishing (roll forward)."""
    plan = json.loads((staging / _READY).read_text(encoding="utf-8"))
    names = {f"{plan['name']}{suffix}" for suffix in SET_SUFFIXES}
    if "/" in plan["name"] or not set(plan["items"]) <= names:  # only ever a scan's own set, by plain names
        return
    aside = staging / _REPLACED
    aside.mkdir(exist_ok=True)
    for suffix in SET_SUFFIXES:
        target = output_dir / f"{plan['name']}{suffix}"
        already_new = target.name in plan["items"] and not os.path.lexists(staging / target.name)
        if os.path.lexists(target) and not already_new:
            _remove(aside / target.name)
            os.replace(target, aside / target.name)  # a link is moved as a link, never followed
    for item in plan["items"]:
        if os.path.lexists(staging / item):
            os.replace(staging / item, output_dir / item)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def clean_stale_staging(output_dir: Path) -> None:
    """Staging folders of runs that no longer exist: rolled forward if they died publishing, else removed."""
    if not output_dir.is_dir():
        return
    for folder in output_dir.glob(".*.partial"):
        pid = _owner(folder)
        if pid is None or _alive(pid) or folder.is_symlink() or not folder.is_dir():
            continue
        if (folder / _READY).exists():
            _finish_publishing(folder, output_dir)
        shutil.rmtree(folder, ignore_errors=True)


def _owner(folder: Path) -> int | None:
    """The pid in ``.NAME.PID.RANDOM.partial``."""
    parts = folder.name.rsplit(".", 3)
    return int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@contextmanager
def _staging_folder(output_dir: Path, name: str) -> Iterator[Path]:
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}.", suffix=".partial", dir=output_dir))
    try:
        yield staging
    except OSError as error:
        if error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise InputError(f"The disk holding {output_dir} is full; free some space and run again.") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def segment_file(
    path: str | os.PathLike,
    output_dir: str | os.PathLike,
    model: TeethModel,
    options: SegmentOptions | None = None,
    reporter: Reporter | None = None,
    scan: ReadScan | None = None,
) -> dict[str, Any]:
    """Segment one file or DICOM folder; writes NAME.teeth.nrrd, NAME.seg.nrrd, NAME.report.json (+ options).
    ``scan``: ``path`` already read (by ``read_scan``)."""
    options = options or SegmentOptions()
    reporter = reporter or NullReporter()
    output_dir = check_output_folder(output_dir)
    if options.stl_space not in ("LPS", "RAS"):
        raise InputError(f"Unknown STL space {options.stl_space!r}; use LPS or RAS.")
    scan = scan or read_scan(path, options.series_uid, reporter)
    source, volume, read_s = scan.source, scan.volume, scan.seconds
    result = segment_volume(volume, model, options, reporter)
    result.timings = {"read": read_s, **result.timings}
    for warning in result.warnings:
        reporter.log(warning, "warning")
    name = output_name(source)
    output_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(output_dir)
    with _staging_folder(output_dir, name) as staging:
        write_start = time.perf_counter()
        reporter.progress("write", 0.0, "writing outputs")
        staged = _write_outputs(staging, name, volume, result, options)
        outputs = {kind: str(output_dir / p.name) for kind, p in staged.items()}
        outputs["report"] = str(output_dir / f"{name}.report.json")
        result.timings["write"] = round(time.perf_counter() - write_start, 3)
        report = build_report(source, volume, result, model, outputs)
        (staging / f"{name}.report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        publish_set(staging, output_dir, name)
        reporter.progress("write", 1.0, f"{len(result.teeth)} teeth written to {output_dir}")
    return report
