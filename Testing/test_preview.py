"""preview.py: a PNG of four slices with the labels overlaid, from memory or from files."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from TeethSegmentationLib.cli import main  # noqa: E402
from TeethSegmentationLib.phantom import make_phantom, write_phantoms  # noqa: E402
from TeethSegmentationLib.presentation.slices_picture import _slice_indices, preview_files, render_slices  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 5000


def test_render_slices_writes_png(tmp_path):
    case = make_phantom(3, size="tiny")
    path = render_slices(case.image, case.labels, tmp_path / "sub" / "case.png", title="seed 3")
    assert path == tmp_path / "sub" / "case.png" and _is_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["case.png"]  # no temporary file left behind


def test_render_without_labels(tmp_path):
    case = make_phantom(4, size="tiny", grey="uint8")
    assert _is_png(render_slices(case.image, None, tmp_path / "plain.png"))


def test_slices_go_through_the_crowns():
    case = make_phantom(5, size="tiny", convention="ras_identity")
    lab = case.labels.array
    idx = _slice_indices(lab, lab.shape)
    assert ((lab[:, :, idx["upper"]] >= 11) & (lab[:, :, idx["upper"]] <= 28)).sum() > 20
    assert ((lab[:, :, idx["lower"]] >= 31) & (lab[:, :, idx["lower"]] <= 48)).sum() > 20
    assert idx["upper"] > idx["lower"]


def test_preview_files_and_cli_preview(tmp_path, capsys):
    info = write_phantoms(tmp_path / "a", 1, 2, size="tiny")[0]
    png = preview_files(info["files"]["image"], info["files"]["labels"], tmp_path / "a" / "from_files.png")
    assert _is_png(png)
    code = main(["phantom", str(tmp_path / "b"), "--cases", "1", "--size", "tiny", "--preview", "--events"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert str(tmp_path / "b" / "case00.png") in result["files"]
    assert _is_png(tmp_path / "b" / "case00.png")


def test_pictures_show_an_unnumbered_tooth_in_grey(tmp_path):
    """A result holding an unnumbered tooth (label 100) renders in slices and surfaces (it once raised)."""
    from TeethSegmentationLib.fdi import UNNUMBERED_COLOR, label_color
    from TeethSegmentationLib.io.stl import label_surfaces
    from TeethSegmentationLib.presentation.render3d import render_surfaces

    case = make_phantom(1, size="tiny")
    labels = np.asarray(case.labels.array).copy()
    labels[labels == labels.max()] = 100
    result = case.labels.with_array(labels)
    assert render_slices(case.image, result, tmp_path / "slices.png").stat().st_size > 1000
    assert render_surfaces(label_surfaces(result, space="RAS"), tmp_path / "surfaces.png").stat().st_size > 1000
    assert label_color(100) == UNNUMBERED_COLOR and label_color(11) != UNNUMBERED_COLOR
