"""Teeth Segmentation: find, segment and FDI-number every tooth in a dental CBCT scan.

The Widget only binds Qt signals: what to enable and show is decided by the Qt-free
``TeethSegmentationLib.presenter.Presenter``; the work is done by the Logic
(``TeethSegmentationModuleLib/logic.py``), which starts the engine as a child process and moves data
through ``TeethSegmentationLib.mrml``. Those parts are tested outside Slicer; the self-test is in
``TeethSegmentationModuleLib/selftest.py``.
"""

from __future__ import annotations

import logging
import pathlib
import sys

import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

MODULE_DIR = pathlib.Path(__file__).resolve().parent
# Installed, the engine sits next to this file; in the source tree it is the repository's top level.
for folder in (MODULE_DIR, MODULE_DIR.parent):
    if (folder / "TeethSegmentationLib").is_dir() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from TeethSegmentationModuleLib import dependencies, path_connector  # noqa: E402, F401 (registers it)
from TeethSegmentationModuleLib.logic import TeethSegmentationLogic, resourcePath  # noqa: E402
from TeethSegmentationModuleLib.selftest import TeethSegmentationTest  # noqa: E402, F401 (found here by Slicer)

from TeethSegmentationLib import mrml, tooth_segments  # noqa: E402
from TeethSegmentationLib.presenter import Inputs, Presenter, card_text, case_rows, model_choices  # noqa: E402

POLL_MS = 100


class TeethSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Teeth Segmentation")
        self.parent.categories = [_("Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["TeethSegmentation contributors"]
        self.parent.helpText = _(
            "Finds every tooth in a dental cone-beam CT, numbers it (FDI) and makes one editable segment per "
            "tooth, with a confidence per tooth. Renumber or merge teeth, export STL per tooth or an FDI label "
            "map, and train the model on your own corrected segmentations. Needs Slicer {floor} or later and the "
            "PyTorch extension. Runs in the background: Slicer stays responsive and Cancel stops it at once."
        ).format(floor=dependencies.SLICER_FLOOR)
        self.parent.acknowledgementText = _(
            "Developed as an open-source 3D Slicer extension. Uses PyTorch, NumPy, SciPy and pynrrd. "
            "The shipped default model was trained on synthetic phantoms; see Resources/Models/README.md."
        )
        iconPath = MODULE_DIR / "Resources" / "Icons" / "TeethSegmentation.png"
        if iconPath.exists():
            self.parent.icon = qt.QIcon(str(iconPath))
        slicer.app.connect("startupCompleted()", loadTerminology)


def loadTerminology() -> None:
    """Once per session: at start-up, or at setup() after the Extension Wizard loaded the module later."""
    if getattr(loadTerminology, "done", False):
        return
    try:
        mrml.load_terminology(resourcePath("Terminology", "TeethSegmentation.term.json"))
        loadTerminology.done = True
    except (ValueError, AttributeError) as error:
        logging.warning(f"TeethSegmentation: {error}")


class TeethSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: TeethSegmentationLogic | None = None
        self.presenter = Presenter(tr=_)
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._tableNodeId = None  # the segmentation the teeth table shows
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.onPoll)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        loadTerminology()
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/TeethSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = TeethSegmentationLogic()
        self.ui.confidenceTable.setColumnCount(4)
        self.ui.confidenceTable.setHorizontalHeaderLabels([_("FDI"), _("Tooth"), _("Confidence"), _("Volume (mm³)")])
        self.ui.trainingPairsTable.setColumnCount(2)
        self.ui.trainingPairsTable.setHorizontalHeaderLabels([_("Volume"), _("Segmentation")])
        self.ui.casesTable.setColumnCount(2)
        self.ui.casesTable.setHorizontalHeaderLabels([_("Case"), _("Added")])
        self.fillCasesTable()
        self.ui.logCollapsibleButton.collapsed = True
        self._connectSignals()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def _connectSignals(self) -> None:
        for button, slot in ((self.ui.segmentButton, self.onSegmentButton), (self.ui.cancelButton, self.onCancel),
                             (self.ui.cancelTrainButton, self.onCancel), (self.ui.exportStlButton, self.onExportStl),
                             (self.ui.exportLabelmapButton, self.onExportLabelmap),
                             (self.ui.trainButton, self.onTrainButton), (self.ui.renumberButton, self.onRenumber),
                             (self.ui.mergeButton, self.onMerge), (self.ui.undoButton, self.onUndo),
                             (self.ui.addTrainingPairButton, self.onAddTrainingPair),
                             (self.ui.removeTrainingPairButton, self.onRemoveTrainingPair),
                             (self.ui.addCaseButton, self.onAddCase), (self.ui.removeCaseButton, self.onRemoveCase),
                             (self.ui.improveButton, self.onImprove), (self.ui.cancelImproveButton, self.onCancel),
                             (self.ui.makeDefaultButton, self.onMakeDefault), (self.ui.revertButton, self.onRevert)):
            button.connect("clicked(bool)", lambda _checked=False, slot=slot: slot())
        self.ui.modelSelector.connect("activated(int)", self.onModelSelected)
        self.ui.confidenceTable.connect("cellDoubleClicked(int,int)", self.onConfidenceRowDoubleClicked)
        self.ui.confidenceTable.connect("itemSelectionChanged()", self.updateGui)
        self.ui.casesTable.connect("itemSelectionChanged()", self.updateGui)

    # --- life cycle (as the Slicer template)

    def cleanup(self) -> None:
        self.presenter.cancel()
        if self.presenter.probe is not None:
            self.presenter.probe.cancel()
        self._timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.fillCasesTable()
        self.probeDevice()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        if self.presenter.task == "segment":  # its nodes are going away; training works on exported files
            self.onCancel()
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

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode, self._parameterNodeGuiTag = inputParameterNode, None
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        self.showModelChoice()
        output = self._parameterNode.outputSegmentation
        if (output.GetID() if output else None) != self._tableNodeId:  # keep the selected row otherwise
            self.fillConfidenceTable()
        self.updateGui()

    # --- what the presenter decides, shown

    def inputs(self) -> Inputs:
        params = self._parameterNode
        volume = params.inputVolume if params else None
        output = params.outputSegmentation if params else None
        return Inputs(input_name=volume.GetName() if volume else "", output_name=output.GetName() if output else "",
                      segment_count=output.GetSegmentation().GetNumberOfSegments() if output else 0,
                      training_pairs=self.ui.trainingPairsTable.rowCount, library_cases=self.ui.casesTable.rowCount,
                      case_selected=self.selectedCaseId() is not None,
                      user_default=self.logic.defaultModelFile() is not None)

    def updateGui(self, caller=None, event=None) -> None:
        buttons = self.presenter.buttons(self.inputs())
        self.ui.segmentButton.enabled = buttons.segment
        self.ui.segmentButton.toolTip = buttons.segment_tooltip
        self.ui.cancelButton.enabled = buttons.cancel
        self.ui.cancelTrainButton.enabled = buttons.cancel_train
        self.ui.trainButton.enabled = buttons.train
        for button in (self.ui.exportStlButton, self.ui.exportLabelmapButton):
            button.enabled = buttons.export
        self.updateImproveButtons(buttons)
        selected = self.selectedSegmentId() is not None
        self.ui.renumberButton.enabled = self.ui.mergeButton.enabled = buttons.correct and selected
        lastUndo = self.logic.undoCopies.last(self._parameterNode.outputSegmentation) if (
            self._parameterNode and self._parameterNode.outputSegmentation) else None
        self.ui.undoButton.enabled = lastUndo is not None and not self.presenter.busy
        self.ui.undoButton.toolTip = _("Undo: {what}").format(what=lastUndo) if lastUndo else _("Nothing to undo.")
        self.ui.statusLabel.text = self.presenter.status
        self.ui.progressBar.value = int(round(100 * self.presenter.fraction))
        self.ui.deviceLabel.text = self.presenter.device

    def updateImproveButtons(self, buttons) -> None:
        self.ui.addCaseButton.enabled = buttons.add_case
        self.ui.removeCaseButton.enabled = buttons.remove_case
        self.ui.improveButton.enabled = buttons.improve
        self.ui.cancelImproveButton.enabled = buttons.cancel_improve
        self.ui.makeDefaultButton.enabled = buttons.make_default
        self.ui.revertButton.enabled = buttons.revert

    def showModelChoice(self) -> None:
        """The combo box shows the parameter node's model path, whatever set it; the card below, that model's."""
        current = self._parameterNode.modelPath if self._parameterNode else ""
        items, index = model_choices(self.logic.userModels(), current, tr=_, user_default=self.logic.defaultModelCard())
        combo = self.ui.modelSelector
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        for label, path in items:
            combo.addItem(label, path)
        combo.setCurrentIndex(index)
        combo.blockSignals(wasBlocked)
        if self._parameterNode is not None:
            self.ui.modelCardLabel.text = card_text(*self.logic.modelCard(self._parameterNode), tr=_)

    def onModelSelected(self, index: int) -> None:
        if self._parameterNode is not None:
            self._parameterNode.modelPath = self.ui.modelSelector.itemData(index) or ""

    def appendLog(self, line: str) -> None:
        self.ui.logTextEdit.appendPlainText(line)

    # --- the background job and the device probe

    def startJob(self, runner, task: str) -> None:
        self.presenter.start(runner, task)
        self._timer.start()
        self.updateGui()

    def probeDevice(self) -> None:
        """Ask a child Python which GPU torch sees; it never blocks or gates anything."""
        if self.presenter.needs_probe and not dependencies.problems():
            self.presenter.start_probe(self.logic.startDeviceProbe())
            self._timer.start()

    def onPoll(self) -> None:
        outcome = self.presenter.poll()
        for line in self.presenter.take_log():
            self.appendLog(line)
        if not self.presenter.busy and self.presenter.probe is None:
            self._timer.stop()
        if outcome is not None:
            self.onOutcome(outcome)  # updates the GUI, failing or not
        self.updateGui()

    def onOutcome(self, outcome) -> None:
        if outcome.status == "ok" and outcome.task == "segment":
            self.attempt(_("Could not load the result."), self.loadResult, outcome.runner)
        elif outcome.status == "ok" and outcome.task == "finetune":
            self.attempt(_("Fine-tuning finished but its model could not be kept."), self.useFinetuned, outcome.runner)
        elif outcome.status == "ok":
            self.attempt(_("Training finished but its model could not be used."), self.useModel, outcome.runner)
        else:
            outcome.runner.cleanup()
            self.logic.forgetSegmentation()
            if outcome.status != "cancelled":
                self.ui.logCollapsibleButton.collapsed = False
                slicer.util.errorDisplay(outcome.message, detailedText=outcome.details)

    def loadResult(self, runner) -> None:
        self.logic.finishSegmentation(runner)
        self.fillConfidenceTable()
        self.presenter.finished(_("Found {count} teeth.").format(count=self.ui.confidenceTable.rowCount))

    def useModel(self, runner) -> None:
        model = self.logic.finishTraining(runner, self._parameterNode)
        self.presenter.finished(_("Trained {name}; it is now selected for segmentation.").format(name=model.stem))

    def attempt(self, message: str, action, *args) -> None:
        """Run an action under Slicer's error display; on failure the status says ``message`` too."""
        try:
            with slicer.util.tryWithErrorDisplay(message, waitCursor=True):
                action(*args)
        except Exception:
            self.presenter.failed(message)
            raise  # as tryWithErrorDisplay does: the traceback goes to the Python console
        finally:
            self.updateGui()

    # --- buttons

    def onSegmentButton(self) -> None:
        if not self.ensureDependencies():
            return
        warning = self.logic.inputWarning(self._parameterNode)
        if warning:  # said, not asked: the run goes ahead
            self.appendLog(warning)
            slicer.util.showStatusMessage(warning, 10000)
        with slicer.util.tryWithErrorDisplay(_("Could not start the segmentation."), waitCursor=True):
            self.startJob(self.logic.startSegmentation(self._parameterNode), "segment")
        self.probeDevice()

    def onTrainButton(self) -> None:
        if not self.ensureDependencies():
            return
        with slicer.util.tryWithErrorDisplay(_("Could not start training."), waitCursor=True):
            self.startJob(self.logic.startTraining(self._parameterNode, self.trainingPairs()), "train")

    def onCancel(self) -> None:
        self.presenter.cancel()
        self.logic.forgetSegmentation()
        self.updateGui()

    def onExportStl(self) -> None:
        self.attempt(_("Could not export STL files."), self.exportStl)

    def exportStl(self) -> None:
        files = self.logic.exportStl(self._parameterNode)
        self.presenter.note(_("Wrote {count} STL files to {folder}.").format(
            count=len(files), folder=self._parameterNode.stlFolder))

    def onExportLabelmap(self) -> None:
        path = qt.QFileDialog.getSaveFileName(self.parent, _("Save FDI label map"), "", "NRRD (*.nrrd)")
        if path:
            self.attempt(_("Could not export the label map."), self.exportLabelmap, path)

    def exportLabelmap(self, path: str) -> None:
        written = self.logic.exportLabelmap(self._parameterNode, path)
        self.presenter.note(_("Wrote {path}.").format(path=written))

    def ensureDependencies(self) -> bool:
        try:
            self.logic.ensureDependencies(confirm=slicer.util.confirmOkCancelDisplay)
            return True
        except dependencies.InstallError as error:
            if error.restartRequired and slicer.util.confirmOkCancelDisplay(
                    error.message + " " + _("Restart Slicer now?")):
                slicer.util.restart()
            else:
                slicer.util.errorDisplay(error.message)
            return False

    # --- the teeth table and corrections

    def fillConfidenceTable(self) -> None:
        node = self._parameterNode.outputSegmentation if self._parameterNode else None
        self._tableNodeId = node.GetID() if node else None
        rows = tooth_segments.tooth_rows(node) if node else []
        table = self.ui.confidenceTable
        table.setRowCount(len(rows))
        for row, (segmentId, value, name, confidence, volume) in enumerate(rows):
            cells = (str(value), name, "" if confidence is None else f"{confidence:.2f}",
                     "" if volume is None else f"{volume:.0f}")
            for column, text in enumerate(cells):
                item = qt.QTableWidgetItem(text)
                item.setData(qt.Qt.UserRole, segmentId)
                table.setItem(row, column, item)
        table.resizeColumnsToContents()

    def selectedSegmentId(self) -> str | None:
        items = self.ui.confidenceTable.selectedItems()
        return items[0].data(qt.Qt.UserRole) if items else None

    def onConfidenceRowDoubleClicked(self, row: int, column: int) -> None:
        if not self.logic.jumpToTooth(self._parameterNode, int(self.ui.confidenceTable.item(row, 0).text())):
            slicer.util.showStatusMessage(_("This tooth has no voxels left."), 3000)

    def onRenumber(self) -> None:
        self.attempt(_("Could not renumber the tooth."), self.renumberSelected)

    def renumberSelected(self) -> None:
        self.logic.renumberTooth(self._parameterNode, self.selectedSegmentId())
        self.fillConfidenceTable()
        self.presenter.note(_("Renumbered to {fdi}.").format(fdi=self._parameterNode.renumberTo))

    def onMerge(self) -> None:
        self.attempt(_("Could not merge the segments."), self.mergeSelected)

    def mergeSelected(self) -> None:
        self.logic.mergeTooth(self._parameterNode, self.selectedSegmentId())
        self.fillConfidenceTable()
        self.presenter.note(_("Merged into {fdi}.").format(fdi=self._parameterNode.mergeInto))

    def onUndo(self) -> None:
        self.attempt(_("Could not undo."), self.undoLast)

    def undoLast(self) -> None:
        done = self.logic.undoCorrection(self._parameterNode)
        self.fillConfidenceTable()
        self.presenter.note(_("Undone: {what}.").format(what=done) if done else _("Nothing to undo."))

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
        self.updateGui()

    def onRemoveTrainingPair(self) -> None:
        self.ui.trainingPairsTable.removeRow(self.ui.trainingPairsTable.currentRow())
        self.updateGui()

    def trainingPairs(self) -> list[tuple]:
        table, pairs = self.ui.trainingPairsTable, []
        for row in range(table.rowCount):
            nodes = [slicer.mrmlScene.GetNodeByID(table.item(row, column).data(qt.Qt.UserRole)) for column in (0, 1)]
            if all(nodes):
                pairs.append(tuple(nodes))
        return pairs

    # --- the case library and Improve model

    def fillCasesTable(self) -> None:
        rows = case_rows(self.logic.libraryCases())
        table = self.ui.casesTable
        table.setRowCount(len(rows))
        for row, (caseId, title, added) in enumerate(rows):
            for column, text in enumerate((title, added)):
                item = qt.QTableWidgetItem(text)
                item.setData(qt.Qt.UserRole, caseId)
                table.setItem(row, column, item)
        table.resizeColumnsToContents()

    def selectedCaseId(self) -> str | None:
        items = self.ui.casesTable.selectedItems()
        return items[0].data(qt.Qt.UserRole) if items else None

    def onAddCase(self) -> None:
        self.attempt(_("Could not add the case to your training cases."), self.addCase)

    def addCase(self) -> None:
        self.logic.addTrainingCase(self._parameterNode)
        self.fillCasesTable()
        self.presenter.note(_("Added {volume} to your training cases ({count} in all).").format(
            volume=self._parameterNode.inputVolume.GetName(), count=self.ui.casesTable.rowCount))

    def onRemoveCase(self) -> None:
        self.attempt(_("Could not remove the case."), self.removeCase)

    def removeCase(self) -> None:
        self.logic.removeTrainingCase(self.selectedCaseId())
        self.fillCasesTable()
        self.presenter.note(_("Removed the case ({count} left).").format(count=self.ui.casesTable.rowCount))

    def onImprove(self) -> None:
        if not self.ensureDependencies():
            return
        self.ui.improveResultLabel.text = ""
        with slicer.util.tryWithErrorDisplay(_("Could not start the fine-tuning."), waitCursor=True):
            self.startJob(self.logic.startFinetune(self._parameterNode), "finetune")

    def useFinetuned(self, runner) -> None:
        """Keep the new model; the presenter decides whether it becomes the default or waits for the user."""
        model = self.logic.finishFinetune(runner)
        verdict = self.presenter.finetune_verdict(runner.result, str(model))
        if verdict.install:
            self.logic.makeDefault(str(model), self._parameterNode)
        self.ui.improveResultLabel.text = verdict.message
        self.showModelChoice()

    def onMakeDefault(self) -> None:
        self.attempt(_("Could not make the model your default."), self.makeCandidateDefault)

    def makeCandidateDefault(self) -> None:
        name = pathlib.Path(self.presenter.candidate).stem
        self.logic.makeDefault(self.presenter.candidate, self._parameterNode)
        self.presenter.default_changed(_("{name} is now your default model.").format(name=name))
        self.showModelChoice()

    def onRevert(self) -> None:
        self.attempt(_("Could not revert to the shipped model."), self.revertToShipped)

    def revertToShipped(self) -> None:
        self.logic.revertToShipped(self._parameterNode)
        self.presenter.default_changed(_("The shipped model is the default again."))
        self.showModelChoice()
