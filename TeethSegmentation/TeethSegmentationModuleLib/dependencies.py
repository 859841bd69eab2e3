"""The Python packages the engine needs inside Slicer: checked without importing them, installed on request.

PyTorch comes through the PyTorch extension's PyTorch Utils (declared in the extension's metadata), which
picks the CUDA or CPU build that fits the machine; the small packages come from pip. Nothing here imports
torch: Slicer's GUI thread would stall for seconds. Importable without Slicer, as the test suite does;
``slicer`` and ``PyTorchUtils`` are imported only to install.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Callable
from typing import Any

SLICER_FLOOR = "5.10"  # the first Slicer whose Python (3.12) runs the engine; 5.8 ships 3.9
MIN_PYTHON = (3, 10)  # pyproject.toml requires-python
TORCH_MIN, TORCH_BELOW = (2, 2), (3,)  # pyproject.toml: torch>=2.2,<3
TORCH_REQUIREMENT = ">=2.2,<3"
PACKAGES = {"numpy": "numpy>=1.24", "scipy": "scipy>=1.10", "nrrd": "pynrrd>=1.0", "psutil": "psutil>=5.9"}


def _same(text: str) -> str:
    return text


tr: Callable[[str], str] = _same  # user-facing texts; the module sets Slicer's translator (slicer.i18n.tr)


class InstallError(RuntimeError):
    """Dependencies could not be set up; ``restartRequired`` when Slicer must restart first."""

    def __init__(self, message: str, restartRequired: bool = False):  # noqa: N803 (Slicer's naming)
        super().__init__(message)
        self.message = message
        self.restartRequired = restartRequired


def release(version: str) -> tuple[int, ...]:
    """'2.13.0+cpu' -> (2, 13, 0): the numeric release part of a version string."""
    match = re.match(r"\d+(\.\d+)*", version.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def python_problem(version_info: tuple[int, ...] = tuple(sys.version_info[:3])) -> str | None:
    if tuple(version_info[:2]) >= MIN_PYTHON:
        return None
    have = ".".join(map(str, version_info[:3]))
    return tr("Teeth Segmentation needs Slicer {floor} or later (this Slicer's Python is {have}); "
              "download the current Slicer from download.slicer.org.").format(floor=SLICER_FLOOR, have=have)


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, read from its metadata (the package is not imported)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def torch_problem(version: str | None) -> str | None:
    """Why the installed torch (its version string, None if absent) does not fit the engine, or None."""
    if version is None:
        return tr("PyTorch is not installed")
    if not TORCH_MIN <= release(version) < TORCH_BELOW:
        return tr("PyTorch {version} is installed, but the engine needs PyTorch {need}").format(
            version=version, need=TORCH_REQUIREMENT)
    return None


def missing_packages(find_spec: Callable[[str], Any] = importlib.util.find_spec) -> list[str]:
    """Pip requirements of the small packages that cannot be imported (torch is handled on its own)."""
    return [requirement for module, requirement in PACKAGES.items() if find_spec(module) is None]


def problems() -> list[str]:
    """Everything that keeps the engine from running in this Python, in words; empty when it can run."""
    found = [p for p in (python_problem(), torch_problem(installed_version("torch"))) if p]
    missing = missing_packages()
    if missing:
        found.append(tr("missing {names}").format(names=", ".join(missing)))
    return found


def ensure(confirm: Callable[[str], bool] | None = None) -> None:
    """Install what is missing after ``confirm(question)`` says yes; raises InstallError when it cannot run."""
    problem = python_problem()
    if problem:
        raise InstallError(problem)
    torch_issue, missing = torch_problem(installed_version("torch")), missing_packages()
    if not torch_issue and not missing:
        return
    needs = ([torch_issue] if torch_issue else []) + ([", ".join(missing)] if missing else [])
    question = tr("Teeth Segmentation needs: {needs}. Install now? This downloads up to a few GB and can take "
                  "several minutes.").format(needs="; ".join(needs))
    if confirm is None or not confirm(question):
        raise InstallError(tr("Teeth Segmentation cannot run without: {needs}.").format(needs="; ".join(needs)))
    if missing:
        _pip_install(missing)
    if torch_issue:
        _install_torch(replacing=installed_version("torch") is not None)
    importlib.invalidate_caches()
    still = [p for p in (torch_problem(installed_version("torch")),) if p] + missing_packages()
    if still:
        raise InstallError(tr("Still missing after installing: {names}. Restart Slicer and try again.").format(
            names="; ".join(still)), restartRequired=True)


def _install_torch(replacing: bool) -> None:
    try:
        import PyTorchUtils
    except ImportError as error:
        raise InstallError(tr("Teeth Segmentation needs the PyTorch extension: install it from the Extensions "
                              "Manager, restart Slicer and try again.")) from error
    try:
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False,
                                                               torchVersionRequirement=TORCH_REQUIREMENT)
    except Exception as error:  # light-the-torch and pip fail through many exception types
        raise InstallError(tr("Installing PyTorch failed ({error}). Try the PyTorch Utils module with version "
                              "requirement '{need}'.").format(error=error, need=TORCH_REQUIREMENT)) from error
    if torch is None:
        raise InstallError(tr("PyTorch was not installed."))
    if replacing:  # the old torch may already be loaded in this process
        raise InstallError(tr("PyTorch {need} was installed; restart Slicer to use it.").format(
            need=TORCH_REQUIREMENT), restartRequired=True)


def _pip_install(requirements: list[str]) -> None:
    import slicer

    try:
        slicer.util.pip_install(requirements)  # a list: each item is one argument, so ">=" needs no quoting
    except Exception as error:  # pip fails through many exception types
        raise InstallError(tr("Installing {names} failed ({error}). Check the network or proxy settings, or "
                              "install them from the Python console.").format(
            names=", ".join(requirements), error=error)) from error
