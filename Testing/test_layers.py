"""The engine's layers: every import points down (ARCHITECTURE.md), and only the bridge touches Slicer or Qt."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "TeethSegmentationLib"

# Lower numbers are lower layers. A module may import its own layer and the layers below it, never above.
LAYERS = {
    "__init__": 0, "errors": 0, "atomic": 0, "events": 0, "fdi": 0,
    "label_tables": 1, "segment_fdi": 1, "case_library": 1,
    "io": 2,
    "metrics": 3, "nets": 3, "phantom": 3,
    "instances": 4,
    "inference": 5,
    "training": 6,
    "presentation": 7,
    "commands": 8,
    "cli": 9, "__main__": 10,
    # The Slicer side, above the engine: the child-process runner and the scene bridge.
    "runner": 11, "mrml": 11, "tooth_segments": 11,
    # Qt-free button, status and event logic of the module's widget, over the runner.
    "presenter": 12,
}
BRIDGE = {"mrml", "tooth_segments"}  # the only modules that may import slicer / vtk-for-MRML
GUI_OR_SLICER = ("qt", "ctk", "slicer", "PythonQt")


def _layer_of(module: str) -> str:
    """``TeethSegmentationLib.io.volume`` -> ``io``; ``TeethSegmentationLib`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import, lazy ones inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "TeethSegmentationLib":
                found += [(node.lineno, f"TeethSegmentationLib.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def _own_layer(path: Path) -> str:
    return _layer_of(".".join(path.with_suffix("").relative_to(PACKAGE.parent).parts))


def test_every_module_has_a_layer():
    missing = {_own_layer(p) for p in _modules()} - set(LAYERS)
    assert not missing, f"add these to LAYERS: {sorted(missing)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path):
    own = _own_layer(path)
    upward = [
        f"line {line}: {target}"
        for line, target in _imports(path)
        if target.startswith("TeethSegmentationLib.")
        and _layer_of(target) in LAYERS  # __version__ and friends are names, not modules
        and LAYERS[_layer_of(target)] > LAYERS[own]
    ]
    assert not upward, f"{path.name} ({own}) imports a higher layer: {upward}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_bridge_imports_slicer_or_qt(path: Path):
    if _own_layer(path) in BRIDGE:
        return
    bad = [f"line {line}: {t}" for line, t in _imports(path) if t.split(".")[0] in GUI_OR_SLICER]
    assert not bad, f"{path.name} imports Slicer or Qt outside the bridge: {bad}"


def test_the_checker_sees_an_upward_import(tmp_path: Path):
    """The rule itself: a lazy import from io up into inference is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from TeethSegmentationLib.inference.pipeline import segment_file\n")
    (line, target), = _imports(bad)
    assert line == 2 and LAYERS[_layer_of(target)] > LAYERS["io"]
