"""Per-tooth surfaces: closed, in the right place for RAS/LPS and oblique grids, written as STL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from TeethSegmentationLib.io.stl import label_surfaces, write_stl_per_tooth
from TeethSegmentationLib.io.volume import Volume

vtk = pytest.importorskip("vtk")


def _oblique_matrix() -> np.ndarray:
    angle = np.deg2rad(20)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = rot @ np.diag([-0.5, 0.6, 0.4])  # also a flipped axis (negative determinant)
    matrix[:3, 3] = [12.0, -30.0, 5.0]
    return matrix


def _two_teeth(matrix: np.ndarray) -> Volume:
    i, j, k = np.ogrid[:40, :36, :44]
    array = np.zeros((40, 36, 44), np.uint8)
    array[(i - 12) ** 2 + (j - 15) ** 2 + (k - 20) ** 2 <= 36] = 11
    array[((i - 28) / 7.0) ** 2 + ((j - 18) / 5.0) ** 2 + ((k - 24) / 9.0) ** 2 <= 1] = 46
    return Volume(array, matrix, space="LPS")


def _open_edges(poly) -> int:
    edges = vtk.vtkFeatureEdges()
    edges.SetInputData(poly)
    edges.BoundaryEdgesOn()
    edges.NonManifoldEdgesOn()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    return edges.GetOutput().GetNumberOfCells()


def _centroid(poly) -> np.ndarray:
    mass = vtk.vtkMassProperties()
    mass.SetInputData(poly)
    mass.Update()
    centre = vtk.vtkCenterOfMass()
    centre.SetInputData(poly)
    centre.SetUseScalarsAsWeights(False)
    centre.Update()
    return np.array(centre.GetCenter())


@pytest.mark.parametrize("space", ["RAS", "LPS"])
@pytest.mark.parametrize("matrix", [np.diag([0.5, 0.5, 0.5, 1.0]), _oblique_matrix()], ids=["axis", "oblique"])
def test_surfaces_closed_and_in_place(space: str, matrix: np.ndarray) -> None:
    volume = _two_teeth(matrix)
    surfaces = label_surfaces(volume, space=space)
    assert sorted(surfaces) == [11, 46]
    for fdi, poly in surfaces.items():
        assert poly.GetNumberOfCells() > 100
        assert _open_edges(poly) == 0
        expected = volume.ijk_to_ras_points(np.argwhere(volume.array == fdi).mean(axis=0))[0]
        if space == "LPS":
            expected *= [-1, -1, 1]
        assert np.linalg.norm(_centroid(poly) - expected) < 1.0


def test_write_stl_per_tooth(tmp_path: Path) -> None:
    volume = _two_teeth(_oblique_matrix())
    paths = write_stl_per_tooth(volume, tmp_path / "stl")
    assert [p.name for p in paths] == ["tooth_11.stl", "tooth_46.stl"]
    assert sorted(p.name for p in (tmp_path / "stl").iterdir()) == ["tooth_11.stl", "tooth_46.stl"]
    reader = vtk.vtkSTLReader()
    reader.SetFileName(str(paths[1]))
    reader.Update()
    poly = reader.GetOutput()
    assert poly.GetNumberOfCells() > 100
    expected = volume.ijk_to_ras_points(np.argwhere(volume.array == 46).mean(axis=0))[0] * [-1, -1, 1]
    assert np.linalg.norm(_centroid(poly) - expected) < 1.0


def _surface_per_tooth_by_full_passes(volume: Volume, space: str) -> dict:
    """The surfaces as first computed: one whole-volume comparison per tooth for its box (the reference)."""
    from TeethSegmentationLib import fdi as labels
    from TeethSegmentationLib.io.stl import _world_matrix, surface

    result = {}
    for value in (int(v) for v in np.unique(volume.array)):
        if labels.is_tooth_label(value):
            where = np.argwhere(volume.array == value)
            lo, hi = where.min(axis=0), where.max(axis=0) + 1
            mask = np.pad(volume.array[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] == value, 1)
            result[value] = surface(mask, _world_matrix(volume, lo - 1, space))
    return result


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("matrix", [np.diag([0.4, 0.4, 0.4, 1.0]), _oblique_matrix()], ids=["axis", "oblique"])
def test_one_pass_surfaces_are_the_per_tooth_ones(matrix: np.ndarray, workers: int) -> None:
    """A phantom's teeth, an unnumbered tooth and a non-tooth value: each tooth's mesh (vertex and triangle
    counts, coordinates, triangles) is the one a full pass per tooth gives, made in one thread or several, and
    the non-tooth value has none."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    from TeethSegmentationLib.phantom import make_phantom

    array = make_phantom(3, size="small", fov="crop").labels.array.astype(np.uint8)
    array[:3, :3, :3] = 100  # an unnumbered tooth
    array[-2:, -2:, -2:] = 9  # not a tooth label
    volume = Volume(array, matrix, space="LPS")
    got, want = label_surfaces(volume, space="RAS", workers=workers), _surface_per_tooth_by_full_passes(volume, "RAS")
    assert sorted(got) == sorted(want) and 100 in got and 9 not in got and len(got) > 20
    for value, poly in want.items():
        assert got[value].GetNumberOfPoints() == poly.GetNumberOfPoints() > 0
        assert got[value].GetNumberOfPolys() == poly.GetNumberOfPolys()
        np.testing.assert_array_equal(vtk_to_numpy(got[value].GetPoints().GetData()),
                                      vtk_to_numpy(poly.GetPoints().GetData()))
        np.testing.assert_array_equal(vtk_to_numpy(got[value].GetPolys().GetConnectivityArray()),
                                      vtk_to_numpy(poly.GetPolys().GetConnectivityArray()))


def test_tooth_boxes_are_find_objects_on_the_whole_map() -> None:
    """Only the labelled box is visited: the boxes are still those of the whole map, teeth only (not the
    background or values that are no tooth), whatever the labels' dtype."""
    from scipy import ndimage

    from TeethSegmentationLib.io.stl import tooth_boxes

    rng = np.random.default_rng(3)
    array = np.zeros((60, 50, 40), np.uint8)
    for value in (11, 36, 48, 100):
        lo = rng.integers(5, 30, 3)
        array[tuple(slice(int(a), int(a) + 6) for a in lo)] = value
    array[40:45, 2:4, 30:33] = 99  # not a tooth label
    whole = ndimage.find_objects(array)
    for dtype in (np.uint8, np.uint16, np.int32):
        assert tooth_boxes(array.astype(dtype)) == {v: whole[v - 1] for v in (11, 36, 48, 100)}
    assert tooth_boxes(np.zeros((4, 4, 4), np.uint8)) == {}
