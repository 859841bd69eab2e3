"""The U-Net's batch norm: in place at float32 inference, the standard module everywhere else."""

from __future__ import annotations

import pytest
import torch

from TeethSegmentationLib.nets.unet import UNet


def _trained_statistics(net: UNet) -> UNet:
    """A net whose batch norms have non-trivial running statistics and affine parameters."""
    torch.manual_seed(0)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(2, 1, 16, 16, 16) * 3 + 1)
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return net.eval()


def _standard_forward(net: UNet, x: torch.Tensor) -> torch.Tensor:
    """The same net with every batch norm in nn.BatchNorm3d's own forward (autograd on: the standard path)."""
    with torch.enable_grad():
        return net(x).detach()


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
def test_in_place_batch_norm_at_inference_gives_the_standard_output(memory_format):
    net = _trained_statistics(UNet(1, 9, 3, 4)).to(memory_format=memory_format)
    x = torch.randn(1, 1, 24, 20, 16).contiguous(memory_format=memory_format)
    in_place = []  # per batch norm call: whether its output is its input
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.register_forward_hook(lambda _m, args, out: in_place.append(out.data_ptr() == args[0].data_ptr()))
    expected = _standard_forward(net, x)
    with torch.inference_mode():
        got = net(x)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert in_place == [False] * 10 + [True] * 10  # ten batch norms: new outputs with autograd, in place without


def test_training_and_autograd_take_the_standard_path():
    """In training the batch statistics are used and the running ones updated; with autograd on, gradients
    reach the input (an in-place op on a tensor autograd needs would raise)."""
    net = _trained_statistics(UNet(1, 1, 3, 4))
    bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d))
    before = bn.running_mean.clone()
    net.train()
    net(torch.randn(2, 1, 16, 16, 16) + 5)
    assert not torch.equal(bn.running_mean, before)
    net.eval()
    x = torch.randn(1, 1, 16, 16, 16, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_the_state_dict_is_that_of_nn_batch_norm():
    keys = set(UNet(1, 1, 3, 4).state_dict())
    assert {"down.0.2.weight", "down.0.2.bias", "down.0.2.running_mean", "down.0.2.running_var",
            "down.0.2.num_batches_tracked"} <= keys
