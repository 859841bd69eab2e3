"""Issue 13, the rest of the table: grey values that overflow, DICOM slices missing, outputs published as one
set (STL folder, links, cancel, kill -9, full disk, umask), --threads, and cancels that come early."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hostile_files import dicom_series, files_under, modify_dicom, run_cli, scan, segment, tiny_model, write_nrrd

from TeethSegmentationLib import cli
from TeethSegmentationLib.errors import Cancelled, InputError
from TeethSegmentationLib.inference import outputs
from TeethSegmentationLib.io.read_write import read_volume
from TeethSegmentationLib.nets.normalize import image_content, intensity_window, normalize
from TeethSegmentationLib.runner import EngineRunner

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


# ------------------------------------------------------------------ grey values


@pytest.mark.parametrize("scale, dtype", [(1e300, np.float64), (-3e38 / 2000, np.float32), (1e-30, np.float64)])
def test_normalisation_cannot_overflow(scale, dtype) -> None:
    """Any linear scaling gives the same network input, even at the ends of the float range."""
    reference = scan().astype(np.float64)
    scaled = (reference * scale).astype(dtype)
    expected = normalize(reference, window=intensity_window(reference))
    image = image_content(scaled)
    got = normalize(image, window=intensity_window(image))
    sign_flipped = scale < 0
    assert np.isfinite(got).all()
    if not sign_flipped:
        np.testing.assert_allclose(got, expected, atol=1e-5)
    else:
        assert got.min() < got.max()


def test_nan_and_inf_voxels_become_the_minimum() -> None:
    array = scan().astype(np.float32)
    array[0, 0, :3] = [np.nan, np.inf, -np.inf]
    image = image_content(array)
    assert np.isfinite(image).all() and image[0, 0, 0] == image[0, 0, 2] == 200
    with pytest.raises(InputError, match="no image content"):
        image_content(np.full((4, 4, 4), -3e38, np.float32))


def test_a_missing_dicom_slice_is_resampled_at_the_true_positions(tmp_path) -> None:
    pytest.importorskip("pydicom")
    files = dicom_series(tmp_path / "dcm", slices=8)
    full = read_volume(tmp_path / "dcm")
    files[5].unlink()  # slice 5 missing: 4 -> 6 is one 1 mm step in a 0.5 mm series
    holed = read_volume(tmp_path / "dcm")
    assert holed.shape == full.shape
    np.testing.assert_allclose(holed.ijk_to_ras, full.ijk_to_ras, atol=1e-6)
    for k in (0, 3, 4, 6, 7):  # the real slices stay where they were
        np.testing.assert_array_equal(holed.array[..., k], full.array[..., k])


def test_mixed_dicom_slice_spacing_is_resampled_onto_the_finest_step(tmp_path) -> None:
    pytest.importorskip("pydicom")
    files = dicom_series(tmp_path / "dcm", slices=8)
    even = read_volume(tmp_path / "dcm")
    for file, z in zip(files[5:], (3.0, 4.0, 5.0), strict=True):  # 0.5 mm steps, then 1 mm steps
        modify_dicom([file], ImagePositionPatient=[0, 0, z])
    mixed = read_volume(tmp_path / "dcm")
    assert mixed.shape[2] == 11 and np.allclose(mixed.spacing, 0.5)
    for k_even, k_mixed in ((0, 0), (4, 4), (5, 6), (7, 10)):  # real slices lie at their true positions
        np.testing.assert_array_equal(mixed.array[..., k_mixed], even.array[..., k_even])


# ------------------------------------------------------------------ outputs published as one set


def _staged(tmp: Path, teeth: str, stl: list[str]) -> Path:
    staging = tmp / "out" / ".scan.1.abc.partial"
    (staging / "scan_stl").mkdir(parents=True)
    (staging / "scan.teeth.nrrd").write_text(teeth)
    for name in stl:
        (staging / "scan_stl" / name).write_text(teeth)
    return staging


def _old_set(out: Path, stl_dir: Path | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for suffix in (".teeth.nrrd", ".seg.nrrd", ".report.json"):
        (out / f"scan{suffix}").write_text("old")
    if stl_dir is None:
        (out / "scan_stl").mkdir()
        (out / "scan_stl" / "tooth_99.stl").write_text("old")
    else:
        (out / "scan_stl").symlink_to(stl_dir, target_is_directory=True)


def test_the_new_set_replaces_the_old_one_whole(tmp_path) -> None:
    _old_set(tmp_path / "out")
    outputs.publish_set(_staged(tmp_path, "new", ["tooth_11.stl"]), tmp_path / "out", "scan")
    assert files_under(tmp_path / "out") >= {"scan.teeth.nrrd", "scan_stl", "scan_stl/tooth_11.stl"}
    assert not (tmp_path / "out" / "scan_stl" / "tooth_99.stl").exists()  # stale STL files go
    assert not (tmp_path / "out" / "scan.seg.nrrd").exists()  # no old file left beside the new set


def test_a_linked_stl_folder_is_not_followed(tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    _old_set(tmp_path / "out", stl_dir=elsewhere)
    outputs.publish_set(_staged(tmp_path, "new", ["tooth_11.stl"]), tmp_path / "out", "scan")
    assert files_under(elsewhere) == {"keep.txt"}
    assert not (tmp_path / "out" / "scan_stl").is_symlink()


def test_a_cancel_while_publishing_leaves_the_whole_new_set(tmp_path, monkeypatch) -> None:
    _old_set(tmp_path / "out")
    staging = _staged(tmp_path, "new", ["tooth_11.stl"])
    real_replace, sent = os.replace, []

    def replace_and_cancel(src, dst):
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGTERM))
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", replace_and_cancel)
    previous = signal.signal(signal.SIGTERM, cli._raise_cancelled)
    try:
        with pytest.raises(Cancelled):
            outputs.publish_set(staging, tmp_path / "out", "scan")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (tmp_path / "out" / "scan.teeth.nrrd").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "out" / "scan_stl").iterdir()) == ["tooth_11.stl"]


def test_staging_of_killed_runs_is_cleaned_or_rolled_forward(tmp_path) -> None:
    out = tmp_path / "out"
    _old_set(out)
    dead = out / ".other.999999999.xyz.partial"  # killed while writing: removed
    dead.mkdir()
    (dead / ".partial-1-other.teeth.nrrd").write_text("half")
    killed = _staged(tmp_path, "new", ["tooth_11.stl"]).rename(out / ".scan.999999998.abc.partial")
    (killed / "publishing").write_text(json.dumps({"name": "scan", "items": ["scan.teeth.nrrd", "scan_stl"]}))
    (out / "scan.teeth.nrrd").unlink()  # killed after moving the old label map aside
    alive = out / f".mine.{os.getpid()}.abc.partial"
    alive.mkdir()
    outputs.clean_stale_staging(out)
    assert files_under(out) == {"scan.teeth.nrrd", "scan_stl", "scan_stl/tooth_11.stl", alive.name}
    assert (out / "scan.teeth.nrrd").read_text() == "new"


def test_a_full_disk_is_said_and_leaves_nothing(tmp_path, model, capsys, monkeypatch) -> None:
    source = write_nrrd(tmp_path / "scan.nrrd", scan())

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("TeethSegmentationLib.io.seg_nrrd.write_segmentation", full)
    code, lines = run_cli(segment([source], tmp_path / "out", model), capsys)
    assert code == 2 and len(lines) == 1 and "is full" in lines[0], lines
    assert files_under(tmp_path / "out") == set()


@pytest.mark.parametrize("where", ["folder", "parent"])
def test_a_read_only_output_is_refused_before_any_work(where, tmp_path, model, capsys, monkeypatch) -> None:
    source = write_nrrd(tmp_path / "scan.nrrd", scan())
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root may write anywhere (CI runs as root): answer as the folder's mode says
        real_access = os.access

        def access(path, mode, *args, **kwargs):
            if Path(path) == locked and mode & os.W_OK:
                return False
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(outputs.os, "access", access)
    out = locked if where == "folder" else locked / "out"
    try:
        code, lines = run_cli(segment([source], out, model), capsys)
    finally:
        locked.chmod(0o755)
    assert code == 2 and len(lines) == 1 and "read-only" in lines[0], lines
    assert not any(locked.iterdir())


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_output_permissions_follow_the_umask(umask, tmp_path, model, capsys) -> None:
    source = write_nrrd(tmp_path / "scan.nrrd", scan())
    previous = os.umask(umask)
    try:
        code, lines = run_cli(segment([source], tmp_path / "out", model), capsys)
    finally:
        os.umask(previous)
    assert code == 0, lines
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_threads_are_clamped_to_the_cores(tmp_path, model, capsys) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        code, _ = run_cli(segment([write_nrrd(tmp_path / "s.nrrd", scan())], tmp_path / "o", model,
                                  "--threads", "100000"), capsys)
        assert code == 0 and torch.get_num_threads() == os.cpu_count()
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------ cancels that come early


def _caught(pid: int, signum: int) -> bool:
    """Whether the process has a handler for ``signum`` yet (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_early_signal_exits_130_with_an_error_event(signum, tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "TeethSegmentationLib", "segment", "x.nrrd", "-o", str(tmp_path / "o"), "--events"]
    child = subprocess.Popen(  # with SIGINT at its default, as a terminal starts it (a test may ignore it here)
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while not _caught(child.pid, signal.SIGTERM) and time.monotonic() < deadline:  # our __main__ has begun
        time.sleep(0.002)
    child.send_signal(signum)  # while the engine is still importing
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert json.loads(out.splitlines()[-1])["event"] == "error" and err.strip().splitlines() == ["Cancelled."]
    assert not (tmp_path / "o").exists()


def test_the_runner_says_cancelled_after_a_cancel() -> None:
    runner = EngineRunner([], command=[sys.executable, "-c", "import time; time.sleep(60)"]).start()
    runner.cancel()
    assert runner.returncode == 130 and runner.exit_status == "cancelled"


def test_a_disk_already_full_is_refused_before_any_work(tmp_path, model, capsys, monkeypatch) -> None:
    source = write_nrrd(tmp_path / "scan.nrrd", scan())
    usage = outputs.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda path: usage._replace(free=4096))
    code, lines = run_cli(segment([source], tmp_path / "out", model), capsys)
    assert code == 2 and len(lines) == 1 and "is full" in lines[0], lines
    assert not (tmp_path / "out").exists()
