"""The segmentation pipeline: geometry on LPS/RAS/oblique inputs, outputs, atomicity and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import nrrd
import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from TeethSegmentationLib.fdi import UNNUMBERED_LABEL_BASE
from TeethSegmentationLib.inference import pipeline as segment_module
from TeethSegmentationLib.inference.forming_molars import with_forming_third_molars
from TeethSegmentationLib.inference.outputs import segment_file
from TeethSegmentationLib.inference.paste import labels_to_input_grid
from TeethSegmentationLib.inference.pipeline import SegmentOptions, segment_volume
from TeethSegmentationLib.io.read_write import write_volume
from TeethSegmentationLib.io.volume import Volume
from TeethSegmentationLib.nets.model_file import TeethModel, new_model, save_model

ROOT = Path(__file__).resolve().parent.parent
OUTPUT_SUFFIXES = (".teeth.nrrd", ".seg.nrrd", ".report.json", ".types.nrrd")


# ------------------------------------------------------------------ stand-ins: threshold "networks", instances


class ThresholdNet(nn.Module):
    """Bright (normalised > 0.5) is tooth; stage 2 calls every tooth voxel type 1 (central incisor)."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.config = {"in_channels": 1, "out_channels": out_channels, "n_blocks": 3, "start_filters": 4, "dim": 3}
        self.divisor = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = 20 * (x[:, :1] - 0.5)
        if self.config["out_channels"] == 1:
            return score
        return torch.cat([-score, score, *([torch.zeros_like(score)] * 7)], dim=1)


def threshold_model() -> TeethModel:
    return TeethModel(ThresholdNet(1), ThresholdNet(9), spacing_mm=0.5, teeth_spacing_mm=1.0, patch_size=16)


@dataclass
class StandInTooth:
    fdi: int
    type: int
    confidence: float
    voxel_count: int
    centroid_ras: np.ndarray
    label: int = 0


@dataclass
class StandInResult:
    fdi_map: np.ndarray
    teeth: list
    unassigned: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def standin_label_teeth(teeth_prob, type_probs, ijk_to_ras, reporter=None, numbers=(11, 21, 31, 41, 12, 22)):
    """Each bright blob a tooth numbered from ``numbers``; a value >= 100 makes it an unnumbered tooth."""
    components, count = ndimage.label(teeth_prob > 0.5)
    fdi_map = np.zeros(teeth_prob.shape, np.uint8)
    result = StandInResult(fdi_map, [])
    for index, value in zip(range(1, count + 1), numbers, strict=False):
        where = components == index
        fdi_map[where] = value
        centre = ijk_to_ras[:3, :3] @ np.argwhere(where).mean(axis=0) + ijk_to_ras[:3, 3]
        numbered = value < UNNUMBERED_LABEL_BASE
        tooth = StandInTooth(value if numbered else 0, 1, 0.9, int(where.sum()), centre, value)
        (result.teeth if numbered else result.unassigned).append(tooth)
        if not numbered:
            result.warnings.append(f"kept as unnumbered tooth (label {value})")
    return result


@pytest.fixture(autouse=True)
def _instances_standin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segment_module, "label_instances", _standin_instances())


def _standin_instances(**options):
    """``label_instances`` replaced by the stand-in (which has no use for contacts)."""

    def run(teeth_prob, type_probs, ijk_to_ras, reporter, contacts=None):
        return standin_label_teeth(teeth_prob, type_probs, ijk_to_ras, reporter, **options)

    return run


# ------------------------------------------------------------------ inputs


def _matrix(kind: str) -> np.ndarray:
    m = np.eye(4)
    if kind == "RAS":
        m[:3, :3] = np.diag([0.5, 0.5, 0.5])
    elif kind == "LPS":  # an LPS-style scan: i to the left, j to the back (as most DICOM)
        m[:3, :3] = np.diag([-0.6, -0.6, 0.5])
    else:  # oblique, anisotropic, with a swapped axis
        a = np.deg2rad(25)
        rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        m[:3, :3] = rot @ np.array([[0, 0.5, 0], [-0.6, 0, 0], [0, 0, 0.55]])
    m[:3, 3] = [-7.0, 13.0, 42.0]
    return m


