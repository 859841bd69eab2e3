"""Losses: pure functions on tensors."""

from __future__ import annotations

import pytest
import torch

from TeethSegmentationLib.training.losses import (
    soft_dice_binary,
    soft_dice_multiclass,
    stage_loss,
)


def _binary_target() -> torch.Tensor:
    target = torch.zeros(2, 8, 8, 8)
    target[:, 2:5, 2:6, 3:7] = 1
    return target


def test_binary_dice_is_zero_for_a_perfect_prediction_and_one_for_the_opposite():
    target = _binary_target()
    perfect = (target * 40 - 20)[:, None]
    assert soft_dice_binary(perfect, target).item() == pytest.approx(0.0, abs=1e-3)
    assert soft_dice_binary(-perfect, target).item() == pytest.approx(1.0, abs=1e-2)


def test_binary_dice_has_a_gradient_towards_the_target():
    target = _binary_target()
    logits = torch.zeros(2, 1, 8, 8, 8, requires_grad=True)
    soft_dice_binary(logits, target).backward()
    inside = logits.grad[:, 0][target > 0]
    outside = logits.grad[:, 0][target == 0]
    assert inside.max() < 0 < outside.min()  # descending raises the inside, lowers the outside


def test_categorical_dice_averages_over_the_classes_present_only():
    target = torch.zeros(1, 6, 6, 6, dtype=torch.long)
    target[0, :3] = 3
    logits = torch.full((1, 9, 6, 6, 6), -20.0)
    logits[:, 0][target == 0] = 20
    logits[:, 3][target == 3] = 20
    assert soft_dice_multiclass(logits, target).item() == pytest.approx(0.0, abs=1e-3)
    # wrong everywhere on class 3 only: the mean over present foreground classes (just 3) is ~1
    wrong = logits.clone()
    wrong[:, 3], wrong[:, 5] = -20.0, torch.where(target == 3, 20.0, -20.0)[:, None][:, 0]
    assert soft_dice_multiclass(wrong, target).item() == pytest.approx(1.0, abs=1e-2)


def test_categorical_dice_of_an_all_background_batch_uses_the_background():
    target = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    logits = torch.zeros(1, 9, 4, 4, 4)
    logits[:, 0] = 20
    assert soft_dice_multiclass(logits, target).item() == pytest.approx(0.0, abs=1e-3)


def test_cross_entropy_is_added_on_request():
    target = _binary_target()
    logits = torch.zeros(2, 1, 8, 8, 8)
    assert stage_loss(logits, target, with_ce=True) > stage_loss(logits, target) + 0.5  # BCE at p=0.5 is ln 2
    classes = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    classes[0, 0] = 2
    many = torch.zeros(1, 9, 4, 4, 4)
    assert stage_loss(many, classes, with_ce=True) > stage_loss(many, classes) + 2.0  # CE at uniform is ln 9


def test_stage2_loss_rewards_the_right_foreground_even_with_wrong_types():
    target = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    target[0, :2] = 3
    wrong_type = torch.full((1, 9, 4, 4, 4), -5.0)
    wrong_type[:, 0, 2:] = 5.0
    wrong_type[:, 5, :2] = 5.0  # teeth found, but called type 5
    no_teeth = torch.full((1, 9, 4, 4, 4), -5.0)
    no_teeth[:, 0] = 5.0
    assert stage_loss(wrong_type, target) < stage_loss(no_teeth, target)


def test_multiclass_dice_is_the_one_hot_formula_with_its_gradient():
    """The intersection summed per true class equals the one-hot product, in value and gradient; a class
    absent from the target counts in neither."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 5, 4, 3, generator=generator, requires_grad=True)
    target = torch.randint(0, 5, (2, 5, 4, 3), generator=generator)  # class 5 absent
    loss = soft_dice_multiclass(logits, target)
    (grad,) = torch.autograd.grad(loss, logits)

    prob = torch.softmax(logits, dim=1).transpose(0, 1).reshape(6, -1)
    onehot = torch.nn.functional.one_hot(target.flatten(), 6).T.float()
    dice = (2 * (prob * onehot).sum(1) + 1) / (prob.sum(1) + onehot.sum(1) + 1)
    expected = 1 - dice[1:5].mean()
    (expected_grad,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)
