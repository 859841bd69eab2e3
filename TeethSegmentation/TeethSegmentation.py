"""Teeth Segmentation: find, segment and FDI-number every tooth in a dental CBCT scan.

The Widget is thin: it binds the .ui to the parameter node and polls the engine's child process.
The Logic writes the input to a private folder, starts ``python -m TeethSegmentationLib ...`` through
``TeethSegmentationLib.runner.EngineRunner`` and loads results with ``TeethSegmentationLib.mrml``
(both tested outside Slicer).
"""

from __future__ import annotations

import importlib.util
import logging
import pathlib
import shutil
import sys
import tempfile
from typing import Annotated, Any

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

try:
    from slicer.i18n import tr as _
except ImportError:  # Slicer before 5.4

    def _(text: str) -> str:
        return text


MODULE_DIR = pathlib.Path(__file__).resolve().parent
# Installed, the engine sits next to this file; in the source tree it is the repository's top level.
if not (MODULE_DIR / "TeethSegmentationLib").is_dir() and str(MODULE_DIR.parent) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR.parent))

from TeethSegmentationLib import mrml  # noqa: E402
from TeethSegmentationLib.fdi import segment_name  # noqa: E402

REQUIRED_PACKAGES = {"torch": "torch", "numpy": "numpy", "scipy": "scipy", "nrrd": "pynrrd", "psutil": "psutil"}
TORCH_REQUIREMENT = ">=2.2"  # as pyproject.toml
# The engine (TeethSegmentationLib) needs Python 3.10+ (pyproject.toml); Slicer 5.8 ships 3.9.10, 5.10+ ship 3.12.
MIN_PYTHON = (3, 10)
POLL_MS = 100
DEVICE_PROBE = (
    "import json, torch; ok = torch.cuda.is_available(); "
    "print(json.dumps({'event': 'result', 'cuda': ok, 'name': torch.cuda.get_device_name(0) if ok else ''}))"
)


def resourcePath(*parts: str) -> pathlib.Path:
    """A resource installed next to the engine (Resources/...) or, in the source tree, at the top level."""
    for base in (MODULE_DIR, MODULE_DIR.parent):
        candidate = base.joinpath("Resources", *parts)
        if candidate.exists():
            return candidate
    return MODULE_DIR.joinpath("Resources", *parts)


#
# Module
#


class TeethSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Teeth Segmentation")
        self.parent.categories = [_("Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["TeethSegmentation contributors"]
        self.parent.helpText = _(
            "Finds every tooth in a dental cone-beam CT, numbers it (FDI) and makes one editable segment per "
            "tooth, with a confidence per tooth. Export STL per tooth or an FDI label map, and train the model "
            "on your own corrected segmentations. Runs in the background: Slicer stays responsive and Cancel "
            "stops it at once."
        )
        self.parent.acknowledgementText = _(
            "Developed as an open-source 3D Slicer extension. Uses PyTorch, NumPy, SciPy and pynrrd. "
            "The shipped default model was trained on synthetic phantoms; see Resources/Models/README.md."
        )
        iconPath = MODULE_DIR / "Resources" / "Icons" / "TeethSegmentation.png"
        if iconPath.exists():
            self.parent.icon = qt.QIcon(str(iconPath))
        slicer.app.connect("startupCompleted()", loadTerminology)


def loadTerminology() -> None:
    path = resourcePath("Terminology", "TeethSegmentation.term.json")
    try:
        mrml.load_terminology(path)
    except (ValueError, AttributeError) as error:
        logging.warning(f"TeethSegmentation: {error}")


#
# Parameter node
#


@parameterNodeWrapper
class TeethSegmentationParameterNode:
    """What the module needs; the GUI binds to it, the Logic reads only from it."""

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    modelPath: pathlib.Path  # not a file: the shipped default model
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"
    typesOnly: bool = False
    testTimeFlips: bool = False
    stlFolder: pathlib.Path
    epochs: Annotated[int, WithinRange(1, 1000)] = 20
    fineTune: bool = True
    modelName: str = "my-teeth-model"


class InstallError(RuntimeError):
    """Dependencies could not be installed; ``restartRequired`` when Slicer must restart first."""

    def __init__(self, message: str, restartRequired: bool = False):
        super().__init__(message)
        self.message = message
        self.restartRequired = restartRequired


#
# Widget
#


class TeethSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: TeethSegmentationLogic | None = None
        self._parameterNode: TeethSegmentationParameterNode | None = None
        self._parameterNodeGuiTag = None
        self._runner = None
        self._task = ""  # "segment", "train" or "probe"
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.onPoll)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/TeethSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = TeethSegmentationLogic()
        self._setupTables()
        self._connectButtons()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.refreshModels()
        self.initializeParameterNode()

    def _setupTables(self) -> None:
        self.ui.confidenceTable.setColumnCount(4)
        self.ui.confidenceTable.setHorizontalHeaderLabels([_("FDI"), _("Tooth"), _("Confidence"), _("Volume (mm³)")])
        self.ui.trainingPairsTable.setColumnCount(2)
        self.ui.trainingPairsTable.setHorizontalHeaderLabels([_("Volume"), _("Segmentation")])
        self.ui.logCollapsibleButton.collapsed = True

    def _connectButtons(self) -> None:
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.cancelTrainButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.exportStlButton.connect("clicked(bool)", self.onExportStlButton)
        self.ui.exportLabelmapButton.connect("clicked(bool)", self.onExportLabelmapButton)
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
        self.ui.addTrainingPairButton.connect("clicked(bool)", self.onAddTrainingPair)
        self.ui.removeTrainingPairButton.connect("clicked(bool)", self.onRemoveTrainingPair)
        self.ui.modelSelector.connect("currentIndexChanged(int)", self.onModelSelected)
        self.ui.confidenceTable.connect("cellDoubleClicked(int,int)", self.onConfidenceRowDoubleClicked)

    # --- life cycle (as the Slicer template)

    def cleanup(self) -> None:
        self.cancelRunner()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.probeDevice()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        if self._task != "train":  # training works on exported files; a segmentation's nodes are going away
            self.cancelRunner()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: TeethSegmentationParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        params, busy = self._parameterNode, self._runner is not None
        canSegment, reason = self.logic.canSegment(params)
        self.ui.segmentButton.enabled = canSegment and not busy
        self.ui.segmentButton.toolTip = reason or _("Find and number the teeth of the input volume.")
        hasSegments = bool(params and params.outputSegmentation
                           and params.outputSegmentation.GetSegmentation().GetNumberOfSegments())
        self.ui.exportStlButton.enabled = hasSegments and not busy
        self.ui.exportLabelmapButton.enabled = hasSegments and not busy
        self.ui.trainButton.enabled = not busy and self.ui.trainingPairsTable.rowCount > 0
        self.ui.cancelButton.enabled = busy and self._task == "segment"
        self.ui.cancelTrainButton.enabled = busy and self._task == "train"

    # --- buttons

    def onSegmentButton(self) -> None:
        if not self.ensureDependencies():
            return
        with slicer.util.tryWithErrorDisplay(_("Could not start the segmentation."), waitCursor=True):
            warning = self.logic.inputWarning(self._parameterNode)
            if warning:
                self.appendLog(warning)
                slicer.util.warningDisplay(warning, windowTitle=_("Teeth Segmentation"))
            self.startRunner(self.logic.startSegmentation(self._parameterNode), "segment")

    def onTrainButton(self) -> None:
        if not self.ensureDependencies():
            return
        with slicer.util.tryWithErrorDisplay(_("Could not start training."), waitCursor=True):
            self.startRunner(self.logic.startTraining(self._parameterNode, self.trainingPairs()), "train")

    def onCancelButton(self) -> None:
        self.cancelRunner()
        self.setStatus(_("Cancelled."), 0.0)

    def onExportStlButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not export STL files."), waitCursor=True):
            files = self.logic.exportStl(self._parameterNode)
            self.setStatus(_("Wrote {count} STL files to {folder}.").format(
                count=len(files), folder=self._parameterNode.stlFolder), None)

    def onExportLabelmapButton(self) -> None:
        path = qt.QFileDialog.getSaveFileName(self.parent, _("Save FDI label map"), "", "NRRD (*.nrrd)")
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not export the label map."), waitCursor=True):
            self.logic.exportLabelmap(self._parameterNode, path)
            self.setStatus(_("Wrote {path}.").format(path=path), None)

    def onModelSelected(self, index: int) -> None:
        path = self.ui.modelSelector.itemData(index)
        if self._parameterNode is not None and path is not None:
            self._parameterNode.modelPath = pathlib.Path(path) if path else pathlib.Path()

    def onConfidenceRowDoubleClicked(self, row: int, column: int) -> None:
        """Centre the views on the tooth of the clicked row."""
        fdi = int(self.ui.confidenceTable.item(row, 0).text())
        self.logic.jumpToTooth(self._parameterNode, fdi)

    # --- training pairs

    def onAddTrainingPair(self) -> None:
        volume = self.ui.trainingVolumeSelector.currentNode()
        segmentation = self.ui.trainingSegmentationSelector.currentNode()
        if not volume or not segmentation:
            slicer.util.warningDisplay(_("Choose a volume and its segmentation first."))
            return
        row = self.ui.trainingPairsTable.rowCount
        self.ui.trainingPairsTable.insertRow(row)
        for column, node in enumerate((volume, segmentation)):
            item = qt.QTableWidgetItem(node.GetName())
            item.setData(qt.Qt.UserRole, node.GetID())
            self.ui.trainingPairsTable.setItem(row, column, item)
        self._checkCanApply()

    def onRemoveTrainingPair(self) -> None:
        self.ui.trainingPairsTable.removeRow(self.ui.trainingPairsTable.currentRow())
        self._checkCanApply()

    def trainingPairs(self) -> list[tuple[Any, Any]]:
        table, pairs = self.ui.trainingPairsTable, []
        for row in range(table.rowCount):
            ids = [table.item(row, column).data(qt.Qt.UserRole) for column in (0, 1)]
            nodes = [slicer.mrmlScene.GetNodeByID(nodeId) for nodeId in ids]
            if all(nodes):
                pairs.append(tuple(nodes))
        return pairs

    # --- the background process

    def startRunner(self, runner, task: str) -> None:
        self._runner, self._task = runner, task
        self.ui.statusLabel.text = _("Starting...")
        self.ui.progressBar.value = 0
        self._timer.start()
        self._checkCanApply()

    def cancelRunner(self) -> None:
        if self._runner is None:
            return
        self._timer.stop()
        self._runner.cancel()
        self._runner.cleanup()
        self._runner, self._task = None, ""
        self._checkCanApply()

    def onPoll(self) -> None:
        runner = self._runner
        if runner is None:
            self._timer.stop()
            return
        self.showEvents(runner.poll())
        if not runner.running:
            self.showEvents(runner.poll())
            self._timer.stop()
            self._runner, task = None, self._task
            self._task = ""
            try:
                self.onRunnerFinished(runner, task)
            finally:  # tryWithErrorDisplay re-raises: the buttons must come back all the same
                self._checkCanApply()

    def showEvents(self, events: list[dict]) -> None:
        if not events:
            return
        summary = TeethSegmentationLogic.handleEvents(events)
        for line in summary["log"]:
            self.appendLog(line)
        if summary["message"] or summary["fraction"] is not None:
            self.setStatus(summary["message"], summary["fraction"])

    def onRunnerFinished(self, runner, task: str) -> None:
        try:
            if task == "probe":
                self.showDevice(runner)
            elif runner.exit_status != "ok":
                self.showFailure(runner)
            elif task == "segment":
                self.showSegmentation(runner)
            elif task == "train":
                self.showTraining(runner)
        finally:
            runner.cleanup()

    def showFailure(self, runner) -> None:
        if runner.exit_status == "cancelled":
            self.setStatus(_("Cancelled."), 0.0)
            return
        message = runner.error_message or _("The engine stopped with exit code {code}.").format(code=runner.returncode)
        self.setStatus(message, 0.0)
        self.ui.logCollapsibleButton.collapsed = False
        slicer.util.errorDisplay(message, detailedText="\n".join(runner.stderr_tail))

    def showSegmentation(self, runner) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not load the result."), waitCursor=True):
            report = self.logic.finishSegmentation(runner)
            self.fillConfidenceTable(mrml.confidence_rows(report))
            count = len(mrml.confidence_rows(report))
            self.setStatus(_("Found {count} teeth.").format(count=count), 1.0)

    def showTraining(self, runner) -> None:
        with slicer.util.tryWithErrorDisplay(_("Training finished but its model could not be used.")):
            model = self.logic.finishTraining(runner, self._parameterNode)
            self.refreshModels(select=model)
            self.setStatus(_("Trained {name}; it is now selected for segmentation.").format(name=model.name), 1.0)

    def fillConfidenceTable(self, rows: list[tuple]) -> None:
        table = self.ui.confidenceTable
        table.setRowCount(len(rows))
        for row, (fdi, name, confidence, volume) in enumerate(rows):
            cells = (str(fdi), name, "" if confidence is None else f"{confidence:.2f}",
                     "" if volume is None else f"{volume:.0f}")
            for column, text in enumerate(cells):
                table.setItem(row, column, qt.QTableWidgetItem(text))
        table.resizeColumnsToContents()

    def setStatus(self, message: str, fraction: float | None) -> None:
        if message:
            self.ui.statusLabel.text = message
        if fraction is not None:
            self.ui.progressBar.value = int(round(100 * fraction))

    def appendLog(self, line: str) -> None:
        self.ui.logTextEdit.appendPlainText(line)

    # --- models and devices

    def refreshModels(self, select: pathlib.Path | None = None) -> None:
        combo = self.ui.modelSelector
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(_("Default model (shipped)"), "")
        for path in self.logic.userModels():
            combo.addItem(path.stem, str(path))
        if select is not None:
            combo.setCurrentIndex(max(0, combo.findData(str(select))))
        combo.blockSignals(False)
        self.onModelSelected(combo.currentIndex)

    def probeDevice(self) -> None:
        """Ask a child process whether torch sees a GPU (never import torch in Slicer's GUI thread)."""
        if self._runner is not None or self.ui.deviceLabel.text or not self.logic.canRunEngine():
            return
        self.startRunner(self.logic.startDeviceProbe(), "probe")

    def showDevice(self, runner) -> None:
        result = runner.result or {}
        if result.get("cuda"):
            self.ui.deviceLabel.text = _("GPU found: {name}").format(name=result.get("name", "CUDA"))
        else:
            self.ui.deviceLabel.text = _("No GPU found: the CPU will be used.")

    def ensureDependencies(self) -> bool:
        try:
            self.logic.ensureDependencies(confirm=slicer.util.confirmOkCancelDisplay)
            return True
        except InstallError as error:
            if error.restartRequired and slicer.util.confirmOkCancelDisplay(
                    error.message + " " + _("Restart Slicer now?")):
                slicer.util.restart()
            else:
                slicer.util.errorDisplay(error.message)
            return False


#
# Logic
#


class TeethSegmentationLogic(ScriptedLoadableModuleLogic):
    """Starts the engine in a child process and moves data between the scene and its files (via mrml.py)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.trainingOutput: pathlib.Path | None = None
        # (input volume, output segmentation, types only) as they were at Segment: the user may change them meanwhile.
        self.segmentationTarget: tuple[Any, Any, bool] | None = None

    def getParameterNode(self) -> TeethSegmentationParameterNode:
        return TeethSegmentationParameterNode(super().getParameterNode())

    # --- environment

    @staticmethod
    def pythonExecutable() -> str:
        """PythonSlicer (on Slicer's PATH; Slicer also sets sys.executable to it), as slicer.util does."""
        found = shutil.which("PythonSlicer") or sys.executable
        if not found:
            raise RuntimeError(_("PythonSlicer was not found; reinstall Slicer."))
        return found

    @staticmethod
    def userModelsFolder() -> pathlib.Path:
        settingsDir = pathlib.Path(slicer.app.slicerUserSettingsFilePath).parent
        return settingsDir / "TeethSegmentation" / "Models"

    def userModels(self) -> list[pathlib.Path]:
        folder = self.userModelsFolder()
        return sorted(folder.glob("*.pt")) if folder.is_dir() else []

    @staticmethod
    def missingPackages() -> list[str]:
        return [pip for module, pip in REQUIRED_PACKAGES.items() if importlib.util.find_spec(module) is None]

    @classmethod
    def canRunEngine(cls) -> bool:
        return sys.version_info >= MIN_PYTHON and not cls.missingPackages()

    def ensureDependencies(self, confirm=None) -> None:
        """Install what is missing after asking (``confirm(text) -> bool``); raises InstallError."""
        if sys.version_info < MIN_PYTHON:
            raise InstallError(_("Teeth Segmentation needs Slicer 5.10 or later (Python {need}; this Slicer has "
                                 "{have}).").format(need=".".join(map(str, MIN_PYTHON)), have=sys.version.split()[0]))
        missing = self.missingPackages()
        if not missing:
            return
        text = _("Teeth Segmentation needs these Python packages: {names}. Install them now (this can take "
                 "several minutes)?").format(names=", ".join(missing))
        if confirm is None or not confirm(text):
            raise InstallError(_("Teeth Segmentation cannot run without {names}.").format(names=", ".join(missing)))
        if "torch" in missing:
            self._installTorch()
            missing.remove("torch")
        if missing:
            self._pipInstall(missing)
        importlib.invalidate_caches()
        still = self.missingPackages()
        if still:
            raise InstallError(_("{names} could not be installed; restart Slicer and try again.").format(
                names=", ".join(still)), restartRequired=True)

    @staticmethod
    def _installTorch() -> None:
        try:
            import PyTorchUtils  # the PyTorch extension picks the right CUDA build
        except ImportError:
            TeethSegmentationLogic._pipInstall(["torch" + TORCH_REQUIREMENT])
            return
        try:
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False,
                                                                   torchVersionRequirement=TORCH_REQUIREMENT)
        except Exception as error:  # light-the-torch/pip report through many exception types
            raise InstallError(_("Installing PyTorch failed ({error}).").format(error=error)) from error
        if torch is None:
            raise InstallError(_("PyTorch could not be installed. Install it with the PyTorch Utils module, "
                                 "then try again."), restartRequired=True)

    @staticmethod
    def _pipInstall(packages: list[str]) -> None:
        try:
            slicer.util.pip_install(packages)  # a list: each item one argument, so ">=" needs no quoting
        except Exception as error:  # pip reports through many exception types
            raise InstallError(_("Installing {names} failed ({error}). Check the network or proxy settings, or "
                                 "install them from the Python console.").format(names=", ".join(packages),
                                                                                 error=error)) from error

    # --- segmentation

    @staticmethod
    def canSegment(params: TeethSegmentationParameterNode | None) -> tuple[bool, str]:
        if params is None or not params.inputVolume:
            return False, _("Select an input volume.")
        if not params.outputSegmentation:
            return False, _("Select or create an output segmentation.")
        return True, ""

    @staticmethod
    def inputWarning(params: TeethSegmentationParameterNode) -> str | None:
        return mrml.volume_warning(params.inputVolume)

    @staticmethod
    def modelFile(params: TeethSegmentationParameterNode) -> str | None:
        path = params.modelPath
        return str(path) if path and str(path) not in ("", ".") and pathlib.Path(path).is_file() else None

    @staticmethod
    def segmentArgs(inputPath: str, outputDir: str, params: TeethSegmentationParameterNode) -> list[str]:
        args = ["segment", inputPath, "--output", outputDir, "--device", params.device]
        model = TeethSegmentationLogic.modelFile(params)
        if model:
            args += ["--model", model]
        if params.testTimeFlips:
            args.append("--tta")
        return args

    @staticmethod
    def privateFolder(prefix: str) -> pathlib.Path:
        return pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=slicer.app.temporaryPath))

    def startSegmentation(self, params: TeethSegmentationParameterNode):
        """Write the input to a private folder and start ``segment`` in the background; the runner."""
        from TeethSegmentationLib.runner import EngineRunner

        ok, reason = self.canSegment(params)
        if not ok:
            raise ValueError(reason)
        folder = self.privateFolder("TeethSegmentation-")
        try:
            inputPath = mrml.export_volume_to_nrrd(params.inputVolume, folder / "input.nrrd")
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        args = self.segmentArgs(str(inputPath), str(folder / "output"), params)
        runner = EngineRunner(args, python=self.pythonExecutable(), temp_folder=folder)
        logging.info("TeethSegmentation: " + " ".join(runner.command))
        self.segmentationTarget = (params.inputVolume, params.outputSegmentation, params.typesOnly)
        try:
            return runner.start()
        except OSError:  # PythonSlicer could not be started: do not leave the exported scan behind
            runner.cleanup()
            raise

    def startDeviceProbe(self):
        from TeethSegmentationLib.runner import EngineRunner

        return EngineRunner([], command=[self.pythonExecutable(), "-c", DEVICE_PROBE]).start()

    @staticmethod
    def handleEvents(events: list[dict]) -> dict[str, Any]:
        """Engine events -> what to show: log lines, the latest progress fraction and status message."""
        summary: dict[str, Any] = {"log": [], "fraction": None, "message": "", "result": None, "error": None}
        for event in events:
            kind = event.get("event")
            if kind == "progress":
                summary["fraction"] = float(event.get("fraction", 0.0))
                stage, message = event.get("stage", ""), event.get("message", "")
                summary["message"] = f"{stage}: {message}" if message else stage
            elif kind == "log":
                summary["log"].append(str(event.get("message", "")))
            elif kind == "start":
                summary["log"].append(f"Started {event.get('command', '')} (engine {event.get('version', '?')}).")
            elif kind == "result":
                summary["result"], summary["fraction"] = event, 1.0
            elif kind == "error":
                summary["error"] = summary["message"] = str(event.get("message", ""))
                summary["log"].append(summary["error"])
        return summary

    @staticmethod
    def resultFiles(outputDir: pathlib.Path) -> tuple[pathlib.Path, dict]:
        """The FDI label map and the report the engine wrote."""
        import json

        maps = sorted(outputDir.glob("*.teeth.nrrd"))
        if not maps:
            raise RuntimeError(_("The engine finished but wrote no label map."))
        reportPath = maps[0].with_name(maps[0].name.replace(".teeth.nrrd", ".report.json"))
        report = json.loads(reportPath.read_text(encoding="utf-8")) if reportPath.exists() else {}
        return maps[0], report

    def finishSegmentation(self, runner) -> dict:
        """Load the result into the output segmentation chosen at start (its segments replaced); the report."""
        try:
            if self.segmentationTarget is None:
                raise RuntimeError(_("No segmentation was started."))
            inputVolume, outputSegmentation, typesOnly = self.segmentationTarget
            labelmapPath, report = self.resultFiles(pathlib.Path(runner.temp_folder) / "output")
            mrml.load_fdi_labelmap_as_segments(labelmapPath, outputSegmentation, inputVolume, report,
                                               types_only=typesOnly)
        finally:
            self.segmentationTarget = None
            runner.cleanup()
        return report

    def jumpToTooth(self, params: TeethSegmentationParameterNode, fdi: int) -> None:
        segmentation = params.outputSegmentation
        for segmentId in mrml.segment_ids(segmentation):
            if segmentation.GetSegmentation().GetSegment(segmentId).GetLabelValue() == fdi:
                center = segmentation.GetSegmentCenterRAS(segmentId)
                slicer.modules.markups.logic().JumpSlicesToLocation(*center, True)
                return

    # --- export

    def exportStl(self, params: TeethSegmentationParameterNode) -> list[pathlib.Path]:
        folder = params.stlFolder
        if not folder or str(folder) in ("", "."):
            raise ValueError(_("Choose a folder for the STL files."))
        return mrml.export_stl_per_tooth(params.outputSegmentation, folder)

    def exportLabelmap(self, params: TeethSegmentationParameterNode, path: str) -> pathlib.Path:
        return mrml.export_labelmap_nrrd(params.outputSegmentation, params.inputVolume, path)

    # --- training

    def trainArgs(self, images: list, labelFiles: list, params: TeethSegmentationParameterNode,
                  output: pathlib.Path) -> list[str]:
        args = ["train", "--images", *map(str, images), "--labels", *map(str, labelFiles),
                "--output", str(output), "--epochs", str(params.epochs), "--device", params.device]
        if params.fineTune:
            init = self.modelFile(params) or str(resourcePath("Models", "teethseg-default.pt"))
            args += ["--init", init]
        return args

    def modelOutputPath(self, params: TeethSegmentationParameterNode) -> pathlib.Path:
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in (params.modelName or "").strip())
        if not name:
            raise ValueError(_("Give the new model a name."))
        return self.userModelsFolder() / f"{name}.pt"

    def startTraining(self, params: TeethSegmentationParameterNode, pairs: list[tuple[Any, Any]]):
        """Export the (volume, segmentation) pairs and start ``train`` in the background; the runner."""
        from TeethSegmentationLib.runner import EngineRunner

        if not pairs:
            raise ValueError(_("Add at least one volume and its corrected segmentation."))
        output = self.modelOutputPath(params)
        folder = self.privateFolder("TeethSegmentation-train-")
        images, labelFiles, problems = mrml.training_pairs_to_files(pairs, folder / "cases")
        if problems:
            shutil.rmtree(folder, ignore_errors=True)
            raise ValueError(" ".join(problems))
        output.parent.mkdir(parents=True, exist_ok=True)
        runner = EngineRunner(self.trainArgs(images, labelFiles, params, output), python=self.pythonExecutable(),
                              temp_folder=folder)
        self.trainingOutput = output
        return runner.start()

    def finishTraining(self, runner, params: TeethSegmentationParameterNode | None) -> pathlib.Path:
        """The new model file, selected in ``params`` (None after a scene close during training)."""
        runner.cleanup()
        output, self.trainingOutput = self.trainingOutput, None
        if output is None or not output.is_file():
            raise RuntimeError(_("Training finished but wrote no model file."))
        if params is not None:
            params.modelPath = output
        return output