def phantom(kind: str, shape: tuple[int, int, int] = (52, 48, 44)) -> Volume:
    """Two bright 'teeth' (ellipsoids) in soft tissue, in physical millimetres around the volume's centre."""
    matrix = _matrix(kind)
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    ras = ijk @ matrix[:3, :3].T + matrix[:3, 3]
    centre = matrix[:3, :3] @ ((np.array(shape) - 1) / 2) + matrix[:3, 3]
    rel = ras - centre
    tooth_a = (((rel - [-4, 0, 0]) / [2.5, 3.0, 4.0]) ** 2).sum(1) <= 1
    tooth_b = (((rel - [4.5, 1, 0]) / [2.5, 3.0, 4.0]) ** 2).sum(1) <= 1
    array = np.full(len(ras), 200, np.int16)
    array[tooth_a | tooth_b] = 2000
    rng = np.random.default_rng(0)
    array = (array + rng.normal(0, 20, len(ras))).astype(np.int16)
    return Volume(array.reshape(shape), matrix, space="RAS" if kind == "RAS" else "LPS")


# ------------------------------------------------------------------ geometry


@pytest.mark.parametrize("kind", ["RAS", "LPS", "oblique"])
def test_label_map_lies_on_its_input(kind: str, tmp_path: Path) -> None:
    volume = phantom(kind)
    source = write_volume(volume, tmp_path / f"scan_{kind}.nrrd")
    report = segment_file(source, tmp_path / "out", threshold_model(), SegmentOptions(device="cpu", nine_class=True))
    out = tmp_path / "out"
    stem = f"scan_{kind}"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{stem}.teeth.nrrd", f"{stem}.seg.nrrd", f"{stem}.report.json", f"{stem}.types.nrrd"]
    )
    labels_, header = nrrd.read(str(out / f"{stem}.teeth.nrrd"))
    _, input_header = nrrd.read(str(source))
    assert labels_.shape == volume.shape and labels_.dtype == np.uint8
    assert header["space"] == input_header["space"]
    np.testing.assert_allclose(header["space directions"], input_header["space directions"], atol=1e-9)
    np.testing.assert_allclose(header["space origin"], input_header["space origin"], atol=1e-9)
    truth = volume.array > 1000
    found = labels_ > 0
    dice = 2 * (truth & found).sum() / (truth.sum() + found.sum())
    assert dice > 0.85, dice
    assert report["tooth_count"] == 2
    assert {t["fdi"] for t in report["teeth"]} == {11, 21}
    written = json.loads((out / f"{stem}.report.json").read_text())
    assert written["teeth"][0]["name"] and written["model"]["types_arch"]["out_channels"] == 9
    assert set(written["timings_s"]) >= {"read", "teeth", "types", "instances", "write"}
    for tooth in written["teeth"]:
        label_centre = volume.ijk_to_ras_points(np.argwhere(labels_ == tooth["fdi"]).mean(axis=0))[0]
        assert np.linalg.norm(label_centre - tooth["centroid_ras"]) < 1.0
    types_ = nrrd.read(str(out / f"{stem}.types.nrrd"))[0]
    assert set(np.unique(types_)) == {0, 1}


def test_unnumbered_tooth_and_instance_warnings_reach_every_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(segment_module, "label_instances", _standin_instances(numbers=(11, 100)))
    volume = phantom("LPS")
    source = write_volume(volume, tmp_path / "scan.nrrd")
    segment_file(source, tmp_path / "out", threshold_model(), SegmentOptions(device="cpu"))
    labels_ = nrrd.read(str(tmp_path / "out" / "scan.teeth.nrrd"))[0]
    assert set(np.unique(labels_)) == {0, 11, 100}
    header = nrrd.read_header(str(tmp_path / "out" / "scan.seg.nrrd"))
    segments = {header[f"Segment{i}_LabelValue"]: header[f"Segment{i}_Name"] for i in range(2)}
    assert segments == {"11": "11 upper right central incisor", "100": "Unnumbered tooth 1"}
    report = json.loads((tmp_path / "out" / "scan.report.json").read_text())
    unnumbered = [t for t in report["teeth"] if not t["numbered"]]
    assert [(t["fdi"], t["label"], t["name"]) for t in unnumbered] == [(100, 100, "Unnumbered tooth 1")]
    assert unnumbered[0]["voxel_count"] == (labels_ == 100).sum()
    assert "kept as unnumbered tooth (label 100)" in report["warnings"]


