"""Static checks of the Slicer module (it cannot be imported without the Slicer app): .ui, bindings, layering."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "TeethSegmentation" / "TeethSegmentation.py"
MODULE_LIB = ROOT / "TeethSegmentation" / "TeethSegmentationModuleLib"
LOGIC = MODULE_LIB / "logic.py"
SELF_TEST = MODULE_LIB / "selftest.py"
MODULE_FILES = sorted(MODULE.parent.rglob("*.py"))
UI = ROOT / "TeethSegmentation" / "Resources" / "UI" / "TeethSegmentation.ui"
ICON = ROOT / "TeethSegmentation" / "Resources" / "Icons" / "TeethSegmentation.png"
CMAKE = ROOT / "TeethSegmentation" / "CMakeLists.txt"


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    """The module file, the Logic and the self-test as one tree (the classes are found by name)."""
    files = (MODULE, LOGIC, SELF_TEST, MODULE_LIB / "path_connector.py")
    body = [n for path in files for n in ast.parse(path.read_text(encoding="utf-8")).body]
    return ast.Module(body=body, type_ignores=[])


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
    assert {"Segment", "Results / Export", "Improve model", "Train", "Advanced"} <= sections
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
        "logCollapsibleButton": "ctkCollapsibleButton", "deviceLabel": "QLabel",
        "renumberButton": "QPushButton", "renumberSpinBox": "QSpinBox", "shiftRestCheckBox": "QCheckBox",
        "mergeButton": "QPushButton", "mergeSpinBox": "QSpinBox", "undoButton": "QPushButton",
        "addCaseButton": "QPushButton", "removeCaseButton": "QPushButton", "casesTable": "QTableWidget",
        "improveButton": "QPushButton", "cancelImproveButton": "QPushButton", "improveResultLabel": "QLabel",
        "makeDefaultButton": "QPushButton", "revertButton": "QPushButton", "modelCardLabel": "QLabel",
    }
    for name, cls in expected.items():
        assert name in widgets, name
        assert widgets[name].get("class") == cls, name
    assert widgets["segmentButton"].findtext("property[@name='text']/string") == "Segment teeth"
    texts = {name: widgets[name].findtext("property[@name='text']/string") for name in
             ("addCaseButton", "removeCaseButton", "improveButton", "revertButton")}
    assert texts == {"addCaseButton": "Add to training cases", "removeCaseButton": "Remove",
                     "improveButton": "Improve model", "revertButton": "Revert to shipped model"}


def test_improve_model_section_buttons_are_wired_and_gated_by_the_presenter(tree, ui):
    """Every button of the section has a tooltip, a slot, and its enabled state from one presenter field;
    every field of presenter.Buttons is shown by the widget (a new one cannot be forgotten)."""
    from dataclasses import fields

    from TeethSegmentationLib.presenter import Buttons

    widget = _class(tree, "TeethSegmentationWidget")
    connect = ast.unparse(next(f for f in widget.body if getattr(f, "name", "") == "_connectSignals"))
    section = next(w for w in ui.iter("widget") if w.get("name") == "improveCollapsibleButton")
    buttons = [w.get("name") for w in section.iter("widget") if w.get("class") == "QPushButton"]
    assert len(buttons) == 6
    for name in buttons:
        assert section.find(f".//widget[@name='{name}']/property[@name='toolTip']/string").text, name
        assert f"self.ui.{name}, self.on" in connect, f"{name} is not connected"
    used = {n.attr for n in ast.walk(widget) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id == "buttons"}
    assert used == {f.name for f in fields(Buttons)}, {f.name for f in fields(Buttons)} ^ used
    for name in ("modelCardLabel", "improveResultLabel"):
        label = next(w for w in ui.iter("widget") if w.get("name") == name)
        assert label.findtext("property[@name='wordWrap']/bool") == "true", name


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
            and isinstance(n.value.value, (ast.Name, ast.Attribute))}
    assert len(used) > 20
    missing = used - set(_widgets(ui))
    assert not missing, f"ui.<name> without a widget in the .ui: {sorted(missing)}"


def test_every_parameter_name_matches_a_field(tree, ui):
    fields = _parameter_fields(tree)
    bound = _parameter_names(ui)
    assert set(bound.values()) <= set(fields), set(bound.values()) - set(fields)
    assert set(fields) == set(bound.values()), "every parameter has a widget"
    expected = {"inputVolume": "vtkMRMLScalarVolumeNode", "outputSegmentation": "vtkMRMLSegmentationNode",
                "modelPath": "str", "stlFolder": "str", "typesOnly": "bool", "shiftRest": "bool",
                "testTimeFlips": "bool", "fineTune": "bool", "modelName": "str"}
    for name, annotation in expected.items():
        assert fields[name] == annotation, name
    assert "Choice" in fields["device"] and "WithinRange(1, 1000)" in fields["epochs"]
    assert "WithinRange(11, 48)" in fields["renumberTo"] and "WithinRange(11, 48)" in fields["mergeInto"]


def test_bound_widget_kinds_fit_the_field_types(tree, ui):
    fields, widgets = _parameter_fields(tree), _widgets(ui)
    for widget_name, field in _parameter_names(ui).items():
        cls = widgets[widget_name].get("class")
        annotation = fields[field]
        if cls == "ctkPathLineEdit":
            assert annotation == "str", field  # through the module's PathLineEditToStrConnector: "" stays empty
        elif cls == "QCheckBox":
            assert annotation == "bool", field
        elif cls == "QComboBox":
            assert "Choice" in annotation, field  # a QComboBox binds only to Choice or an Enum
        elif cls == "QSpinBox":
            assert "int" in annotation, field


def test_module_classes_and_icon(tree):
    for name in ("TeethSegmentation", "TeethSegmentationWidget", "TeethSegmentationLogic", "TeethSegmentationTest",
                 "TeethSegmentationParameterNode", "PathLineEditToStrConnector"):
        _class(tree, name)
    assert ICON.exists() and ICON.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import struct

    assert struct.unpack(">II", ICON.read_bytes()[16:24]) == (128, 128)


def test_user_facing_strings_go_through_tr(tree):
    """Texts given to the user (dialogs, labels, status) are wrapped in _()."""
    shown = ("errorDisplay", "warningDisplay", "confirmOkCancelDisplay", "finished", "note", "failed", "attempt",
             "tryWithErrorDisplay", "showStatusMessage")
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


def test_module_imports_no_heavy_engine_parts_at_load():
    """Slicer loads the module at start-up, maybe before torch or psutil is installed: what the module file imports
    at the top must import neither."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import TeethSegmentationLib.presenter, "
            "TeethSegmentationLib.runner, TeethSegmentationModuleLib.dependencies; "
            "print(sorted({'torch', 'psutil'} & set(sys.modules)))")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code, str(MODULE.parent)], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_self_test_uses_only_the_logic_api(tree):
    """The test and the widget call the Logic with the signatures it has."""
    logic = {f.name: f for f in _class(tree, "TeethSegmentationLogic").body if isinstance(f, ast.FunctionDef)}
    for cls in ("TeethSegmentationTest", "TeethSegmentationWidget"):
        for call in (n for n in ast.walk(_class(tree, cls)) if isinstance(n, ast.Call)):
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr in logic and "logic" in ast.unparse(func.value).lower():
                method = logic[func.attr]
                static = any(ast.unparse(d) == "staticmethod" for d in method.decorator_list)
                params = method.args.args[0 if static else 1:]
                required = len(params) - len(method.args.defaults)
                given = len(call.args) + len(call.keywords)
                assert required <= given <= len(params), f"{cls}: {ast.unparse(call)}"


