"""The two networks on volumes already on their grid and normalised: probabilities out.

Stage 1 (``predict_teeth``): binary teeth probability (sigmoid) on the coarse grid.
Stage 2 (``predict_types``): 9-class softmax (background + 8 tooth types) on the fine grid crop.
Test-time flips average the prediction over all flips of the three axes; the 9 classes have no
side, so a left-right flip needs no label swap. The window is the whole volume when it fits in a
voxel budget, else the window within that budget that predicts the fewest voxels; on a CUDA out-of-memory
error it is halved and retried.
Stage 2 can skip the windows that hold no (dilated) stage-1 teeth: they are background. On the CPU the
networks run in the channels-last layout (oneDNN's 3-D convolutions are about twice as fast; the same
values to float rounding). ``dtype`` bfloat16 runs them under autocast (about twice as fast again on CPUs with
native bf16); the logits are cast back to float32 before the activation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import combinations, product

import numpy as np
import torch

from TeethSegmentationLib.inference.sliding_window import (
    Progress,
    sliding_window_predict,
    window_corners,
    window_starts,
)
from TeethSegmentationLib.io.volume import Volume
from TeethSegmentationLib.nets.contacts_head import TypesAndContacts
from TeethSegmentationLib.nets.model_file import TeethModel
from TeethSegmentationLib.nets.unet import UNet

TYPES_MARGIN_MM = 4.0  # context around the teeth box that stage 2 sees, in segmenting and in training
WHOLE_VOLUME_BUDGET = 160**3  # voxels predicted in one pass on the CPU or a GPU
MIN_ROI = 32
SKIP_WORTH = 0.6  # windows skipping masked-out parts replace the one pass when they predict fewer voxels than this
FLIP_AXES: tuple[tuple[int, ...], ...] = tuple(
    axes for n in range(1, 4) for axes in combinations((2, 3, 4), n)
)  # dims of a (B, C, i, j, k) batch


def choose_roi(
    shape: tuple[int, ...], patch_size: int, budget: int | None = None, mask: np.ndarray | None = None
) -> tuple[int, int, int]:
    """The whole volume if it fits in ``budget`` voxels (default ``WHOLE_VOLUME_BUDGET``), else the windows of
    ``fitting_window``; also windows of ``2 * patch_size`` when skipping the ones without ``mask`` voxels leaves
    clearly fewer voxels to predict than one pass."""
    budget = WHOLE_VOLUME_BUDGET if budget is None else budget
    whole = int(np.prod(shape))
    if whole > budget:
        return fitting_window(shape, patch_size, budget)
    windows = tuple(min(int(s), 2 * patch_size) for s in shape)
    if mask is not None and windows != tuple(shape):
        run = len(window_corners(shape, windows, 0.25, mask)) * int(np.prod(windows))
        if run < SKIP_WORTH * whole:
            return windows  # type: ignore[return-value]
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def fitting_window(shape: tuple[int, ...], patch_size: int, budget: int) -> tuple[int, int, int]:
    """The window of at most ``budget`` voxels that predicts the fewest voxels over ``shape`` (windows
    overlapping by a quarter; ties: the larger window). Its sides run from ``patch_size`` to ``2 * patch_size``
    in steps of 16, or are the volume's own: activations grow with the window, so the budget bounds the
    memory of a pass (a 192^3 window of stage 1 held about 1.5 GB)."""
    sides = [sorted({min(int(s), n) for n in range(patch_size, 2 * patch_size + 1, 16)}) for s in shape]
    fitting = [w for w in product(*sides) if np.prod(w) <= budget]
    if not fitting:
        return tuple(min(int(s), patch_size) for s in shape)  # type: ignore[return-value]
    return min(fitting, key=lambda w: (predicted_voxels(shape, w), -int(np.prod(w))))  # type: ignore[return-value]


def predicted_voxels(shape: tuple[int, ...], window: tuple[int, ...]) -> int:
    """Voxels the networks predict to cover ``shape`` with ``window`` (quarter overlap; windows may overhang)."""
    return int(np.prod([len(window_starts(max(s, w), w, 0.25)) * w for s, w in zip(shape, window, strict=True)]))


def make_predictor(
    net: UNet,
    activation: Callable[[torch.Tensor], torch.Tensor],
    tta: bool,
    memory_format: torch.memory_format = torch.contiguous_format,
    dtype: torch.dtype = torch.float32,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A batch -> probabilities function (contiguous, float32), averaged over the axis flips when ``tta``;
    the network runs under autocast to ``dtype`` unless that is float32."""

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype != torch.float32):
            logits = net(x.contiguous(memory_format=memory_format))
        return activation(logits.float())

    def predict(x: torch.Tensor) -> torch.Tensor:
        out = run(x)
        if tta:
            for axes in FLIP_AXES:
                out += run(x.flip(axes)).flip(axes)
            out /= 1 + len(FLIP_AXES)
        return out.contiguous()

    return predict


@contextmanager
def fast_layout(net: torch.nn.Module, device: torch.device) -> Iterator[torch.memory_format]:
    """The memory format to run ``net`` in on ``device``: channels-last on the CPU (weights put back after)."""
    if device.type != "cpu":
        yield torch.contiguous_format
        return
    net.to(memory_format=torch.channels_last_3d)
    try:
        yield torch.channels_last_3d
    finally:
        net.to(memory_format=torch.contiguous_format)