def test_fine_blob_goes_back_to_the_right_input_voxels() -> None:
    fine_matrix = np.diag([0.5, 0.5, 0.5, 1.0])
    fine_matrix[:3, 3] = [10.0, -20.0, 5.0]
    fine = Volume(np.zeros((40, 40, 40), np.uint8), fine_matrix, space="RAS")
    centre = fine.ijk_to_ras_points([20, 18, 22])[0]
    ijk = np.stack(np.meshgrid(*[np.arange(40)] * 3, indexing="ij"), -1)
    fine.array[np.linalg.norm(ijk - [20, 18, 22], axis=-1) * 0.5 <= 5.0] = 36
    reference = phantom("oblique", shape=(60, 56, 50))
    reference.ijk_to_ras[:3, 3] = centre - reference.ijk_to_ras[:3, :3] @ [30, 27, 24]
    out = labels_to_input_grid(fine, reference)
    assert out.shape == reference.shape
    rijk = np.stack(np.meshgrid(*[np.arange(s) for s in reference.shape], indexing="ij"), -1).reshape(-1, 3)
    distance = np.linalg.norm(reference.ijk_to_ras_points(rijk) - centre, axis=1).reshape(reference.shape)
    assert (out[distance < 4.5] == 36).all()
    assert (out[distance > 5.5] == 0).all()


def test_an_instance_observer_sees_the_instance_steps_inputs_and_result() -> None:
    seen = []
    result = segment_volume(
        phantom("oblique"), threshold_model(), SegmentOptions(device="cpu"), on_instances=lambda *a: seen.append(a)
    )
    (foreground, probs, ijk_to_ras, contacts, found), = seen
    assert contacts is None  # a model without a contacts network
    assert foreground.ndim == 3 and probs.shape == (9, *foreground.shape) and ijk_to_ras.shape == (4, 4)
    assert np.allclose(np.abs(np.linalg.det(ijk_to_ras[:3, :3])), 0.5**3)  # the fine grid
    assert sorted(t.fdi for t in found.teeth) == sorted(t.fdi for t in result.teeth) != []


def test_no_teeth_gives_an_empty_result_with_a_warning() -> None:
    volume = phantom("RAS")
    volume.array[:] = 200
    volume.array[0, 0, 0] = 201  # image content, but nothing like a tooth
    result = segment_volume(volume, threshold_model(), SegmentOptions(device="cpu"))
    assert result.teeth == [] and result.warnings
    assert result.fdi.shape == volume.shape and not result.fdi.array.any()


def test_a_failure_while_writing_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_volume(phantom("LPS"), tmp_path / "scan.nrrd")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("TeethSegmentationLib.io.seg_nrrd.write_segmentation", broken)
    with pytest.raises(OSError):
        segment_file(source, tmp_path / "out", threshold_model(), SegmentOptions(device="cpu"))
    assert list((tmp_path / "out").iterdir()) == []


def test_stl_outputs(tmp_path: Path) -> None:
    pytest.importorskip("vtk")
    source = write_volume(phantom("LPS"), tmp_path / "scan.nii.gz") if _has_nibabel() else None
    source = source or write_volume(phantom("LPS"), tmp_path / "scan.nrrd")
    report = segment_file(source, tmp_path / "out", threshold_model(), SegmentOptions(device="cpu", stl=True))
    stl = Path(report["outputs"]["stl"])
    assert stl.name == "scan_stl"
    assert sorted(p.name for p in stl.iterdir()) == ["tooth_11.stl", "tooth_21.stl"]
    # Written in a thread beside the label maps: the same bytes as writing them alone from the label map.
    from TeethSegmentationLib.io.read_write import read_volume
    from TeethSegmentationLib.io.stl import write_stl_per_tooth

    alone = write_stl_per_tooth(read_volume(report["outputs"]["teeth"]), tmp_path / "alone")
    assert [p.read_bytes() for p in alone] == [(stl / p.name).read_bytes() for p in alone]


