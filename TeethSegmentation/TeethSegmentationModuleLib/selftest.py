"""The module's self-test, run inside Slicer (Reload and Test, or ctest): the widget on a fresh scene, a real
segmentation of a phantom checked against its truth, Cancel, and the Improve model loop (in a settings
folder of its own: the user's case library and default model are never touched). Skipped, saying why, when the engine's
packages are missing: it installs nothing.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
import tempfile
import time

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from TeethSegmentationModuleLib import dependencies
from TeethSegmentationModuleLib.logic import TeethSegmentationLogic

TIMEOUT_S = 600
MIN_IDENTIFICATION = 0.9
PHANTOM_SEED = "3"  # a case the shipped model numbers fully (Testing/test_mrml_placement.py checks the same)


class TeethSegmentationTest(ScriptedLoadableModuleTest):
    """Run by Slicer's Reload and Test (runTest) or by ctest's unittest loader (each test_* on its own)."""

    work: pathlib.Path | None = None  # one phantom for all the tests of a run

    def setUp(self) -> None:
        problems = dependencies.problems()
        if problems:
            reason = ("TeethSegmentation self-test skipped: " + "; ".join(problems)
                      + ". Press Segment teeth once to install them, then run the test again.")
            logging.warning(reason)
            self.skipTest(reason)
        slicer.mrmlScene.Clear()
        if TeethSegmentationTest.work is None:
            TeethSegmentationTest.work = pathlib.Path(tempfile.mkdtemp(prefix="TeethSegmentationTest-",
                                                                       dir=slicer.app.temporaryPath))
            self._makePhantom()

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.work is not None:
            shutil.rmtree(cls.work, ignore_errors=True)
            cls.work = None

    def runTest(self) -> None:
        try:
            for test in (self.test_widget_segments_a_fresh_scene, self.test_identification_against_truth,
                         self.test_cancel_segmentation, self.test_improve_model_loop):
                self.setUp()
                test()
        finally:
            self.tearDownClass()

    # --- helpers

    def _waitWhile(self, condition, poll=lambda: None) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while condition():
            self.assertLess(time.monotonic(), deadline, "the engine did not get there in time")
            poll()
            slicer.app.processEvents()
            time.sleep(0.05)

    def _makePhantom(self) -> None:
        """A tiny phantom with its truth, made by the engine in the background."""
        from TeethSegmentationLib.runner import EngineRunner

        runner = EngineRunner(["phantom", str(self.work), "--cases", "1", "--seed", PHANTOM_SEED, "--size", "tiny"],
                              python=TeethSegmentationLogic.pythonExecutable()).start()
        self._waitWhile(lambda: runner.running, runner.poll)
        runner.poll()
        self.assertEqual(runner.exit_status, "ok", runner.error_message)

    def _loadPhantom(self):
        return slicer.util.loadVolume(str(self.work / "case00.nrrd"))

    # --- tests

    def test_widget_segments_a_fresh_scene(self) -> None:
        """Segment is enabled with no output chosen; '<volume> teeth' is made, filled, and reused next time."""
        self.delayDisplay("Segmenting from the widget on a fresh scene")
        volume = self._loadPhantom()
        slicer.util.selectModule("TeethSegmentation")
        widget = slicer.util.getModuleWidget("TeethSegmentation")
        params = widget._parameterNode
        params.inputVolume, params.outputSegmentation, params.device, params.modelPath = volume, None, "cpu", ""
        self.assertTrue(widget.ui.segmentButton.enabled, widget.ui.segmentButton.toolTip)
        self.assertFalse(widget.ui.cancelButton.enabled)
        self.assertEqual(widget.ui.modelPathLineEdit.currentPath, "")  # not "."
        for _run in range(2):  # the second run reuses "<volume> teeth"
            widget.ui.segmentButton.click()
            self.assertTrue(widget.ui.cancelButton.enabled)
            self._waitWhile(lambda: widget.presenter.busy)
            self.assertEqual(params.outputSegmentation.GetName(), f"{volume.GetName()} teeth")
            self.assertGreater(widget.ui.confidenceTable.rowCount, 0, widget.presenter.status)
            self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"), 1)
        self._waitWhile(lambda: widget.presenter.probe is not None)
        self.assertTrue(widget.ui.deviceLabel.text)
        self.delayDisplay("Test passed")

    def test_identification_against_truth(self) -> None:
        """The teeth in the scene, exported as the user would, carry the right FDI numbers (>= 0.9 of them)."""
        from TeethSegmentationLib.io.orientation import reorient_to_ras
        from TeethSegmentationLib.io.read_write import read_volume
        from TeethSegmentationLib.metrics import evaluate_pair

        self.delayDisplay("Segmenting a phantom and checking the numbers against its truth")
        logic = TeethSegmentationLogic()
        params = logic.getParameterNode()
        params.inputVolume, params.outputSegmentation, params.device = self._loadPhantom(), None, "cpu"
        params.modelPath = ""  # the shipped model
        runner = logic.startSegmentation(params)
        self._waitWhile(lambda: runner.running, runner.poll)
        runner.poll()
        self.assertEqual(runner.exit_status, "ok", runner.error_message)
        logic.finishSegmentation(runner)
        self.assertFalse(pathlib.Path(runner.temp_folder).exists(), "the private folder was not removed")
        exported = logic.exportLabelmap(params, str(self.work / "result"))
        # Slicer flips axes with negative directions when it reads (the phantom has them): compare in RAS order.
        pred, truth = (reorient_to_ras(read_volume(p)) for p in (exported, self.work / "case00.labels.nrrd"))
        metrics = evaluate_pair(pred.array, truth.array)
        self.assertGreaterEqual(metrics["identification_accuracy"], MIN_IDENTIFICATION, metrics)
        params.stlFolder = str(self.work / "stl")
        files = logic.exportStl(params)
        self.assertEqual(len(files), params.outputSegmentation.GetSegmentation().GetNumberOfSegments())
        self.delayDisplay("Test passed")

    def test_cancel_segmentation(self) -> None:
        """Cancel ends the launcher and the Python it started (a tree-kill), reported as cancelled, not failed."""
        import psutil

        self.delayDisplay("Cancelling a background segmentation")
        logic = TeethSegmentationLogic()
        params = logic.getParameterNode()
        params.inputVolume, params.outputSegmentation, params.device = self._loadPhantom(), None, "cpu"
        runner = logic.startSegmentation(params)
        # "start" comes before torch is imported and the model loaded: the engine is surely still busy.
        self._waitWhile(lambda: runner.running and not any(e["event"] == "start" for e in runner.events), runner.poll)
        self.assertTrue(runner.running, "the engine ended before it could be cancelled")
        family = [runner.pid] + [p.pid for p in psutil.Process(runner.pid).children(recursive=True)]
        runner.cancel()
        runner.cleanup()
        self.assertEqual(runner.exit_status, "cancelled")
        self.assertFalse(pathlib.Path(runner.temp_folder).exists(), "the private folder was not removed")
        alive = [pid for pid in family if psutil.pid_exists(pid)
                 and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        self.assertEqual(alive, [], "processes survived Cancel")
        self.delayDisplay("Test passed")

    def test_improve_model_loop(self) -> None:
        """Add to training cases, Remove, Improve model (a real fine-tuning), the verdict, the model list, Revert."""
        self.delayDisplay("Add to training cases, Improve model, Revert to shipped model")
        original = TeethSegmentationLogic.settingsFolder
        TeethSegmentationLogic.settingsFolder = staticmethod(lambda: self.work / "settings")
        try:
            widget = self._widgetWithCorrectedPhantom()
            self._addAndRemoveCases(widget)
            self._improveAndRevert(widget)
        finally:
            TeethSegmentationLogic.settingsFolder = original
            slicer.util.getModuleWidget("TeethSegmentation").fillCasesTable()  # the user's own library again
        self.delayDisplay("Test passed")

    def _widgetWithCorrectedPhantom(self):
        """The widget with the phantom as input and its truth as the (corrected) output segmentation."""
        from TeethSegmentationLib import mrml

        volume = self._loadPhantom()
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "corrected teeth")
        segmentation.CreateDefaultDisplayNodes()
        mrml.load_fdi_labelmap_as_segments(self.work / "case00.labels.nrrd", segmentation, volume, None)
        slicer.util.selectModule("TeethSegmentation")
        widget = slicer.util.getModuleWidget("TeethSegmentation")
        params = widget._parameterNode
        params.inputVolume, params.outputSegmentation, params.device, params.modelPath = volume, segmentation, "cpu", ""
        widget.fillCasesTable()
        return widget

    def _addAndRemoveCases(self, widget) -> None:
        self.assertEqual(widget.ui.casesTable.rowCount, 0)
        self.assertFalse(widget.ui.improveButton.enabled)
        for _case in range(3):
            self.assertTrue(widget.ui.addCaseButton.enabled, widget.presenter.status)
            widget.ui.addCaseButton.click()
        self.assertEqual(widget.ui.casesTable.rowCount, 3, widget.presenter.status)
        widget.ui.casesTable.selectRow(0)
        self.assertTrue(widget.ui.removeCaseButton.enabled)
        widget.ui.removeCaseButton.click()
        self.assertEqual(widget.ui.casesTable.rowCount, 2)
        self.assertEqual(len(list((self.work / "settings" / "cases").iterdir())), 2)

    def _improveAndRevert(self, widget) -> None:
        models = widget.ui.modelSelector.count
        widget.ui.improveButton.click()
        self.assertTrue(widget.ui.cancelImproveButton.enabled)
        self._waitWhile(lambda: widget.presenter.busy)
        self.assertTrue(widget.ui.improveResultLabel.text.startswith("On your held-back scan"), widget.presenter.status)
        self.assertEqual(widget.ui.modelSelector.count, models + 1)
        if widget.ui.makeDefaultButton.enabled:  # it did not do better: the user chooses it anyway
            self.assertFalse(widget.ui.revertButton.enabled)
            widget.ui.makeDefaultButton.click()
        self.assertTrue(widget.ui.revertButton.enabled)
        self.assertTrue(widget.ui.modelSelector.itemText(0).startswith("Default model (yours"))
        self.assertTrue(widget.ui.modelCardLabel.text.startswith("Fine-tuned on 2 of your cases"))
        widget.ui.revertButton.click()
        self.assertFalse(widget.ui.revertButton.enabled)
        self.assertEqual(widget.ui.modelSelector.itemText(0), "Default model (shipped)")