def test_cmake_lists_every_module_file_and_registers_the_self_test_once():
    text = CMAKE.read_text(encoding="utf-8")
    assert "slicerMacroBuildScriptedModule" in text and "WITH_GENERIC_TESTS" in text
    listed = set(re.findall(r"\$\{MODULE_NAME\}([\w/]*\.py)", text))
    present = {"/".join(p.relative_to(MODULE.parent).parts).replace("TeethSegmentation", "", 1) for p in MODULE_FILES}
    assert listed == present, (listed, present)
    assert "TeethSegmentationLib/*.py" in text and "GLOB_RECURSE" in text
    for resource in ("Resources/UI/${MODULE_NAME}.ui", "Resources/Icons/${MODULE_NAME}.png",
                     "Resources/Terminology/${MODULE_NAME}.term.json", "Resources/Models/*.pt",
                     "Resources/Models/README.md"):
        assert resource in text, resource
    cmake_files = [ROOT / "CMakeLists.txt", *MODULE.parent.rglob("CMakeLists.txt")]
    registrations = sum(f.read_text(encoding="utf-8").count("slicer_add_python_unittest(") for f in cmake_files)
    assert registrations == 1


# --- what was checked against Slicer 5.8 / 5.10 / CTK sources (the app cannot run here)

# Base/Python/slicer/parameterNodeWrapper/guiConnectors.py: widget class -> annotation it can bind to.
CONNECTABLE = {
    "QCheckBox": lambda a: a == "bool",
    "ctkCheckBox": lambda a: a == "bool",
    "QSpinBox": lambda a: re.fullmatch(r"(Annotated\[)?int\b.*", a) is not None,
    "QComboBox": lambda a: "Choice(" in a,  # or an Enum; ours are Choice
    "QLineEdit": lambda a: a == "str",
    "ctkPathLineEdit": lambda a: a == "str",  # TeethSegmentation.py's PathLineEditToStrConnector
    "qMRMLNodeComboBox": lambda a: re.fullmatch(r"vtkMRML\w+Node", a) is not None,
}
# CTK Libs/Widgets and Slicer Libs/MRML/Widgets: class -> header, and what Designer needs of it.
CUSTOM_WIDGETS = {
    "ctkCollapsibleButton": ("ctkCollapsibleButton.h", "QWidget", "1"),
    "ctkPathLineEdit": ("ctkPathLineEdit.h", "QWidget", None),
    "qMRMLNodeComboBox": ("qMRMLNodeComboBox.h", "QWidget", None),
    "qMRMLWidget": ("qMRMLWidget.h", "QWidget", "1"),
}


