"""Weight-space mixing of a fine-tuned model with its parent (training/weight_mix.py)."""

from __future__ import annotations

import pytest
import torch

from TeethSegmentationLib.nets.model_file import new_model
from TeethSegmentationLib.training.weight_mix import mix_with_parent, mixed_state


def _pair():
    torch.manual_seed(0)
    parent, tuned = new_model(), new_model()
    tuned.types_net.load_state_dict(parent.types_net.state_dict())
    tuned.teeth_net.load_state_dict(parent.teeth_net.state_dict())
    with torch.no_grad():
        for p in tuned.types_net.parameters():
            p.add_(torch.randn_like(p))
        for p in tuned.teeth_net.parameters():
            p.mul_(3.0)
    return parent, tuned


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_each_weight_lies_at_its_share_between_parent_and_fine_tuned(share: float) -> None:
    parent, tuned = _pair()
    for value in tuned.types_net.state_dict().values():
        if not value.is_floating_point():
            value.fill_(7)  # the fine-tuned model's step counters differ from the parent's
    before = {k: v.clone() for k, v in tuned.types_net.state_dict().items()}
    mixed = mixed_state(parent.types_net.state_dict(), before, share)
    for name, value in mixed.items():
        old = parent.types_net.state_dict()[name]
        if value.is_floating_point():
            assert torch.allclose(value, old + share * (before[name] - old), atol=1e-6), name
        else:
            assert torch.equal(value, before[name]) and not torch.equal(value, old), name  # the fine-tuned model's


def test_a_mixed_model_holds_the_weights_half_way_and_runs() -> None:
    parent, tuned = _pair()
    mix_with_parent(tuned, parent, 0.5)
    for mine, theirs in zip(tuned.teeth_net.parameters(), parent.teeth_net.parameters(), strict=True):
        assert torch.allclose(mine, 2.0 * theirs)  # half-way between the parent's 1x and the fine-tuned 3x
    with torch.no_grad():
        out = tuned.types_net.eval()(torch.randn(1, 1, 16, 16, 16))
    assert out.shape == (1, 9, 16, 16, 16) and torch.isfinite(out).all()


def test_models_of_different_layers_or_shares_outside_0_1_are_refused() -> None:
    parent, tuned = _pair()
    state = tuned.types_net.state_dict()
    with pytest.raises(ValueError, match="between 0 and 1"):
        mixed_state(parent.types_net.state_dict(), state, 1.5)
    with pytest.raises(ValueError, match="same layers"):
        mixed_state({k: v for k, v in parent.types_net.state_dict().items() if "bias" not in k}, state, 0.5)
    fourteen = new_model(types_arch={"out_channels": 14})
    with pytest.raises(ValueError, match="shape"):
        mixed_state(fourteen.types_net.state_dict(), state, 0.5)


def test_a_parent_in_another_dtype_or_on_another_device_is_brought_to_the_fine_tuned_one() -> None:
    parent, tuned = _pair()
    parent.teeth_net.double()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        parent.teeth_net.to(device)
        mixed = mixed_state(parent.teeth_net.state_dict(), tuned.teeth_net.state_dict(), 0.5)
        for name, value in mixed.items():
            assert value.device.type == "cpu" and value.dtype == tuned.teeth_net.state_dict()[name].dtype, name
