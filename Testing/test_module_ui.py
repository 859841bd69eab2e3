"""Static checks of the Slicer module (it cannot be imported without the Slicer app): .ui, bindings, layering."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "TeethSegmentation" / "TeethSegmentation.py"
UI = ROOT / "TeethSegmentation" / "Resources" / "UI" / "TeethSegmentation.ui"
ICON = ROOT / "TeethSegmentation" / "Resources" / "Icons" / "TeethSegmentation.png"
CMAKE = ROOT / "TeethSegmentation" / "CMakeLists.txt"


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(MODULE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ui() -> ET.Element:
    return ET.parse(UI).getroot()


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def _widgets(ui: ET.Element) -> dict[str, ET.Element]:
    return {w.get("name"): w for w in ui.iter("widget")}


def _parameter_names(ui: ET.Element) -> dict[str, str]:
    """widget name -> SlicerParameterName."""
    found = {}
    for widget in ui.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                found[widget.get("name")] = prop.findtext("string")
    return found


def _parameter_fields(tree: ast.Module) -> dict[str, str]:
    node = _class(tree, "TeethSegmentationParameterNode")
    assert any(ast.unparse(d) == "parameterNodeWrapper" for d in node.decorator_list)
    return {s.target.id: ast.unparse(s.annotation) for s in node.body if isinstance(s, ast.AnnAssign)}


def test_ui_is_a_qt_designer_file_with_a_widget_tree(ui):
    assert ui.tag == "ui" and ui.findtext("class") == "TeethSegmentation"
    top = ui.find("widget")
    assert top.get("class") == "qMRMLWidget"
    widgets = _widgets(ui)
    assert len(widgets) > 30
    assert len(widgets) == len(list(ui.iter("widget"))), "widget names must be unique"
    sections = {w.findtext("property/string") for w in ui.iter("widget") if w.get("class") == "ctkCollapsibleButton"}
    assert {"Segment", "Results / Export", "Train", "Advanced"} <= sections
    custom = {c.findtext("class") for c in ui.iter("customwidget")}
    used = {w.get("class") for w in ui.iter("widget")}
    assert {c for c in used if c.startswith(("ctk", "qMRML"))} <= custom


def test_expected_widgets_and_types(ui):
    widgets = _widgets(ui)
    expected = {
        "inputVolumeSelector": "qMRMLNodeComboBox", "outputSegmentationSelector": "qMRMLNodeComboBox",
        "modelPathLineEdit": "ctkPathLineEdit", "stlFolderLineEdit": "ctkPathLineEdit", "deviceComboBox": "QComboBox",
        "typesOnlyCheckBox": "QCheckBox", "testTimeFlipsCheckBox": "QCheckBox", "fineTuneCheckBox": "QCheckBox",
        "epochsSpinBox": "QSpinBox", "modelNameLineEdit": "QLineEdit", "segmentButton": "QPushButton",
        "cancelButton": "QPushButton", "exportStlButton": "QPushButton", "exportLabelmapButton": "QPushButton",
        "trainButton": "QPushButton", "cancelTrainButton": "QPushButton", "addTrainingPairButton": "QPushButton",
        "progressBar": "QProgressBar", "statusLabel": "QLabel", "logTextEdit": "QPlainTextEdit",
        "confidenceTable": "QTableWidget", "trainingPairsTable": "QTableWidget",
        "logCollapsibleButton": "ctkCollapsibleButton",
    }
    for name, cls in expected.items():
        assert name in widgets, name
        assert widgets[name].get("class") == cls, name
    assert widgets["segmentButton"].findtext("property[@name='text']/string") == "Segment teeth"


def test_node_combo_boxes_get_the_scene(ui):
    combos = {w.get("name") for w in ui.iter("widget") if w.get("class") == "qMRMLNodeComboBox"}
    wanted = ("TeethSegmentation", "mrmlSceneChanged(vtkMRMLScene*)", "setMRMLScene(vtkMRMLScene*)")
    connected = {
        c.findtext("receiver") for c in ui.iter("connection")
        if (c.findtext("sender"), c.findtext("signal"), c.findtext("slot")) == wanted
    }
    assert combos and combos == connected
    widgets = _widgets(ui)
    types = [s.text for s in widgets["outputSegmentationSelector"].iter("string")]
    assert "vtkMRMLSegmentationNode" in types
    flags = {p.get("name"): p.findtext("bool") for p in widgets["outputSegmentationSelector"].findall("property")}
    assert flags["addEnabled"] == "true" and flags["renameEnabled"] == "true"
    assert "vtkMRMLScalarVolumeNode" in [s.text for s in widgets["inputVolumeSelector"].iter("string")]


def test_every_ui_attribute_used_in_the_module_exists(tree, ui):
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Attribute) and n.value.attr == "ui"
            and isinstance(n.value.value, ast.Name) and n.value.value.id == "self"}
    assert len(used) > 15
    missing = used - set(_widgets(ui))
    assert not missing, f"self.ui.<name> without a widget in the .ui: {sorted(missing)}"


def test_every_parameter_name_matches_a_field(tree, ui):
    fields = _parameter_fields(tree)
    bound = _parameter_names(ui)
    assert set(bound.values()) <= set(fields), set(bound.values()) - set(fields)
    assert set(fields) == set(bound.values()), "every parameter has a widget"
    expected = {"inputVolume": "vtkMRMLScalarVolumeNode", "outputSegmentation": "vtkMRMLSegmentationNode",
                "modelPath": "pathlib.Path", "stlFolder": "pathlib.Path", "typesOnly": "bool",
                "testTimeFlips": "bool", "fineTune": "bool", "modelName": "str"}
    for name, annotation in expected.items():
        assert fields[name] == annotation, name
    assert "Choice" in fields["device"] and "WithinRange(1, 1000)" in fields["epochs"]


def test_bound_widget_kinds_fit_the_field_types(tree, ui):
    fields, widgets = _parameter_fields(tree), _widgets(ui)
    for widget_name, field in _parameter_names(ui).items():
        cls = widgets[widget_name].get("class")
        annotation = fields[field]
        if cls == "ctkPathLineEdit":
            assert annotation == "pathlib.Path", field
        elif cls == "QCheckBox":
            assert annotation == "bool", field
        elif cls == "QComboBox":
            assert "Choice" in annotation, field  # a QComboBox binds only to Choice or an Enum
        elif cls == "QSpinBox":
            assert "int" in annotation, field


def test_module_metadata_and_resources(tree):
    source = MODULE.read_text(encoding="utf-8")
    assert 'self.parent.title = _("Teeth Segmentation")' in source
    assert 'self.parent.categories = [_("Segmentation")]' in source
    for name in ("TeethSegmentation", "TeethSegmentationWidget", "TeethSegmentationLogic", "TeethSegmentationTest",
                 "InstallError"):
        _class(tree, name)
    assert ICON.exists() and ICON.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import struct

    assert struct.unpack(">II", ICON.read_bytes()[16:24]) == (128, 128)


def test_user_facing_strings_go_through_tr(tree):
    """Texts given to the user (dialogs, labels, status) are wrapped in _()."""
    shown = ("errorDisplay", "warningDisplay", "confirmOkCancelDisplay", "setStatus", "tryWithErrorDisplay")
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        if name in shown and call.args:
            assert not isinstance(call.args[0], (ast.Constant, ast.JoinedStr)), ast.unparse(call)


SCENE_CALLS = re.compile(
    r"arrayFromVolume|updateVolumeFromArray|arrayFromSegment|ImportLabelmap|ExportSegments|vtkMRMLVolumeArchetype|"
    r"StorageNode|WriteData|ReadData|Popen|subprocess|\.SetName\(|SetLabelValue|RemoveAllSegments"
)


def test_logic_touches_the_scene_only_through_mrml_and_runner(tree):
    logic = _class(tree, "TeethSegmentationLogic")
    for method in (n for n in logic.body if isinstance(n, ast.FunctionDef)):
        text = ast.unparse(method)
        assert not SCENE_CALLS.search(text), f"{method.name} does scene/process work itself: move it to mrml/runner"
    widget = _class(tree, "TeethSegmentationWidget")
    assert not SCENE_CALLS.search(ast.unparse(widget)), "the widget holds no scene logic"


def test_methods_are_short(tree):
    long = [f"{c.name}.{f.name} ({f.end_lineno - f.lineno + 1} lines)"
            for c in tree.body if isinstance(c, ast.ClassDef)
            for f in c.body if isinstance(f, ast.FunctionDef) and f.end_lineno - f.lineno + 1 > 30]
    assert not long, long


def test_module_imports_no_heavy_engine_parts_at_load(tree):
    """Slicer loads the module at start-up: torch and the runner (psutil) are imported only when used."""
    top_imports = [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any("torch" in i or "runner" in i for i in top_imports)


def test_self_test_is_not_vacuous(tree):
    test = _class(tree, "TeethSegmentationTest")
    methods = {f.name: ast.unparse(f) for f in test.body if isinstance(f, ast.FunctionDef)}
    assert "test_segment_phantom" in methods["runTest"]
    body = methods["test_segment_phantom"]
    for needed in ("startSegmentation", "assertGreater", "exportStl", "segment_name", "processEvents"):
        assert needed in body or needed in methods["_runToEnd"], needed


def test_cmake_lists_module_files_and_the_engine():
    text = CMAKE.read_text(encoding="utf-8")
    assert "slicerMacroBuildScriptedModule" in text and "WITH_GENERIC_TESTS" in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    assert "TeethSegmentationLib/*.py" in text and "GLOB_RECURSE" in text
    for resource in ("Resources/UI/${MODULE_NAME}.ui", "Resources/Icons/${MODULE_NAME}.png",
                     "Resources/Terminology/${MODULE_NAME}.term.json", "Resources/Models/*.pt",
                     "Resources/Models/README.md"):
        assert resource in text, resource
    testing = ROOT / "TeethSegmentation" / "Testing"
    assert "slicer_add_python_unittest" in (testing / "Python" / "CMakeLists.txt").read_text(encoding="utf-8")
