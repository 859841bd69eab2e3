"""The module's Logic and parameter node: starts the engine in a child process, moves data through mrml.py.

Usable without the widget (the self-test drives it the way the widget does). Scene work lives in
``TeethSegmentationLib.mrml`` and ``corrections`` (tested on slicer-core), process work in ``runner``.
"""

from __future__ import annotations

import json
import logging
import pathlib
import shutil
import sys
import tempfile
from typing import Annotated, Any

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from TeethSegmentationLib import case_library, mrml, tooth_segments
from TeethSegmentationModuleLib import corrections, dependencies

MODULE_DIR = pathlib.Path(__file__).resolve().parent.parent
dependencies.tr = _  # its messages reach the user too


def resourcePath(*parts: str) -> pathlib.Path:
    """A resource installed next to the engine (Resources/...) or, in the source tree, at the top level."""
    for base in (MODULE_DIR, MODULE_DIR.parent):
        candidate = base.joinpath("Resources", *parts)
        if candidate.exists():
            return candidate
    return MODULE_DIR.joinpath("Resources", *parts)


@parameterNodeWrapper
class TeethSegmentationParameterNode:
    """What the module needs; the GUI binds to it, the Logic reads only from it. Paths are str: "" is unset."""

    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode  # none: "<volume> teeth" is made at Segment
    modelPath: str = ""  # "": the shipped default model
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"
    typesOnly: bool = False
    testTimeFlips: bool = False
    stlFolder: str = ""
    renumberTo: Annotated[int, WithinRange(11, 48)] = 11
    shiftRest: bool = False
    mergeInto: Annotated[int, WithinRange(11, 48)] = 11
    epochs: Annotated[int, WithinRange(1, 1000)] = 20
    fineTune: bool = True
    modelName: str = "my-teeth-model"


