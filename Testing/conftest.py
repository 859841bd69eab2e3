"""Shared fixtures: Slicer's real MRML scene from the ``slicer-core`` wheel (no Slicer application needed).

``slicer_scene`` is made once per session (the segmentations logic registers converter rules again on
every ``SetMRMLScene``) and cleared after each test that used it. Tests using it are skipped where
``import slicer`` fails.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

# The Slicer module's own helpers (TeethSegmentationModuleLib: corrections, ...) import as Slicer imports them.
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "TeethSegmentation"))

_LOGICS = {  # module name -> logic class name: the logics the bridge needs, set up as Slicer does
    "Colors": "vtkMRMLColorLogic",
    "Volumes": "vtkSlicerVolumesLogic",
    "Terminologies": "vtkSlicerTerminologiesModuleLogic",
    "Segmentations": "vtkSlicerSegmentationsModuleLogic",
    "SubjectHierarchy": "vtkSlicerSubjectHierarchyModuleLogic",
}


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Generated data (fine-tuning's replay phantoms) goes to a session folder, never to the user's cache;
    child processes inherit it."""
    os.environ["TEETHSEG_CACHE_DIR"] = str(tmp_path_factory.mktemp("teethseg-cache"))


def _make_scene() -> types.SimpleNamespace:
    slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    app.GetColorLogic().SetMRMLScene(scene)
    app.GetColorLogic().AddDefaultColorNodes()
    logics = {}
    for name, class_name in _LOGICS.items():
        logic = getattr(slicer, class_name)()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app)
        app.SetModuleLogic(name, logic)
        logics[name.lower()] = logic
    slicer.mrmlScene = scene  # what slicer.util expects
    slicer.modules = types.SimpleNamespace(
        **{key: types.SimpleNamespace(logic=lambda logic=logic: logic) for key, logic in logics.items()}
    )
    return types.SimpleNamespace(slicer=slicer, scene=scene, app=app, logics=logics)


@pytest.fixture(scope="session")
def slicer_scene() -> types.SimpleNamespace:
    """Object with ``.scene`` (vtkMRMLScene), ``.logics`` (lower-case module name -> logic), ``.app``, ``.slicer``."""
    return _make_scene()


@pytest.fixture(autouse=True)
def _clear_slicer_scene(request: pytest.FixtureRequest):
    """Each test that uses ``slicer_scene`` starts and ends with an empty scene."""
    if "slicer_scene" not in request.fixturenames:
        yield
        return
    scene = request.getfixturevalue("slicer_scene").scene
    scene.Clear(False)
    yield
    scene.Clear(False)