#
# Test
#


class TeethSegmentationTest(ScriptedLoadableModuleTest):
    """Segments a tiny phantom through the real background process, exports STL per tooth, and cancels a run."""

    TIMEOUT_S = 600

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        # Testing mode answers dialogs with OK: missing packages are installed, an old Slicer fails here clearly.
        TeethSegmentationLogic().ensureDependencies(confirm=lambda text: True)
        self.setUp()
        self.test_handle_events()
        self.setUp()
        self.test_segment_phantom()
        self.setUp()
        self.test_cancel_segmentation()

    def test_handle_events(self) -> None:
        events = [{"event": "start", "command": "segment"}, {"event": "progress", "stage": "teeth", "fraction": 0.5},
                  {"event": "log", "message": "hello"}, {"event": "error", "message": "Bad input."}]
        summary = TeethSegmentationLogic.handleEvents(events)
        self.assertEqual(summary["fraction"], 0.5)
        self.assertEqual(summary["error"], "Bad input.")
        self.assertIn("hello", summary["log"])

    def _waitWhile(self, runner, condition) -> None:
        import time

        deadline = time.monotonic() + self.TIMEOUT_S
        while condition():
            self.assertLess(time.monotonic(), deadline, "the engine did not get there in time")
            runner.poll()
            slicer.app.processEvents()
            time.sleep(0.05)
        runner.poll()

    def _runToEnd(self, runner) -> None:
        self._waitWhile(runner, lambda: runner.running)
        self.assertEqual(runner.exit_status, "ok", runner.error_message)

    def _makeInputs(self, work: pathlib.Path):
        """A tiny phantom (made by the engine in the background) as input; the Logic and its parameter node."""
        from TeethSegmentationLib.runner import EngineRunner

        runner = EngineRunner(["phantom", str(work), "--cases", "1", "--seed", "7", "--size", "tiny"],
                              python=TeethSegmentationLogic.pythonExecutable()).start()
        self._runToEnd(runner)
        logic = TeethSegmentationLogic()
        params = logic.getParameterNode()
        params.inputVolume = slicer.util.loadVolume(str(work / "case00.nrrd"))
        params.outputSegmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Teeth")
        params.device, params.typesOnly, params.testTimeFlips = "cpu", False, False
        params.modelPath = pathlib.Path()  # the shipped default model
        return logic, params

    def test_segment_phantom(self) -> None:
        self.delayDisplay("Segmenting a tiny phantom in the background")
        work = pathlib.Path(tempfile.mkdtemp(prefix="TeethSegmentationTest-", dir=slicer.app.temporaryPath))
        try:
            logic, params = self._makeInputs(work)
            runner = logic.startSegmentation(params)
            self._runToEnd(runner)
            report = logic.finishSegmentation(runner)
            self.assertFalse(pathlib.Path(runner.temp_folder).exists(), "the private folder was not removed")
            names = mrml.segment_names(params.outputSegmentation)
            self.assertGreater(len(names), 0)
            self.assertEqual(len(mrml.confidence_rows(report)), len(names))
            for segment in map(params.outputSegmentation.GetSegmentation().GetSegment,
                               mrml.segment_ids(params.outputSegmentation)):
                self.assertEqual(segment.GetName(), segment_name(segment.GetLabelValue()))
            params.stlFolder = work / "stl"
            files = logic.exportStl(params)
            self.assertEqual(len(files), len(names))
            self.assertTrue(all(f.exists() and f.stat().st_size > 0 for f in files))
            self.assertTrue(all(f.name.startswith("tooth_") for f in files))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.delayDisplay("Test passed")

    def test_cancel_segmentation(self) -> None:
        """Cancel ends the launcher and the Python it started (a tree-kill), reported as cancelled, not failed."""
        import psutil

        self.delayDisplay("Cancelling a background segmentation")
        work = pathlib.Path(tempfile.mkdtemp(prefix="TeethSegmentationTest-", dir=slicer.app.temporaryPath))
        try:
            logic, params = self._makeInputs(work)
            runner = logic.startSegmentation(params)
            # "start" comes before torch is imported and the model loaded: the engine is surely still busy.
            self._waitWhile(runner, lambda: runner.running and not any(e["event"] == "start" for e in runner.events))
            self.assertTrue(runner.running, "the engine ended before it could be cancelled")
            family = [runner.pid] + [p.pid for p in psutil.Process(runner.pid).children(recursive=True)]
            runner.cancel()
            runner.cleanup()
            self.assertEqual(runner.exit_status, "cancelled")
            self.assertFalse(pathlib.Path(runner.temp_folder).exists(), "the private folder was not removed")
            alive = [pid for pid in family if psutil.pid_exists(pid)
                     and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
            self.assertEqual(alive, [], "processes survived Cancel")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.delayDisplay("Test passed")
