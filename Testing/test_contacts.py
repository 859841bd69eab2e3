"""The contacts network (issue 12: a learned cue for touching teeth): its target, its start from the types
network, its place in the model file, its training stage, and its use by the instance step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic_arch import probabilities

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.instances.foreground import sparse_foreground
from TeethSegmentationLib.instances.teeth import label_teeth
from TeethSegmentationLib.nets.contacts_head import contacts_from_types
from TeethSegmentationLib.nets.model_fields import weights_digest
from TeethSegmentationLib.nets.model_file import load_model, model_to_dict, new_model, save_model
from TeethSegmentationLib.training.contact_target import contact_target
from TeethSegmentationLib.training.dataset import stage_target

SPACING = np.array([0.5, 0.5, 0.5])


def _touching_incisors() -> np.ndarray:
    """Two lower central incisors (31, 41: one type) as 5 x 5 x 10 mm blocks touching over a whole face: one
    block with no neck between them."""
    labels = np.zeros((36, 26, 34), np.uint8)
    labels[8:18, 8:18, 7:27] = 41
    labels[18:28, 8:18, 7:27] = 31
    return labels


def test_the_contact_target_is_a_band_on_both_teeth_at_their_interface() -> None:
    labels = _touching_incisors()
    target = contact_target(labels, radius=2)
    rows = np.unique(np.argwhere(target)[:, 0])
    assert rows.tolist() == [16, 17, 18, 19]  # two voxels on each side of the face between rows 17 and 18
    assert not target[labels == 0].any()
    assert target[labels == 41].sum() == target[labels == 31].sum() == 2 * 10 * 20


def test_a_lone_tooth_or_a_tooth_beside_background_has_no_contact() -> None:
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[5:15, 5:15, 5:15] = 36
    assert not contact_target(labels).any()
    assert not contact_target(np.zeros((8, 8, 8), np.uint8)).any()


def test_contacts_need_tooth_numbers_not_types() -> None:
    labels = _touching_incisors()
    assert np.array_equal(stage_target(labels, "fdi", "contacts"), contact_target(labels))
    with pytest.raises(InputError, match="contacts network needs FDI labels"):
        stage_target(np.where(labels > 0, 1, 0).astype(np.uint8), "classes", "contacts")


def test_the_contacts_network_starts_from_the_types_layers_with_a_one_channel_head() -> None:
    types_net = new_model(types_arch={"out_channels": 14}).types_net
    before = {k: v.clone() for k, v in types_net.state_dict().items()}
    net = contacts_from_types(types_net)
    assert net.config["out_channels"] == 1 and types_net.config["out_channels"] == 14
    shared = [k for k in before if not k.startswith("head.")]
    assert all(torch.equal(net.state_dict()[k], before[k]) for k in shared)
    assert all(torch.equal(types_net.state_dict()[k], before[k]) for k in before)  # the types net is untouched
    with torch.no_grad():
        prob = torch.sigmoid(net.eval()(torch.randn(1, 1, 16, 16, 16)))
    assert float(prob.mean()) < 0.2  # it starts near "no contact"


def test_a_model_file_keeps_its_contacts_network_and_older_files_keep_their_digest(tmp_path) -> None:
    model = new_model()
    without = model_to_dict(model)
    assert "contacts" not in without  # a file without one is the file it always was
    model.contacts_net = contacts_from_types(model.types_net)
    data = model_to_dict(model)
    assert data["weights_sha256"] == weights_digest(data) != without["weights_sha256"]
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.contacts_net is not None
    for k, v in model.contacts_net.state_dict().items():
        assert torch.equal(loaded.contacts_net.state_dict()[k], v)


def test_a_contacts_network_with_more_than_one_output_is_refused(tmp_path) -> None:
    model = new_model()
    model.contacts_net = new_model(types_arch={"out_channels": 2}).types_net
    torch.save(model_to_dict(model), tmp_path / "bad.pt")
    with pytest.raises(InputError, match="contacts.arch.out_channels"):
        load_model(tmp_path / "bad.pt")


def _molars_typed_alike() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A first and a second molar (8 x 10 x 16 mm blocks) touching over a whole face, both typed first molar by
    stage 2 (family B's molars were typed one place off): one region of one type with no neck."""
    labels = np.zeros((46, 30, 44), np.uint8)
    labels[6:22, 5:25, 6:38], labels[22:38, 5:25, 6:38] = 16, 17
    teeth_prob, type_probs = probabilities(labels, sigma=0.0, noise=0.02)
    type_probs[6] += type_probs[7]
    type_probs[7] = 0.0
    return labels, teeth_prob, type_probs


def test_the_instance_step_parts_touching_teeth_of_one_type_where_the_contacts_lie() -> None:
    """Without contacts the two molars are one instance; with the contacts network's band between them, their
    core parts there and the contact is a neck: two instances, each holding its tooth."""
    labels, teeth_prob, type_probs = _molars_typed_alike()
    affine = np.diag([*SPACING, 1.0])
    plain = label_teeth(teeth_prob, type_probs, affine)
    assert len(np.unique(plain.fdi_map[labels > 0])) == 1  # without contacts: one tooth
    contacts = contact_target(labels).astype(np.float32) * 0.9
    result = label_teeth(teeth_prob, type_probs, affine, contacts=contacts)
    found = []
    for tooth in (16, 17):
        values, counts = np.unique(result.fdi_map[labels == tooth], return_counts=True)
        assert values[np.argmax(counts)] > 0 and counts.max() >= 0.9 * counts.sum()
        found.append(values[np.argmax(counts)])
    assert found[0] != found[1]


def test_contacts_below_the_threshold_change_nothing() -> None:
    labels, teeth_prob, type_probs = _molars_typed_alike()
    affine = np.diag([*SPACING, 1.0])
    plain = label_teeth(teeth_prob, type_probs, affine)
    faint = label_teeth(teeth_prob, type_probs, affine, contacts=contact_target(labels).astype(np.float32) * 0.4)
    assert np.array_equal(plain.fdi_map, faint.fdi_map)


def test_contacts_on_another_grid_are_refused() -> None:
    labels, teeth_prob, type_probs = _molars_typed_alike()
    with pytest.raises(ValueError, match="not on one grid"):
        label_teeth(teeth_prob, type_probs, np.diag([*SPACING, 1.0]), contacts=np.zeros((4, 4, 4), np.float32))


def test_the_parting_depth_is_the_distance_map_with_the_contacts_at_zero() -> None:
    labels, _, _ = _molars_typed_alike()
    mask, touching = labels > 0, contact_target(labels).astype(bool)
    plain, marked = sparse_foreground(mask, SPACING), sparse_foreground(mask, SPACING, contacts=touching)
    assert plain.parting is plain.dist and np.array_equal(plain.dist, marked.dist)
    inside = touching.reshape(-1)[marked.input_flat(mask.shape)]
    assert inside.sum() == touching.sum() and (marked.parting[inside] == 0).all()
    assert np.array_equal(marked.parting[~inside], marked.dist[~inside]) and marked.dist[inside].max() > 3.0