def _run(
    net: UNet,
    array: np.ndarray,
    activation: Callable[[torch.Tensor], torch.Tensor],
    roi: tuple[int, int, int],
    device: torch.device,
    tta: bool,
    out_dtype: type,
    progress: Progress | None,
    mask: np.ndarray | None = None,
    fill: float | tuple[float, ...] = 0.0,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """Sliding window (skipping windows without ``mask`` voxels) with a retry on smaller windows when CUDA
    runs out of memory."""
    net = net.to(device).eval()
    while True:
        try:
            # The layout changes outside inference mode: weights converted inside it become inference tensors,
            # which a later training step (validation during training) cannot update or check.
            with fast_layout(net, device) as memory_format, torch.inference_mode():
                return sliding_window_predict(
                    array,
                    make_predictor(net, activation, tta, memory_format, dtype),
                    roi,
                    overlap=0.25,
                    out_channels=net.config["out_channels"],
                    device=device,
                    out_dtype=out_dtype,
                    progress=progress,
                    divisor=net.divisor,
                    mask=mask,
                    fill=fill,
                )
        except torch.cuda.OutOfMemoryError:
            if max(roi) <= MIN_ROI:
                raise
            torch.cuda.empty_cache()
            roi = tuple(max(MIN_ROI, r // 2) for r in roi)  # type: ignore[assignment]


def _softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=1)


def predict_teeth(
    model: TeethModel,
    image: Volume,
    device: torch.device | str = "cpu",
    tta: bool = False,
    progress: Progress | None = None,
    roi: tuple[int, int, int] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Volume:
    """Stage 1 on a normalised image on the coarse grid: teeth probability (float32 0..1), same geometry."""
    if model.teeth_net is None:
        raise ValueError("the model has no teeth (stage 1) network")
    array = np.asarray(image.array, dtype=np.float32)[None]
    roi = roi or choose_roi(image.shape, model.patch_size)
    prob = _run(
        model.teeth_net, array, torch.sigmoid, roi, torch.device(device), tta, np.float32, progress, dtype=dtype
    )
    return image.with_array(prob[0])


def predict_types(
    model: TeethModel,
    image: Volume,
    teeth_prob: np.ndarray | None = None,
    device: torch.device | str = "cpu",
    tta: bool = False,
    progress: Progress | None = None,
    roi: tuple[int, int, int] | None = None,
    out_dtype: type = np.float16,
    mask: np.ndarray | None = None,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """Stage 2 on a normalised image on the fine grid: softmax (9, i, j, k), float16 unless told otherwise.

    ``teeth_prob`` (stage 1 upsampled onto this grid) is the second input channel of an
    ``image+teeth`` model and ignored otherwise. Windows holding no ``mask`` voxel (dilated stage-1
    teeth) are not run: background (probability 1 for class 0) there.
    """
    if model.types_net is None:
        raise ValueError("the model has no tooth-type (stage 2) network")
    roi = roi or choose_roi(image.shape, model.patch_size, mask=mask)
    background = (1.0, *([0.0] * (model.types_net.config["out_channels"] - 1)))
    return _run(
        model.types_net, _types_input(model, image, teeth_prob), _softmax, roi, torch.device(device), tta, out_dtype,
        progress, mask, background, dtype,
    )


def predict_contacts(
    model: TeethModel,
    image: Volume,
    teeth_prob: np.ndarray | None = None,
    device: torch.device | str = "cpu",
    roi: tuple[int, int, int] | None = None,
    mask: np.ndarray | None = None,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """The contacts branch alone (through stage 2's trunk): float16 (i, j, k) probability that a voxel lies where
    two teeth touch; 0 in the windows without ``mask`` voxels. Training validates with it; ``segment`` gets it in
    stage 2's own pass (:func:`predict_types_and_contacts`)."""
    if model.contacts_net is None:
        raise ValueError("the model has no contacts network")
    roi = roi or choose_roi(image.shape, model.patch_size, mask=mask)
    prob = _run(
        model.contacts_net, _types_input(model, image, teeth_prob), torch.sigmoid, roi, torch.device(device), False,
        np.float16, None, mask, 0.0, dtype,
    )
    return prob[0]


def predict_types_and_contacts(
    model: TeethModel,
    image: Volume,
    teeth_prob: np.ndarray | None = None,
    device: torch.device | str = "cpu",
    tta: bool = False,
    progress: Progress | None = None,
    mask: np.ndarray | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage 2 and its contacts branch in one pass (:class:`TypesAndContacts`): (softmax (C, i, j, k), contacts
    (i, j, k)), float16, views of one array. The branch costs about a quarter of stage 2."""
    if model.types_net is None or model.contacts_net is None:
        raise ValueError("the model has no tooth-type network with a contacts branch")
    both = TypesAndContacts(model.types_net, model.contacts_net)
    classes = model.types_net.config["out_channels"]
    roi = choose_roi(image.shape, model.patch_size, mask=mask)
    background = (1.0, *([0.0] * (classes - 1)), 0.0)

    def activation(logits: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.softmax(logits[:, :classes], dim=1), torch.sigmoid(logits[:, classes:])], dim=1)

    out = _run(
        both, _types_input(model, image, teeth_prob), activation, roi, torch.device(device), tta, np.float16, progress,
        mask, background, dtype,
    )
    return out[:classes], out[classes]


def _types_input(model: TeethModel, image: Volume, teeth_prob: np.ndarray | None) -> np.ndarray:
    """(channels, i, j, k) float32: the image, and stage 1's teeth probability for an ``image+teeth`` model."""
    channels = [np.asarray(image.array, dtype=np.float32)]
    if model.types_input == "image+teeth":
        if teeth_prob is None:
            raise ValueError("this model's stage 2 needs the stage-1 teeth probability")
        channels.append(np.asarray(teeth_prob, dtype=np.float32))
    return np.stack(channels)