def test_custom_widgets_are_declared_with_their_headers(ui):
    declared = {c.findtext("class"): c for c in ui.iter("customwidget")}
    used = {w.get("class") for w in ui.iter("widget")}
    assert {c for c in used if not c.startswith("Q")} <= set(declared), "every custom class needs a <customwidget>"
    for cls, element in declared.items():
        header, extends, container = CUSTOM_WIDGETS[cls]
        assert element.findtext("header") == header, cls
        assert element.findtext("extends") == extends, cls
        assert element.findtext("container") == container, cls


def test_dynamic_properties_are_only_parameter_names(ui):
    """The template's slip: a dynamic property named after the field (not SlicerParameterName) binds nothing."""
    for widget in ui.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("stdset") == "0":
                assert prop.get("name") == "SlicerParameterName", (widget.get("name"), prop.get("name"))
                assert prop.find("string") is not None and prop.findtext("string").strip(), widget.get("name")
            if prop.get("name") == "SlicerParameterName":
                assert prop.get("stdset") == "0", f"{widget.get('name')}: dynamic properties need stdset=0"


def test_every_bound_widget_has_a_connector_for_its_type(tree, ui):
    fields, widgets = _parameter_fields(tree), _widgets(ui)
    for widget_name, field in _parameter_names(ui).items():
        cls = widgets[widget_name].get("class")
        assert cls in CONNECTABLE, f"{widget_name}: parameterNodeWrapper has no connector for {cls}"
        assert CONNECTABLE[cls](fields[field]), f"{widget_name} ({cls}) cannot bind {field}: {fields[field]}"
    assert len(set(_parameter_names(ui).values())) == len(_parameter_names(ui)), "one widget per parameter"


def test_node_selectors_list_their_field_type(tree, ui):
    fields, widgets = _parameter_fields(tree), _widgets(ui)
    for widget_name, field in _parameter_names(ui).items():
        widget = widgets[widget_name]
        if widget.get("class") == "qMRMLNodeComboBox":
            types = widget.find("property[@name='nodeTypes']/stringlist")
            assert types is not None, f"{widget_name}: nodeTypes must be a stringlist"
            assert [s.text for s in types.findall("string")] == [fields[field]], widget_name


def test_spin_box_ranges_and_defaults_match_the_fields(tree, ui):
    widgets = _widgets(ui)
    fields = _parameter_fields(tree)
    node = _class(tree, "TeethSegmentationParameterNode")
    defaults = {s.target.id: ast.literal_eval(s.value) for s in node.body if isinstance(s, ast.AnnAssign) and s.value}
    for widget_name, field in _parameter_names(ui).items():
        spin = widgets[widget_name]
        if spin.get("class") != "QSpinBox":
            continue
        low, high = (int(spin.findtext(f"property[@name='{p}']/number")) for p in ("minimum", "maximum"))
        assert f"WithinRange({low}, {high})" in fields[field], field
        assert low <= defaults[field] <= high, field
    assert defaults["device"] in ("auto", "cpu", "cuda")


def test_module_files_load_on_the_python_of_an_older_slicer(tree):
    """Slicer 5.8 ships Python 3.9: the module must still load there to tell the user it needs Slicer 5.10."""
    for path in MODULE_FILES:
        ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 9))
    # parameterNodeWrapper evaluates its class annotations (typing.get_type_hints) at import: no 3.10+ syntax there.
    for annotation in _parameter_fields(tree).values():
        assert "|" not in annotation and not re.search(r"\b(list|dict|tuple)\[", annotation), annotation


