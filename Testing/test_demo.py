"""The demo's picture pieces (fast) and the whole demo on the shipped model (slow)."""

import json

import numpy as np
import pytest

from TeethSegmentationLib.io.volume import Volume


def _two_teeth() -> Volume:
    i, j, k = np.mgrid[:40, :30, :30]
    array = np.zeros((40, 30, 30), np.uint8)
    array[(i - 12) ** 2 + (j - 15) ** 2 + (k - 15) ** 2 < 36] = 11
    array[(i - 28) ** 2 + (j - 15) ** 2 + (k - 15) ** 2 < 49] = 21
    return Volume(array, np.diag([0.5, 0.5, 0.5, 1.0]), "RAS")


def test_surfaces_render_to_a_png(tmp_path):
    pytest.importorskip("vtk")
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from TeethSegmentationLib.io.stl import label_surfaces
    from TeethSegmentationLib.presentation.render3d import polydata_triangles, render_surfaces

    surfaces = label_surfaces(_two_teeth(), space="RAS")
    triangles = polydata_triangles(surfaces[21])
    assert triangles.shape[1:] == (3, 3) and len(triangles) > 50
    centre = triangles.reshape(-1, 3).mean(axis=0)
    assert np.allclose(centre, [14.0, 7.5, 7.5], atol=0.6)  # RAS mm of the second sphere's centre
    picture = imread(render_surfaces(surfaces, tmp_path / "teeth.png", title="two teeth"))
    assert picture.shape[0] > 100 and picture[..., :3].std() > 0.01  # something was drawn


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    from TeethSegmentationLib.cli import main
    from TeethSegmentationLib.nets.model_file import DEFAULT_MODEL_PATH

    if not DEFAULT_MODEL_PATH.exists():
        pytest.skip("the default model has not been built")
    assert main(["demo", "--output", str(tmp_path), "--device", "cpu"]) == 0
    metrics = json.loads((tmp_path / "demo.metrics.json").read_text())
    assert metrics["dice_binary"] > 0.85
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert list((tmp_path / "demo_stl").glob("tooth_*.stl"))
