"""The case library: add, list, remove, atomically; scene pairs exported into it through mrml.py on slicer-core."""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np
import pytest

from TeethSegmentationLib.case_library import CaseLibrary, revert_to_shipped, user_default_model
from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.io.read_write import read_volume
from TeethSegmentationLib.training.corrected_labels import read_corrected_labels

TEETH = {11: (slice(3, 9), slice(3, 9), slice(3, 9)), 21: (slice(12, 18), slice(3, 8), slice(4, 10)),
         36: (slice(4, 10), slice(14, 21), slice(12, 18))}


def _write_case(folder: Path) -> tuple[Path, Path]:
    """A small oblique LPS scan and its FDI label map (three box teeth)."""
    fdi = np.zeros((24, 24, 20), np.uint8)
    for number, box in TEETH.items():
        fdi[box] = number
    angle = np.deg2rad(12)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    header = {"space": "left-posterior-superior", "space directions": (rotation @ np.diag([0.3, 0.35, 0.4])).T,
              "space origin": np.array([-12.5, 30.25, 7.0])}
    nrrd.write(str(folder / "Doe_Jane.nrrd"), (200 + 1000 * (fdi > 0)).astype(np.int16), header)
    nrrd.write(str(folder / "Doe_Jane.teeth.nrrd"), fdi, header)
    return folder / "Doe_Jane.nrrd", folder / "Doe_Jane.teeth.nrrd"


@pytest.fixture
def corrected(slicer_scene, tmp_path):
    """(volume node, segmentation node): our result, tooth 21 renamed to 22, a caries segment over 11."""
    from TeethSegmentationLib import mrml

    image, teeth = _write_case(tmp_path)
    volume = slicer_scene.logics["volumes"].AddArchetypeVolume(str(image), "Doe_Jane", 0)
    node = slicer_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Teeth")
    node.CreateDefaultDisplayNodes()
    mrml.load_fdi_labelmap_as_segments(teeth, node, volume, None, show_3d=False)
    segmentation = node.GetSegmentation()
    segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("21 upper left central incisor")).SetName("22")
    caries = np.zeros((20, 24, 24), np.uint8)  # K, J, I
    caries[5:7, 5:7, 5:7] = 1
    sid = segmentation.AddEmptySegment("caries", "caries")
    slicer_scene.slicer.util.updateSegmentBinaryLabelmapFromArray(caries, node, sid, volume)
    return volume, node


def test_export_pairs_into_the_library_list_and_remove(slicer_scene, corrected, tmp_path):
    from TeethSegmentationLib import mrml

    volume, node = corrected
    library = CaseLibrary(tmp_path / "library")
    first = mrml.export_case_to_library(volume, node, library.root)
    second = mrml.export_case_to_library(volume, node, library.root)
    listed = library.list()
    assert [c.case_id for c in listed] == sorted([first, second]) and all(c.title == "Doe_Jane" for c in listed)
    assert all("Doe" not in c.case_id for c in listed)  # ids never carry the volume's (patient's) name
    case = library.get(first)
    image = read_volume(case.image)
    labels = read_corrected_labels(case.segmentation, image, case.title)
    expected = read_volume(tmp_path / "Doe_Jane.teeth.nrrd").array
    assert np.allclose(image.ijk_to_ras, read_volume(tmp_path / "Doe_Jane.nrrd").ijk_to_ras, atol=1e-5)
    assert labels.teeth == [11, 22, 36]
    assert np.array_equal(labels.fdi == 11, expected == 11)  # the caries segment does not punch a hole
    assert np.array_equal(labels.fdi == 22, expected == 21)  # renamed in Slicer: the new number
    assert any("'caries'" in w for w in labels.warnings)
    library.remove(first)
    assert [c.case_id for c in library.list()] == [second]
    assert sorted(p.name for p in library.cases_dir.iterdir()) == [second]


def test_a_failed_export_adds_nothing(slicer_scene, corrected, tmp_path):
    from TeethSegmentationLib import mrml

    volume, _ = corrected
    empty = slicer_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Empty")
    library = CaseLibrary(tmp_path / "library")
    with pytest.raises(ValueError, match="no segments"):
        mrml.export_case_to_library(volume, empty, library.root)
    volume.SetAndObserveImageData(None)
    node = corrected[1]
    with pytest.raises(ValueError, match="no image data"):
        mrml.export_case_to_library(volume, node, library.root)
    assert library.list() == [] and list(library.cases_dir.iterdir()) == []


def test_add_files_remove_unknown_and_user_default(tmp_path):
    image, teeth = _write_case(tmp_path)
    library = CaseLibrary(tmp_path / "library")
    case = library.add_files(image, teeth, "scan one")
    assert case.image.read_bytes() == image.read_bytes() and case.segmentation.read_bytes() == teeth.read_bytes()
    with pytest.raises(InputError, match="no case 'nope'"):
        library.remove("nope")
    with pytest.raises(InputError, match="does not exist"):
        library.add_files(tmp_path / "missing.nrrd", teeth)
    assert [c.case_id for c in library.list()] == [case.case_id]
    default = user_default_model(library.root)
    default.parent.mkdir(parents=True)
    default.write_bytes(b"model")
    revert_to_shipped(library.root)
    assert not default.exists()


def test_case_ids_made_within_one_millisecond_keep_their_order():
    """The newest case is the held-back one: ids made in a burst (a script adding cases) still sort in the
    order they were made, and stay neutral (no name in them)."""
    from TeethSegmentationLib.case_library import new_case_id

    ids = [new_case_id() for _ in range(300)]
    assert sorted(ids) == ids and len(set(ids)) == 300
    assert all(len(i) == len(ids[0]) and i.startswith("case-") for i in ids)
