"""The light 3D U-Net of the reference method (Conv-ReLU-BatchNorm blocks).

Per level two Conv3d(3x3x3, padding 1) -> ReLU -> BatchNorm3d; max-pool 2 between levels; filters
double per level; transposed conv 2x2x2 up, skip concatenation, two conv blocks; 1x1x1 output conv.
Both stages use 9 start filters (the reference method's range is 9 to 18): ``UNet(1, 1, 3, 9)`` has
107,902 parameters (teeth, binary) and ``UNet(1, 9, 3, 9)`` 107,982 (types, background + 8 types);
``UNet(1, 1, 3, 18)``, the top of the range, has 429,967.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class BatchNorm3d(nn.BatchNorm3d):
    """BatchNorm3d that, at float32 inference (eval mode, no autograd), scales and shifts its input in place.

    Its input is always the fresh output of a conv and ReLU. On a whole head's teeth box a layer is ~100 MB, and
    a new output for each of the ten batch norms of a pass costs memory traffic and page faults: in place, a
    pass runs 4-8 % faster on a 2-core CPU. Training, autograd and autocast take the standard path; the
    parameters and the state dict are nn.BatchNorm3d's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled() or x.dtype != torch.float32 or self.running_var is None:
            return super().forward(x)
        scale = torch.rsqrt(self.running_var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shift = -self.running_mean * scale
        if self.bias is not None:
            shift = shift + self.bias
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x.mul_(scale.reshape(shape)).add_(shift.reshape(shape))


class ConvBlock(nn.Sequential):
    """Conv3d -> ReLU -> BatchNorm3d, twice."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            BatchNorm3d(out_channels),
            nn.Conv3d(out_channels, out_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            BatchNorm3d(out_channels),
        )


class UpBlock(nn.Module):
    """Transposed conv up, concatenate the skip, two conv blocks."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(in_channels, out_channels, 2, stride=2)
        self.conv = ConvBlock(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNet(nn.Module):
    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, n_blocks: int = 3, start_filters: int = 9, dim: int = 3
    ) -> None:
        super().__init__()
        if dim != 3:
            raise ValueError("only dim=3 is supported")
        if n_blocks < 1:
            raise ValueError("n_blocks must be at least 1")
        self.config = dict(
            in_channels=in_channels, out_channels=out_channels, n_blocks=n_blocks, start_filters=start_filters, dim=dim
        )
        filters = [start_filters * 2**level for level in range(n_blocks)]
        self.down = nn.ModuleList(
            ConvBlock(in_channels if i == 0 else filters[i - 1], f) for i, f in enumerate(filters)
        )
        self.pool = nn.MaxPool3d(2)
        self.up = nn.ModuleList(UpBlock(filters[i], filters[i - 1]) for i in range(n_blocks - 1, 0, -1))
        self.head = nn.Conv3d(filters[0], out_channels, 1)

    @property
    def divisor(self) -> int:
        """Every spatial size fed to the network must be a multiple of this."""
        return 2 ** (self.config["n_blocks"] - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.up:
            return self.head(self.down[0](x))
        return self.last_up_and_head(*self.last_up_inputs(x))

    def last_up_and_head(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The logits from :meth:`last_up_inputs`' two tensors: the last up block, then the head."""
        return self.head(self.up[-1](deep, skip))

    def last_up_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the last up block receives: the level below after its own up blocks, and the top skip (a contacts
        branch, ``nets.contacts_head``, reads the same). Needs at least two levels."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        for block, skip in zip(self.up[:-1], reversed(skips[1:-1]), strict=True):
            x = block(x, skip)
        return x, skips[0]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_unet(config: dict[str, Any]) -> UNet:
    return UNet(**{k: config[k] for k in ("in_channels", "out_channels", "n_blocks", "start_filters")})


def pad_to_multiple(x: torch.Tensor, divisor: int) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Pad the last three axes (at the end) to a multiple of ``divisor``; returns the crop back."""
    sizes = x.shape[-3:]
    pads = [(-s) % divisor for s in sizes]
    if not any(pads):
        return x, tuple(slice(None) for _ in sizes)
    padded = nn.functional.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]), mode="replicate")
    return padded, tuple(slice(0, s) for s in sizes)
