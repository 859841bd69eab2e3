"""Per-tooth surfaces and STL files from an FDI label map, without Slicer (needs ``vtk``).

Each label is cut out in a small padded box, turned into a closed surface (discrete flying
edges), smoothed (windowed sinc), given normals and moved into world coordinates with the volume's
IJK-to-RAS matrix; ``space="LPS"`` (what Slicer's STL export writes by default) negates x and y.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy import ndimage

from TeethSegmentationLib import fdi as labels
from TeethSegmentationLib.atomic import atomic_path
from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.io.volume import RAS_TO_LPS, Volume, bounding_box, translation

SPACES = ("LPS", "RAS")


@functools.cache
def _vtk() -> SimpleNamespace:
    """The few VTK classes the surfaces need, from their own modules: ``import vtk`` loads every module, about
    a second of a run's start; these load in a tenth of it. The classes are the same, so are the meshes."""
    try:
        from vtkmodules.util import numpy_support
        from vtkmodules.vtkCommonDataModel import vtkImageData
        from vtkmodules.vtkCommonTransforms import vtkTransform
        from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkWindowedSincPolyDataFilter
        from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D, vtkTransformPolyDataFilter
        from vtkmodules.vtkIOGeometry import vtkSTLWriter
    except ImportError:
        raise InputError(
            "Writing STL needs the vtk package; install it with 'pip install vtk' (or the [mesh] extra)."
        ) from None
    return SimpleNamespace(
        numpy_support=numpy_support, vtkImageData=vtkImageData, vtkTransform=vtkTransform,
        vtkPolyDataNormals=vtkPolyDataNormals, vtkWindowedSincPolyDataFilter=vtkWindowedSincPolyDataFilter,
        vtkDiscreteFlyingEdges3D=vtkDiscreteFlyingEdges3D, vtkTransformPolyDataFilter=vtkTransformPolyDataFilter,
        vtkSTLWriter=vtkSTLWriter,
    )


def _world_matrix(volume: Volume, offset: np.ndarray, space: str) -> np.ndarray:
    """4x4 from box-local ijk to world (RAS or LPS) millimetres."""
    matrix = volume.ijk_to_ras @ translation(offset)
    return RAS_TO_LPS @ matrix if space == "LPS" else matrix


def _image(mask: np.ndarray) -> Any:
    vtk = _vtk()
    image = vtk.vtkImageData()
    image.SetDimensions(*mask.shape)
    scalars = vtk.numpy_support.numpy_to_vtk(np.ascontiguousarray(mask.astype(np.uint8).ravel(order="F")), deep=True)
    image.GetPointData().SetScalars(scalars)
    return image


def surface(mask: np.ndarray, matrix: np.ndarray, smoothing: float = 0.5) -> Any:
    """Closed, smoothed vtkPolyData of a binary mask (already padded by at least one voxel), in world mm."""
    vtk = _vtk()
    flying = vtk.vtkDiscreteFlyingEdges3D()
    flying.SetInputData(_image(mask))
    flying.SetValue(0, 1)
    flying.ComputeNormalsOff()
    flying.ComputeGradientsOff()
    source = flying
    if smoothing > 0:  # Slicer's mapping of "Smoothing factor" onto the windowed-sinc pass band
        smoother = vtk.vtkWindowedSincPolyDataFilter()
        smoother.SetInputConnection(flying.GetOutputPort())
        smoother.SetNumberOfIterations(20)
        smoother.SetPassBand(pow(10.0, -4.0 * smoothing))
        smoother.BoundarySmoothingOff()
        smoother.FeatureEdgeSmoothingOff()
        smoother.NonManifoldSmoothingOn()
        smoother.NormalizeCoordinatesOn()
        source = smoother
    transform = vtk.vtkTransform()
    transform.SetMatrix(matrix.ravel().tolist())
    moved = vtk.vtkTransformPolyDataFilter()
    moved.SetTransform(transform)
    moved.SetInputConnection(source.GetOutputPort())
    normals = vtk.vtkPolyDataNormals()
    normals.SetInputConnection(moved.GetOutputPort())
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOn()
    normals.SplittingOff()
    normals.Update()
    return normals.GetOutput()


def label_surfaces(
    fdi_volume: Volume, smoothing: float = 0.5, space: str = "LPS", workers: int | None = None
) -> dict[int, Any]:
    """One vtkPolyData per FDI label present, in ``space`` ("LPS" or "RAS") millimetres; ``workers`` threads
    (default: one per core, at most 4) make the teeth's surfaces side by side, each the mesh one thread makes."""
    if space not in SPACES:
        raise InputError(f"Unknown STL space {space!r}; use LPS or RAS.")
    array = np.asarray(fdi_volume.array)

    def tooth(item: tuple[int, tuple[slice, ...]]) -> tuple[int, Any]:
        fdi, box = item
        lo = np.array([s.start for s in box]) - 1  # one voxel of background around the tooth
        return fdi, surface(np.pad(array[box] == fdi, 1), _world_matrix(fdi_volume, lo, space), smoothing)

    with ThreadPoolExecutor(workers or default_workers()) as pool:  # VTK lets go of the GIL: 2 cores, half the time
        return dict(pool.map(tooth, tooth_boxes(array).items()))


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def tooth_boxes(array: np.ndarray) -> dict[int, tuple[slice, ...]]:
    """{label: its bounding box} of every tooth label in an integer label map, from one pass over its labelled
    box (a whole head's grid has 100+ M voxels, its teeth a few M: three fast reductions find that box)."""
    if array.dtype.kind not in "iu" or array.dtype.itemsize > 8:
        array = array.astype(np.int64)
    found = bounding_box(array)
    if found is None:
        return {}
    offset = found[0]
    part = array[tuple(slice(int(a), int(b)) for a, b in zip(*found, strict=True))]
    boxes = ndimage.find_objects(part)  # None for values absent
    return {
        value: tuple(slice(int(s.start + o), int(s.stop + o)) for s, o in zip(box, offset, strict=True))
        for value, box in enumerate(boxes, start=1)
        if box is not None and labels.is_tooth_label(value)
    }


def write_stl(polydata: Any, path: str | os.PathLike) -> Path:
    """Binary STL, written to a temporary name and renamed."""
    vtk = _vtk()
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = vtk.vtkSTLWriter()
        writer.SetFileName(str(tmp))
        writer.SetFileTypeToBinary()
        writer.SetInputData(polydata)
        if not writer.Write():
            raise OSError(f"could not write {path}")
    return path


def write_stl_per_tooth(
    fdi_volume: Volume, folder: str | os.PathLike, space: str = "LPS", smoothing: float = 0.5,
    workers: int | None = None,
) -> list[Path]:
    """``folder/tooth_<FDI>.stl`` for each tooth in the label map (``unnumbered_tooth_<k>.stl`` for unnumbered
    tooth k), the surfaces made by ``workers`` threads (:func:`label_surfaces`); returns the paths written."""
    folder = Path(folder)
    surfaces = label_surfaces(fdi_volume, smoothing=smoothing, space=space, workers=workers)
    return [write_stl(poly, folder / _stl_name(value)) for value, poly in sorted(surfaces.items())]


def _stl_name(value: int) -> str:
    if labels.is_fdi(value):
        return f"tooth_{value}.stl"
    return f"unnumbered_tooth_{value - labels.UNNUMBERED_LABEL_BASE + 1}.stl"
