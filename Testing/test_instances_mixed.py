"""The instance step with a 14-class types network: primary teeth keep their own numbers; 9-class inputs and
adult scans keep the permanent ones."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_arch import make_arch, probabilities

from TeethSegmentationLib.fdi import FDI_NUMBERS, is_primary
from TeethSegmentationLib.instances.teeth import label_teeth

SPACING = 0.8


@pytest.fixture(scope="module")
def child_arch():
    """A dentition whose places 1-5 hold primary teeth (51-55 ...), behind them the permanent molars."""
    arch = make_arch(spacing=SPACING, missing=(18, 28, 38, 48))
    labels = arch.labels.copy()
    for n in FDI_NUMBERS:
        if n % 10 <= 5:
            labels[arch.labels == n] = n + 40
    return labels, arch.ijk_to_ras


def test_fourteen_classes_number_primary_teeth(child_arch):
    labels, affine = child_arch
    teeth_prob, type_probs = probabilities(labels, num_classes=14)
    result = label_teeth(teeth_prob, type_probs, affine)
    truth = sorted(int(v) for v in np.unique(labels) if v)
    assert sorted(t.fdi for t in result.teeth) == truth
    assert not any(t.developing for t in result.teeth) and not result.unassigned
    for n in (55, 61, 73, 84):
        assert np.mean(result.fdi_map[labels == n] == n) > 0.9


def test_nine_classes_never_give_primary_numbers(child_arch):
    labels, affine = child_arch
    teeth_prob, type_probs = probabilities(labels)  # primary teeth seen as the type of their place
    result = label_teeth(teeth_prob, type_probs, affine)
    assert not any(is_primary(int(v)) for v in np.unique(result.fdi_map))
    assert sorted(t.fdi for t in result.teeth) == sorted(n for n in FDI_NUMBERS if n % 10 != 8)


def test_adult_arch_with_a_fourteen_class_model_keeps_todays_numbers():
    arch = make_arch(spacing=SPACING)
    nine = label_teeth(*probabilities(arch.labels, noise=0.0), arch.ijk_to_ras)
    fourteen = label_teeth(*probabilities(arch.labels, noise=0.0, num_classes=14), arch.ijk_to_ras)
    assert [t.fdi for t in fourteen.teeth] == [t.fdi for t in nine.teeth] == list(sorted(FDI_NUMBERS))
    assert np.array_equal(fourteen.fdi_map, nine.fdi_map)


def test_model_file_with_fourteen_classes_round_trips_and_others_are_refused(tmp_path):
    from TeethSegmentationLib.errors import InputError
    from TeethSegmentationLib.nets.model_file import load_model, model_to_dict, new_model, save_model

    model = new_model(types_arch={"out_channels": 14, "start_filters": 2}, teeth_arch={"start_filters": 2})
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.num_classes == 14 and new_model().num_classes == 9
    classes = model_to_dict(loaded)["classes"]
    assert classes["8"] == "third molar" and classes["9"] == "primary central incisor" and len(classes) == 14
    odd = new_model(types_arch={"out_channels": 12, "start_filters": 2}, teeth_arch={"start_filters": 2})
    save_model(odd, tmp_path / "odd.pt")
    with pytest.raises(InputError, match="12 classes"):
        load_model(tmp_path / "odd.pt")


def test_training_targets_of_a_mixed_label_map():
    from TeethSegmentationLib.training.dataset import detect_label_kind, stage_target

    labels = np.array([0, 16, 55, 15, 85], dtype=np.uint8)
    assert detect_label_kind(np.unique(labels)) == "fdi"
    assert stage_target(labels, "fdi", "types").tolist() == [0, 6, 5, 5, 5]
    assert stage_target(labels, "fdi", "types", 14).tolist() == [0, 6, 13, 5, 13]
    assert stage_target(labels, "fdi", "teeth", 14).tolist() == [0, 1, 1, 1, 1]


@pytest.mark.parametrize("seed, age, least", [(3, 9.0, 1.0), (2, 8.0, 0.95)])
def test_mixed_phantoms_with_ideal_fourteen_class_probabilities(seed, age, least):
    """The instance step on a child's phantom, given network-like 14-class probabilities from its truth: what
    a retrained model's numbers could reach (ages 6.5/8/9/10/12 give 0.79/0.98/1.0/0.93/1.0 at this writing)."""
    from TeethSegmentationLib.metrics import evaluate_pair
    from TeethSegmentationLib.phantom import make_phantom

    case = make_phantom(seed, size="small", dentition="mixed", age=age, convention="ras_identity")
    labels = case.labels.array
    result = label_teeth(*probabilities(labels, num_classes=14), case.labels.ijk_to_ras, log_warnings=False)
    scores = evaluate_pair(result.fdi_map, labels, case.labels.spacing)
    assert scores["identification_accuracy"] >= least, scores["misidentified"]
    assert scores["developing_recall"] == 1.0 and scores["developing_numbering"] == 1.0
    found = sorted(t.fdi for t in result.teeth if t.developing)
    assert set(found) <= set(scores["developing_fdi"]) and len(found) >= len(scores["developing_fdi"]) - 3