# Keyword parameters of the Slicer and PyTorch Utils calls the module makes, read from Slicer v5.10.0
# (Base/Python/slicer/util.py) and fepegar/SlicerPyTorch PyTorchUtils.py.
SIGNATURES = {
    "tryWithErrorDisplay": {"message", "show", "waitCursor"},
    "errorDisplay": {"text", "windowTitle", "parent", "standardButtons", "detailedText"},
    "warningDisplay": {"text", "windowTitle", "parent", "standardButtons"},
    "confirmOkCancelDisplay": {"text", "windowTitle", "parent"},
    "showStatusMessage": {"message", "duration"},
    "pip_install": {"requirements"},
    "installTorch": {"askConfirmation", "forceComputationBackend", "torchVersionRequirement",
                     "torchvisionVersionRequirement"},
    "JumpSlicesToLocation": set(),
}


def test_slicer_calls_use_parameters_that_exist():
    for path in MODULE_FILES:
        for call in (n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.Call)):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else ""
            if name in SIGNATURES:
                assert {k.arg for k in call.keywords} <= SIGNATURES[name], f"{path.name}: {ast.unparse(call)}"


CTK_COMPILE_KEYWORDS = {"TARGET_NAME", "SCRIPTS", "RESOURCES", "SOURCE_DIR", "DESTINATION_DIR", "INSTALL_DIR",
                        "NO_INSTALL_SUBDIR", "GLOBAL_TARGET"}
SLICER_SCRIPTED_KEYWORDS = {"NAME", "SCRIPTS", "RESOURCES", "WITH_GENERIC_TESTS", "WITH_SUBDIR", "VERBOSE"}


def _cmake_call(text: str, name: str) -> list[str]:
    body = re.search(rf"{name}\((.*?)\n\s*\)", text, re.S)
    assert body, name
    return re.findall(r"^\s*([A-Z_]+)\b", body.group(1), re.M)


def test_cmake_macros_get_only_their_keywords():
    """CTK CMake/ctkMacroCompilePythonScript.cmake and Slicer CMake/SlicerMacroBuildScriptedModule.cmake."""
    text = CMAKE.read_text(encoding="utf-8")
    compile_keywords = set(_cmake_call(text, "ctkMacroCompilePythonScript"))
    assert {"TARGET_NAME", "SCRIPTS", "DESTINATION_DIR", "INSTALL_DIR"} <= compile_keywords <= CTK_COMPILE_KEYWORDS
    assert "SOURCE_DIR ${TEETHSEG_ROOT_DIR}" in text and "NO_INSTALL_SUBDIR" in text
    assert "DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}" in text
    assert "INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}" in text
    assert set(_cmake_call(text, "slicerMacroBuildScriptedModule")) <= SLICER_SCRIPTED_KEYWORDS


def test_installed_layout_puts_engine_and_resources_where_the_code_looks():
    """Module and engine land in the same qt-scripted-modules folder: MODULE_DIR/TeethSegmentationLib and
    MODULE_DIR/Resources/{Models,Terminology}, which the engine finds above its package."""
    text = CMAKE.read_text(encoding="utf-8")
    root_rel = re.search(r'get_filename_component\(TEETHSEG_ROOT_DIR "\$\{CMAKE_CURRENT_SOURCE_DIR\}/(.*?)"', text)
    assert root_rel and (MODULE.parent / root_rel.group(1)).resolve() == ROOT
    assert (ROOT / "TeethSegmentationLib" / "__main__.py").is_file()
    from TeethSegmentationLib.nets.model_file import DEFAULT_MODEL_PATH

    assert DEFAULT_MODEL_PATH == ROOT / "Resources" / "Models" / "teethseg-default.pt"
    calls = [c for path in MODULE_FILES for c in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "resourcePath"]
    assert len(calls) >= 2
    for call in calls:  # every resource the module asks for is shipped
        parts = [ast.literal_eval(a) for a in call.args]
        assert (ROOT / "Resources").joinpath(*parts).exists() or parts[0] == "Models", parts
    for listed in re.findall(r"^\s*(Resources/[\w/.${}]+)", text, re.M):
        assert listed.endswith(("*.pt", ".md")) or (MODULE.parent / listed.replace("${MODULE_NAME}",
                "TeethSegmentation")).exists() or (ROOT / listed.replace("${MODULE_NAME}",
                "TeethSegmentation")).exists(), listed
