"""The contacts network (issue 12: a learned cue for touching teeth): its target, its start from the types
network, its place in the model file, its training stage, and its use by the instance step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic_arch import probabilities

from TeethSegmentationLib.errors import InputError
from TeethSegmentationLib.inference.pipeline import SegmentOptions, segment_volume
from TeethSegmentationLib.instances.foreground import sparse_foreground
from TeethSegmentationLib.instances.teeth import label_teeth
from TeethSegmentationLib.nets.contacts_head import TypesAndContacts, contacts_from_types
from TeethSegmentationLib.nets.model_fields import weights_digest
from TeethSegmentationLib.nets.model_file import DEFAULT_MODEL_PATH, load_model, model_to_dict, new_model, save_model
from TeethSegmentationLib.phantom import make_phantom
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


def test_the_contacts_branch_starts_from_the_types_last_up_block_and_leaves_the_trunk_alone() -> None:
    types_net = new_model(types_arch={"out_channels": 14}).types_net
    before = {k: v.clone() for k, v in types_net.state_dict().items()}
    branch = contacts_from_types(types_net)
    assert branch.config == {"kind": "types_branch", "start_filters": 9, "out_channels": 1}
    last = {k.replace("up.1.", "up.", 1): v for k, v in before.items() if k.startswith("up.1.")}  # the last up block
    assert set(branch.state_dict()) == set(last) | {"head.weight", "head.bias"}
    assert all(torch.equal(branch.state_dict()[k], v) for k, v in last.items())
    x = torch.randn(2, 1, 16, 16, 16)
    branch.train()
    logits = branch(x)
    logits.mean().backward()
    assert types_net.training is True  # the trunk ran in eval mode and was put back as it was
    assert all(p.grad is None for p in types_net.parameters())  # the trunk is frozen
    assert all(torch.equal(types_net.state_dict()[k], before[k]) for k in before)  # batch-norm statistics too
    assert float(torch.sigmoid(logits.detach()).mean()) < 0.2  # it starts near "no contact"


def test_one_pass_gives_the_types_and_the_contacts_as_the_two_networks_do() -> None:
    types_net = new_model(types_arch={"out_channels": 14}).types_net.eval()
    branch = contacts_from_types(types_net).eval()
    with torch.no_grad():
        branch.head.bias.fill_(0.3)
        x = torch.randn(1, 1, 16, 16, 16)
        both = TypesAndContacts(types_net, branch)(x)
        assert both.shape[1] == 15
        assert torch.allclose(both[:, :14], types_net(x), atol=1e-5)
        assert torch.allclose(both[:, 14:], branch(x), atol=1e-5)


def test_a_model_file_keeps_its_contacts_branch_and_older_files_keep_their_digest(tmp_path) -> None:
    model = new_model()
    without = model_to_dict(model)
    assert "contacts" not in without  # a file without one is the file it always was
    model.contacts_net = contacts_from_types(model.types_net)
    data = model_to_dict(model)
    assert data["weights_sha256"] == weights_digest(data) != without["weights_sha256"]
    assert set(data["contacts"]["state_dict"]) == set(model.contacts_net.state_dict())  # the branch only
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.contacts_net.trunk is loaded.types_net
    for k, v in model.contacts_net.state_dict().items():
        assert torch.equal(loaded.contacts_net.state_dict()[k], v)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["contacts"]["arch"].update(out_channels=2), "contacts.arch.out_channels"),
    (lambda d: d["contacts"]["arch"].update(start_filters=4), "contacts.arch.start_filters"),
    (lambda d: d["contacts"]["arch"].update(kind="unet"), "contacts.arch.kind"),
    (lambda d: d["contacts"]["state_dict"].pop("head.bias"), "contacts network in model file"),
])
def test_a_damaged_contacts_branch_is_refused_with_its_field(tmp_path, change, message) -> None:
    model = new_model()
    model.contacts_net = contacts_from_types(model.types_net)
    data = model_to_dict(model)
    change(data)
    data["weights_sha256"] = weights_digest(data)
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(InputError, match=message):
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


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason="the default model has not been built")
def test_segment_runs_the_contacts_branch_in_stage_2s_pass_and_hands_it_to_the_instance_step() -> None:
    """The shipped networks with a branch that never fires: the instance step sees contacts on its own grid, and
    the teeth are those of the same networks without a branch."""
    case = make_phantom(3, size="small", fov="crop")
    model = load_model(DEFAULT_MODEL_PATH)
    model.contacts_net = contacts_from_types(model.types_net)
    with torch.no_grad():
        model.contacts_net.head.bias.fill_(-30.0)
    seen = []
    result = segment_volume(case.image, model, SegmentOptions(device="cpu"), on_instances=lambda *a: seen.append(a))
    (foreground, probs, _affine, contacts, _found), = seen
    assert contacts.shape == foreground.shape and probs.shape[0] == 14 and float(contacts.max()) < 0.01
    model.contacts_net = None
    plain = segment_volume(case.image, model, SegmentOptions(device="cpu"))
    assert np.array_equal(result.fdi.array, plain.fdi.array) and len(plain.teeth) > 20
