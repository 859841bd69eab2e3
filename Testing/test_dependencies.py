"""The module's dependency checks (TeethSegmentationModuleLib/dependencies.py), in this Python and in a bare one."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULE_DIR = ROOT / "TeethSegmentation"
sys.path.insert(0, str(MODULE_DIR))

from TeethSegmentationModuleLib import dependencies  # noqa: E402


def test_release_numbers():
    assert dependencies.release("2.13.0+cpu") == (2, 13, 0)
    assert dependencies.release("2.2") == (2, 2) and dependencies.release("3.0.0rc1") == (3, 0, 0)
    assert dependencies.release("nightly") == ()


def test_python_floor_names_the_slicer_version():
    message = dependencies.python_problem((3, 9, 10))
    assert "Slicer 5.10 or later" in message and "3.9.10" in message
    assert dependencies.python_problem((3, 12, 10)) is None
    assert dependencies.python_problem() is None  # the engine's own tests run on 3.10+


@pytest.mark.parametrize(("version", "fits"), [(None, False), ("2.1.2", False), ("2.2.0", True), ("2.13.0+cpu", True),
                                                ("3.0.0", False), ("1.13.1+cu117", False)])
def test_torch_version_range(version, fits):
    problem = dependencies.torch_problem(version)
    assert (problem is None) == fits
    if version and not fits:
        assert version in problem and dependencies.TORCH_REQUIREMENT in problem


def test_requirements_agree_with_pyproject():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requires = {re.split(r"[<>=!~ ]", r, maxsplit=1)[0]: r for r in project["dependencies"]}
    assert requires.pop("torch") == "torch" + dependencies.TORCH_REQUIREMENT
    assert sorted(requires.values()) == sorted(dependencies.PACKAGES.values())
    assert project["requires-python"] == ">=" + ".".join(map(str, dependencies.MIN_PYTHON))


def test_this_python_has_everything_and_nothing_is_asked():
    assert dependencies.missing_packages() == [] and dependencies.problems() == []

    def never(question: str) -> bool:
        raise AssertionError(f"asked: {question}")

    dependencies.ensure(confirm=never)


def _bare_python(code: str) -> subprocess.CompletedProcess:
    """This interpreter without site-packages (-S) or the environment (-I): nothing but the standard library."""
    prelude = (f"import sys, json; sys.path.insert(0, {str(MODULE_DIR)!r}); "
               "from TeethSegmentationModuleLib import dependencies as d; ")
    return subprocess.run([sys.executable, "-I", "-S", "-c", prelude + code], capture_output=True, text=True,
                          timeout=60)


def test_a_bare_python_lacks_torch_and_the_packages():
    out = _bare_python("print(json.dumps({'missing': d.missing_packages(), 'problems': d.problems()}))")
    found = json.loads(out.stdout)
    assert found["missing"] == list(dependencies.PACKAGES.values())
    assert found["problems"][0] == "PyTorch is not installed" and "pynrrd>=1.0" in found["problems"][1]


def test_declining_the_install_is_a_clear_error():
    code = ("questions = []\n"
            "try:\n    d.ensure(confirm=lambda q: questions.append(q) or False)\n"
            "except d.InstallError as error:\n    print(json.dumps([questions, error.message, error.restartRequired]))")
    questions, message, restart = json.loads(_bare_python(code).stdout)
    assert len(questions) == 1 and "PyTorch is not installed" in questions[0] and "Install now?" in questions[0]
    assert message.startswith("Teeth Segmentation cannot run without: PyTorch is not installed") and not restart


def test_the_version_floor_is_stated_once_in_the_readme_and_in_cmake():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    floor = f"Slicer {dependencies.SLICER_FLOOR} or later"
    assert readme.count(floor) == 1 and not re.search(r"Slicer 5\.8 or later", readme)
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert f"set(TEETHSEG_SLICER_FLOOR {dependencies.SLICER_FLOOR})" in cmake
    assert "find_package(Slicer ${TEETHSEG_SLICER_FLOOR} REQUIRED)" in cmake
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in cmake


def test_messages_go_through_the_translator(monkeypatch):
    monkeypatch.setattr(dependencies, "tr", lambda text: "«" + text + "»")
    assert dependencies.torch_problem(None) == "«PyTorch is not installed»"
    assert dependencies.python_problem((3, 9, 10)).startswith("«Teeth Segmentation needs Slicer 5.10")