class TeethSegmentationLogic(ScriptedLoadableModuleLogic):
    """Starts the engine in a child process and moves data between the scene and its files (via mrml.py)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.trainingOutput: pathlib.Path | None = None
        # (input volume, output segmentation, types only) as they were at Segment: the user may change them meanwhile.
        self.segmentationTarget: tuple[Any, Any, bool] | None = None
        self.undoCopies = corrections.UndoCopies()

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
    def settingsFolder() -> pathlib.Path:
        """The module's folder beside Slicer's settings file: Models/ (the user's models), the case library
        (cases/) and the user's default model (models/user-default.pt, see case_library)."""
        return pathlib.Path(slicer.app.slicerUserSettingsFilePath).parent / "TeethSegmentation"

    @staticmethod
    def userModelsFolder() -> pathlib.Path:
        return TeethSegmentationLogic.settingsFolder() / "Models"

    def userModels(self) -> list[pathlib.Path]:
        """Models to choose from; not the user default (on a case-insensitive file system models/ is Models/)."""
        folder, default = self.userModelsFolder(), case_library.user_default_model(self.settingsFolder()).name
        return sorted(p for p in folder.glob("*.pt") if p.name.lower() != default) if folder.is_dir() else []

    @staticmethod
    def defaultModelFile() -> str | None:
        """The user's own default model (made by Improve model), None while the shipped one is the default."""
        path = case_library.user_default_model(TeethSegmentationLogic.settingsFolder())
        return str(path) if path.is_file() else None

    def defaultModelCard(self) -> dict | None:
        """The user default's card ({} without one); None while the shipped model is the default."""
        path = self.defaultModelFile()
        return None if path is None else (case_library.read_card(path) or {})

    def modelCard(self, params: TeethSegmentationParameterNode) -> tuple[dict | None, str]:
        """(card, path) of the model Segment would use; path "" is the shipped model."""
        path = self.modelFile(params) or self.defaultModelFile() or ""
        return (case_library.read_card(path) if path else None), path

    @staticmethod
    def ensureDependencies(confirm=None) -> None:
        dependencies.ensure(confirm)

    @staticmethod
    def privateFolder(prefix: str) -> pathlib.Path:
        return pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=slicer.app.temporaryPath))

    # --- segmentation

    @staticmethod
    def inputWarning(params: TeethSegmentationParameterNode) -> str | None:
        return mrml.volume_warning(params.inputVolume)

    @staticmethod
    def modelFile(params: TeethSegmentationParameterNode) -> str | None:
        path = params.modelPath
        return path if path and pathlib.Path(path).is_file() else None

    @staticmethod
    def segmentArgs(inputPath: str, outputDir: str, params: TeethSegmentationParameterNode) -> list[str]:
        args = ["segment", inputPath, "--output", outputDir, "--device", params.device]
        model = TeethSegmentationLogic.modelFile(params) or TeethSegmentationLogic.defaultModelFile()
        if model:
            args += ["--model", model]
        if params.testTimeFlips:
            args.append("--tta")
        return args

    def startSegmentation(self, params: TeethSegmentationParameterNode):
        """Write the input (uncompressed) to a private folder and start ``segment`` in the background; the runner.

        With no output segmentation chosen, "<volume> teeth" is made (or found again) and chosen.
        """
        from TeethSegmentationLib.runner import EngineRunner

        if not params.inputVolume:
            raise ValueError(_("Select an input volume."))
        params.outputSegmentation = mrml.output_segmentation(params.inputVolume, params.outputSegmentation)
        folder = self.privateFolder("TeethSegmentation-")
        try:
            inputPath = mrml.export_volume_to_nrrd(params.inputVolume, folder / "input.nrrd", compress=False)
            args = self.segmentArgs(str(inputPath), str(folder / "output"), params)
            runner = EngineRunner(args, python=self.pythonExecutable(), temp_folder=folder)
            logging.info("TeethSegmentation: " + " ".join(runner.command))
            runner.start()
        except Exception:  # do not leave the exported scan behind
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.segmentationTarget = (params.inputVolume, params.outputSegmentation, params.typesOnly)
        return runner

    def startDeviceProbe(self):
        from TeethSegmentationLib.runner import device_probe

        return device_probe(self.pythonExecutable()).start()

    @staticmethod
    def resultFiles(outputDir: pathlib.Path) -> tuple[pathlib.Path, dict]:
        """The FDI label map and the report the engine wrote."""
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

    def forgetSegmentation(self) -> None:
        """After a cancel: the next result goes wherever the next Segment says."""
        self.segmentationTarget = None

    @staticmethod
    def jumpToTooth(params: TeethSegmentationParameterNode, fdi: int) -> bool:
        """Centre the slice views on a tooth; False when it has no voxels."""
        center = tooth_segments.tooth_center(params.outputSegmentation, fdi)
        if center is None:
            return False
        slicer.modules.markups.logic().JumpSlicesToLocation(*center, True)
        return True

    # --- corrections (each keeps an undo copy)

    def renumberTooth(self, params: TeethSegmentationParameterNode, segmentId: str) -> dict[str, int]:
        node, fdi = params.outputSegmentation, params.renumberTo
        self.undoCopies.keep(node, _("Renumber to {fdi}").format(fdi=fdi))
        return corrections.renumber(node, segmentId, fdi, shift_rest=params.shiftRest)

    def mergeTooth(self, params: TeethSegmentationParameterNode, segmentId: str) -> None:
        node = params.outputSegmentation
        target = corrections.segment_with_value(node, params.mergeInto)
        if target is None:
            raise ValueError(_("There is no tooth {fdi} to merge into.").format(fdi=params.mergeInto))
        self.undoCopies.keep(node, _("Merge into {fdi}").format(fdi=params.mergeInto))
        corrections.merge_into(node, segmentId, target)

    def undoCorrection(self, params: TeethSegmentationParameterNode) -> str | None:
        return self.undoCopies.undo(params.outputSegmentation)

    # --- export

    @staticmethod
    def exportStl(params: TeethSegmentationParameterNode) -> list[pathlib.Path]:
        if not params.stlFolder:
            raise ValueError(_("Choose a folder for the STL files."))
        return mrml.export_stl_per_tooth(params.outputSegmentation, params.stlFolder)

    @staticmethod
    def exportLabelmap(params: TeethSegmentationParameterNode, path: str) -> pathlib.Path:
        return mrml.export_labelmap_nrrd(params.outputSegmentation, params.inputVolume, path)

    # --- training

    def trainArgs(self, images: list, labelFiles: list, params: TeethSegmentationParameterNode,
                  output: pathlib.Path) -> list[str]:
        args = ["train", "--images", *map(str, images), "--labels", *map(str, labelFiles),
                "--output", str(output), "--epochs", str(params.epochs), "--device", params.device]
        if params.fineTune:
            shipped = str(resourcePath("Models", "teethseg-default.pt"))
            init = self.modelFile(params) or self.defaultModelFile() or shipped
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
            params.modelPath = str(output)
        return output

    # --- the case library and Improve model (teethseg finetune)

    def libraryCases(self) -> list:
        """The case library's cases (case_library.LibraryCase), oldest first."""
        return case_library.CaseLibrary(self.settingsFolder()).list()

    def addTrainingCase(self, params: TeethSegmentationParameterNode) -> str:
        """Save the input volume and its (corrected) output segmentation into the case library; the case id."""
        if not params.inputVolume or not params.outputSegmentation:
            raise ValueError(_("Segment a volume and correct its teeth first."))
        return mrml.export_case_to_library(params.inputVolume, params.outputSegmentation, self.settingsFolder())

    def removeTrainingCase(self, caseId: str) -> None:
        case_library.CaseLibrary(self.settingsFolder()).remove(caseId)

    def startFinetune(self, params: TeethSegmentationParameterNode):
        """Start ``finetune`` on the case library from the model Segment would use; the runner.

        Everything it writes stays in a private folder until :meth:`finishFinetune` publishes the model.
        """
        from TeethSegmentationLib.presenter import finetune_runner

        if not self.libraryCases():
            raise ValueError(_("Add at least one corrected case with 'Add to training cases' first."))
        folder = self.privateFolder("TeethSegmentation-finetune-")
        try:
            init = self.modelFile(params) or self.defaultModelFile()
            runner = finetune_runner(self.settingsFolder(), folder, init, params.device, self.pythonExecutable())
            logging.info("TeethSegmentation: " + " ".join(runner.command))
            return runner.start()
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def finishFinetune(self, runner) -> pathlib.Path:
        """Copy the new model and its card into the user's models (a new dated name); its path there."""
        from TeethSegmentationLib.presenter import STAGED_MODEL

        try:
            return case_library.publish_model(pathlib.Path(runner.temp_folder) / STAGED_MODEL, self.userModelsFolder())
        finally:
            runner.cleanup()

    def makeDefault(self, modelPath: str, params: TeethSegmentationParameterNode | None) -> None:
        """Make a model the user's default; the next Segment uses it (``params``: the default is selected)."""
        case_library.make_default(modelPath, self.settingsFolder())
        if params is not None:
            params.modelPath = ""

    def revertToShipped(self, params: TeethSegmentationParameterNode | None) -> None:
        """Forget the user's default model; the shipped one is the default again, and selected."""
        case_library.revert_to_shipped(self.settingsFolder())
        if params is not None:
            params.modelPath = ""