def test_stl_error_in_its_thread_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("vtk")
    source = write_volume(phantom("LPS"), tmp_path / "scan.nrrd")

    def full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("TeethSegmentationLib.io.stl.write_stl", full)
    with pytest.raises(OSError, match="disk full"):
        segment_file(source, tmp_path / "out", threshold_model(), SegmentOptions(device="cpu", stl=True))
    assert list((tmp_path / "out").iterdir()) == []


def _has_nibabel() -> bool:
    try:
        import nibabel  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------ the command line as a child process


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = new_model(teeth_arch={"start_filters": 4}, types_arch={"start_filters": 4}, patch_size=16)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(model, path)
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "TeethSegmentationLib", "segment", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _outputs(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(OUTPUT_SUFFIXES) or p.name.endswith("_stl"))


@pytest.mark.parametrize("problem", ["missing", "2d"])
def test_bad_input_exits_2_with_one_sentence(problem: str, tmp_path: Path, tiny_model_file: Path) -> None:
    if problem == "missing":
        source = tmp_path / "nothing.nrrd"
    else:
        source = tmp_path / "slice.nrrd"
        nrrd.write(str(source), np.zeros((20, 30), np.int16))
    out = tmp_path / "out"
    args = _cli(str(source), "--output", str(out), "--model", str(tiny_model_file), "--device", "cpu", "--events")
    done = subprocess.run(args, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].endswith(".") and str(source.name) in lines[0]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[-1]["event"] == "error" and events[-1]["code"] == 2
    assert _outputs(out) == []


def test_events_are_json_lines_and_a_killed_run_leaves_no_output(tmp_path: Path, tiny_model_file: Path) -> None:
    source = write_volume(phantom("LPS", shape=(64, 64, 56)), tmp_path / "scan.nrrd")
    out = tmp_path / "out"
    args = _cli(str(source), "--output", str(out), "--model", str(tiny_model_file), "--device", "cpu", "--events")
    # a complete run: stdout is JSON lines only, ending with the result
    done = subprocess.run(args, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, done.stderr
    assert events[0]["event"] == "start" and events[-1]["event"] == "result"
    assert {e["stage"] for e in events if e["event"] == "progress"} >= {"read", "teeth"}
    for path in (out / name for name in _outputs(out)):
        path.unlink() if path.is_file() else None
    # a run killed mid-way (SIGKILL, no chance to clean up) leaves no output file
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(), cwd=ROOT)
    try:
        for line in child.stdout:
            event = json.loads(line)
            if event["event"] == "progress" and event["stage"] in ("teeth", "types"):
                child.send_signal(signal.SIGKILL)
                break
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    time.sleep(0.1)
    assert _outputs(out) == []


def test_skip_mask_is_the_grown_teeth_on_the_fine_grid() -> None:
    coarse = Volume(np.zeros((20, 20, 20), np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))
    mask = np.zeros(coarse.shape, bool)
    mask[10, 10, 10] = True
    fine = Volume(np.zeros((40, 40, 40), np.float32), np.diag([0.5, 0.5, 0.5, 1.0]))
    fine.ijk_to_ras[:3, 3] = -0.25
    skip = segment_module._skip_mask(coarse, mask, fine, SegmentOptions(margin_mm=2.0))
    assert skip.shape == fine.shape and skip.dtype == bool
    assert skip[20, 20, 20] and skip[20, 20, 24] and not skip[20, 20, 30] and not skip[0, 0, 0]


def test_stage_2_also_looks_at_the_specks_near_the_teeth() -> None:
    """Stage-1 parts too small to keep (a third molar's first cusps) are looked at by stage 2 when they lie
    within the margin of the kept teeth and hold at least ``speck_mm3``; single voxels and far specks are not."""
    coarse = Volume(np.zeros((30, 30, 30), np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))
    mask = np.zeros(coarse.shape, bool)
    mask[10:13, 10:13, 10:13] = True  # the kept teeth
    coarse.array[mask] = 0.9
    coarse.array[16:18, 11:13, 11] = 0.9  # a 4 mm3 speck 3 mm beyond them: looked at
    coarse.array[11, 11, 15] = 0.9  # one voxel within the margin: noise
    coarse.array[25:27, 25:27, 25] = 0.9  # 4 mm3, far away
    fine = Volume(np.zeros((60, 60, 60), np.float32), np.diag([0.5, 0.5, 0.5, 1.0]))
    fine.ijk_to_ras[:3, 3] = -0.25
    options = SegmentOptions(margin_mm=4.0)
    skip = segment_module._skip_mask(coarse, mask, fine, options)
    assert skip[2 * 21, 2 * 12, 2 * 11]  # 4 mm beyond the speck, 8 mm beyond the teeth
    assert not skip[2 * 11, 2 * 11, 2 * 19] and not skip[2 * 26, 2 * 26, 2 * 25]  # 4 mm beyond each
    without = segment_module._skip_mask(coarse, mask, fine, replace(options, speck_mm3=1e9))
    assert not without[2 * 21, 2 * 12, 2 * 11] and (skip | ~without).all()


def _typed(shape: tuple[int, ...], blocks: list[tuple[tuple[slice, ...], int]]) -> tuple[np.ndarray, np.ndarray]:
    """(foreground, 14-class probabilities) with each block sure of its class, background elsewhere."""
    probs = np.zeros((14, *shape), np.float16)
    probs[0] = 1
    for where, cls in blocks:
        probs[(slice(None), *where)] = 0
        probs[(cls, *where)] = 1
    return 1.0 - probs[0].astype(np.float32), probs


def test_a_forming_third_molar_past_the_margin_is_asked_about_whole() -> None:
    """Stage 2's third molar reaching past ``near`` (a crypt behind the second molar) is added where it touches
    the foreground inside; other types past it (bone taken for incisors), and third molars that do not touch,
    are not."""
    shape = (40, 30, 30)
    near = np.zeros(shape, bool)
    near[:20] = True
    bud, incisor, apart = (slice(15, 26), slice(5, 10), slice(5, 10)), (slice(15, 26), slice(15, 20), slice(5, 10)), (
        slice(30, 35), slice(20, 25), slice(20, 25))
    grazing = (slice(20, 25), slice(22, 27), slice(20, 25))  # on the margin, where nothing inside is foreground
    foreground, probs = _typed(shape, [(bud, 8), (incisor, 1), (apart, 8), (grazing, 8)])
    grown = with_forming_third_molars(near, foreground, probs, 0.5)
    assert grown[bud].all() and not grown[20:26, 15:20, 5:10].any() and not grown[apart].any()
    assert not grown[grazing].any()
    assert (grown & ~near).sum() == 6 * 5 * 5 and not near[20:26].any()  # the caller's array is left as it was
    foreground, probs = _typed(shape, [(bud, 7), (apart, 8)])  # a second molar: only a third molar goes on
    assert np.array_equal(with_forming_third_molars(near, foreground, probs, 0.5), near)


def test_a_third_molar_half_past_the_margin_is_one_whole_tooth() -> None:
    """Through the instance step: cut at the margin, a forming 48 is a third of itself (counted as missed); asked
    about whole, it is one tooth with its number."""
    from synthetic_arch import make_arch, probabilities

    from TeethSegmentationLib.instances.teeth import label_teeth

    arch = make_arch(spacing=0.6)
    tooth = arch.labels == 48
    teeth_prob, type_probs = probabilities(arch.labels)
    i = np.arange(tooth.shape[0])[:, None, None]
    first = np.flatnonzero(tooth.any(axis=(1, 2)))
    near = ndimage.binary_dilation(arch.labels > 0, iterations=3) & ~(tooth & (i >= first[0] + 0.35 * len(first)))
    near &= ~(ndimage.binary_dilation(tooth, iterations=3) & ~tooth)  # no margin of 48 either
    assert 0.2 < (near & tooth).mean() / tooth.mean() < 0.5
    grown = with_forming_third_molars(near, teeth_prob, type_probs, 0.5)
    cut = label_teeth(teeth_prob * near, type_probs, arch.ijk_to_ras)
    whole = label_teeth(teeth_prob * grown, type_probs, arch.ijk_to_ras)
    assert (cut.fdi_map[tooth] == 48).mean() < 0.5
    assert (whole.fdi_map[tooth] == 48).mean() > 0.9
    assert {t.fdi for t in whole.teeth} == {t.fdi for t in cut.teeth} | {48}


def test_dentition_reach_in_the_teeth_box_equals_the_whole_grid() -> None:
    """The distance map around the kept components only (their box grown by the gap) reaches the same ones as
    one over the whole grid, with anisotropic voxels."""
    rng = np.random.default_rng(3)
    blobs = ndimage.gaussian_filter(rng.random((64, 56, 48)), 1.5) > 0.56
    components, count = ndimage.label(blobs)
    assert count > 10
    sizes = np.bincount(components.ravel())
    candidates = sizes >= 5
    candidates[0] = False
    spacing = np.array([1.0, 0.8, 1.3])
    kept = np.zeros(len(sizes), bool)
    kept[int(np.argmax(np.where(candidates, sizes, 0)))] = True
    while True:  # the reference: distances over the whole grid
        near = ndimage.distance_transform_edt(~np.isin(components, np.flatnonzero(kept)), sampling=spacing) <= 6.0
        reached = np.zeros(len(sizes), bool)
        reached[np.unique(components[near])] = True
        grown = kept | (reached & candidates)
        if np.array_equal(grown, kept):
            break
        kept = grown
    found = segment_module._reached_from_largest(components, sizes, candidates, spacing, 6.0)
    np.testing.assert_array_equal(found, kept)
    assert 1 < kept.sum() < candidates.sum()


def test_stage_1_keeps_the_dentition_and_drops_distant_bright_parts() -> None:
    """A whole-head scan: the arch, a molar behind a 24 mm gap (three missing teeth) and one more behind it stay;
    a vertebra-like blob 30 mm further, a sinus-wall bit 20 mm above the arch and a speck go."""
    prob = np.zeros((160, 60, 60), np.float32)
    prob[10:40, 20:30, 10:20] = 1.0  # the arch (largest)
    prob[64:72, 20:30, 10:20] = 1.0  # 24 mm behind it
    prob[84:92, 20:30, 10:20] = 1.0  # 12 mm behind that one
    prob[122:130, 20:30, 10:20] = 1.0  # 30 mm further: not dentition
    prob[15:30, 20:30, 40:45] = 1.0  # 20 mm above the arch: not dentition
    prob[5, 50, 55] = 1.0  # a speck
    mask = segment_module._teeth_mask(Volume(prob, np.eye(4)), SegmentOptions())
    assert mask[20, 25, 15] and mask[68, 25, 15] and mask[88, 25, 15]
    assert not mask[125, 25, 15] and not mask[20, 25, 42] and not mask[5, 50, 55]
    assert segment_module._teeth_mask(Volume(prob, np.eye(4)), SegmentOptions(dentition_gap_mm=5.0)).sum() == 30 * 100


def test_a_scan_read_beforehand_is_not_read_again(tmp_path: Path) -> None:
    """`segment` reads the first scan while torch loads and hands it over: segment_file uses it as is."""
    from TeethSegmentationLib.events import NullReporter
    from TeethSegmentationLib.inference.reading import read_scan

    source = write_volume(phantom("RAS"), tmp_path / "scan.nrrd")
    scan = read_scan(source, None, NullReporter())
    source.unlink()  # a second read would now fail
    report = segment_file(source, tmp_path / "out", threshold_model(), SegmentOptions(device="cpu"), scan=scan)
    assert report["timings_s"]["read"] == scan.seconds and (tmp_path / "out" / "scan.teeth.nrrd").is_file()


def test_segment_command_with_two_scans_writes_both(tmp_path: Path) -> None:
    from TeethSegmentationLib.cli import main

    sources = [write_volume(phantom(kind), tmp_path / f"{kind}.nrrd") for kind in ("RAS", "LPS")]
    model = tmp_path / "threshold.pt"
    save_model(new_model(teeth_arch={"start_filters": 4}, types_arch={"start_filters": 4}, patch_size=16), model)
    args = ["segment", *map(str, sources), "-o", str(tmp_path / "out"), "--model", str(model), "--device", "cpu"]
    assert main(args) == 0
    for kind in ("RAS", "LPS"):
        report = json.loads((tmp_path / "out" / f"{kind}.report.json").read_text())
        assert report["input"].endswith(f"{kind}.nrrd") and report["timings_s"]["read"] > 0
