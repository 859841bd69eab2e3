"""The two stages on arrays: shapes, probabilities, test-time flips, window choice and the OOM retry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from TeethSegmentationLib.inference import stages as infer
from TeethSegmentationLib.inference.stages import choose_roi, predict_teeth, predict_types
from TeethSegmentationLib.io.volume import Volume
from TeethSegmentationLib.nets.model_file import new_model


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return new_model(teeth_arch={"start_filters": 4}, types_arch={"start_filters": 4}, patch_size=16).eval()


def _image(shape=(20, 24, 16)) -> Volume:
    rng = np.random.default_rng(0)
    return Volume(rng.normal(size=shape).astype(np.float32), np.diag([0.5, 0.5, 0.5, 1.0]))


def test_predict_teeth_probability_on_the_same_grid(tiny) -> None:
    image = _image((19, 22, 17))
    prob = predict_teeth(tiny, image, "cpu")
    assert prob.shape == image.shape and prob.array.dtype == np.float32
    assert 0 <= prob.array.min() and prob.array.max() <= 1
    np.testing.assert_array_equal(prob.ijk_to_ras, image.ijk_to_ras)


def test_predict_types_softmax_and_windows_agree_inside(tiny) -> None:
    image = _image((40, 36, 32))
    whole = predict_types(tiny, image, device="cpu", out_dtype=np.float32)
    assert whole.shape == (9, 40, 36, 32)
    np.testing.assert_allclose(whole.sum(axis=0), 1.0, atol=1e-5)
    windows = predict_types(tiny, image, device="cpu", roi=(24, 24, 24), out_dtype=np.float16)
    assert windows.dtype == np.float16 and windows.shape == whole.shape
    assert np.abs(windows.astype(np.float32) - whole).mean() < 0.05


def test_types_input_image_plus_teeth_takes_two_channels() -> None:
    torch.manual_seed(1)
    model = new_model(types_input="image+teeth", teeth_arch={"start_filters": 4}, types_arch={"start_filters": 4})
    image = _image((16, 16, 16))
    out = predict_types(model.eval(), image, np.zeros(image.shape, np.float32), device="cpu")
    assert out.shape == (9, 16, 16, 16)
    with pytest.raises(ValueError):
        predict_types(model, image, None, device="cpu")


def test_tta_is_flip_equivariant(tiny) -> None:
    image = _image((16, 20, 12))  # multiples of the divisor: no padding breaks the symmetry
    flipped = image.with_array(np.ascontiguousarray(image.array[::-1, :, ::-1]))
    a = predict_types(tiny, image, device="cpu", tta=True, out_dtype=np.float32)
    b = predict_types(tiny, flipped, device="cpu", tta=True, out_dtype=np.float32)
    np.testing.assert_allclose(a[:, ::-1, :, ::-1], b, atol=1e-5)


def test_choose_roi() -> None:
    assert choose_roi((100, 100, 100), 96) == (100, 100, 100)
    window = choose_roi((300, 200, 100), 64)
    assert np.prod(window) <= infer.WHOLE_VOLUME_BUDGET and window[2] == 100
    assert infer.predicted_voxels((300, 200, 100), window) <= infer.predicted_voxels((300, 200, 100), (128, 128, 100))


@pytest.mark.parametrize("shape", [(210, 210, 158), (315, 315, 315), (180, 180, 135)])
def test_windows_of_a_big_coarse_grid_fit_the_budget(shape) -> None:
    """A 600x600x450 head at 0.35 mm on the 1 mm grid, the 31-litre field of view: windows of 2 * patch (192^3,
    7 M voxels) held about 1.5 GB of activations; the chosen ones fit the budget and predict no more voxels."""
    window = choose_roi(shape, 96)
    assert np.prod(window) <= infer.WHOLE_VOLUME_BUDGET
    assert all(96 <= w <= 192 for w in window)
    assert infer.predicted_voxels(shape, window) <= max(
        infer.predicted_voxels(shape, tuple(min(s, 192) for s in shape)), 1.25 * np.prod(shape)
    )


def test_cuda_out_of_memory_retries_with_smaller_windows(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int, int]] = []
    real = infer.sliding_window_predict

    def flaky(array, predictor, roi, **kwargs):
        seen.append(tuple(roi))
        if len(seen) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(array, predictor, roi, **kwargs)

    monkeypatch.setattr(infer, "sliding_window_predict", flaky)
    prob = predict_teeth(tiny, _image((64, 64, 64)), "cpu", roi=(64, 64, 64))
    assert seen == [(64, 64, 64), (32, 32, 32)]
    assert prob.shape == (64, 64, 64)


def test_choose_roi_takes_windows_when_the_mask_leaves_little_to_predict() -> None:
    mask = np.zeros((150, 150, 60), bool)
    assert choose_roi(mask.shape, 32, mask=None) == (150, 150, 60)
    mask[:20, :20, :20] = True  # one corner: 1 of 16 windows of 64
    assert choose_roi(mask.shape, 32, mask=mask) == (64, 64, 60)
    mask[:] = True
    assert choose_roi(mask.shape, 32, mask=mask) == (150, 150, 60)


def test_predict_types_mask_skips_windows_as_background(tiny) -> None:
    image = _image((48, 40, 24))
    mask = np.zeros(image.shape, bool)
    mask[:4, :4, :4] = True
    probs = predict_types(tiny, image, device="cpu", roi=(16, 16, 16), mask=mask, out_dtype=np.float32)
    assert (probs[0, -8:, -8:] == 1).all() and (probs[1:, -8:, -8:] == 0).all()
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)


def test_channels_last_on_the_cpu_gives_the_same_values_and_restores_the_weights(tiny) -> None:
    net = tiny.types_net
    x = torch.from_numpy(_image((16, 16, 16)).array)[None, None]
    with torch.inference_mode():
        plain = infer.make_predictor(net, infer._softmax, False)(x)
        with infer.fast_layout(net, torch.device("cpu")) as memory_format:
            assert memory_format == torch.channels_last_3d
            fast = infer.make_predictor(net, infer._softmax, False, memory_format)(x)
    assert fast.is_contiguous()
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    assert all(p.is_contiguous() for p in net.parameters())


def test_a_prediction_leaves_the_weights_trainable() -> None:
    """Training validates through the predictor between epochs; a bf16 step and the weight check must still work.
    (The channels-last switch once ran inside inference mode and left the weights as inference tensors.)"""
    from TeethSegmentationLib.training.steps import DivergenceGuard, train_step

    torch.manual_seed(0)
    model = new_model(teeth_arch={"start_filters": 4}, types_arch={"start_filters": 4}, patch_size=16)
    predict_teeth(model, _image((16, 16, 16)), "cpu")
    net = model.teeth_net.train()
    assert not any(t.is_inference() for t in [*net.parameters(), *net.buffers()])
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    images, targets = torch.randn(1, 1, 16, 16, 16), (torch.rand(1, 16, 16, 16) > 0.7).long()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    assert np.isfinite(train_step(net, optimizer, scaler, images, targets, True, torch.bfloat16))
    DivergenceGuard.check_weights(net, "teeth")


def test_bfloat16_gives_float32_probabilities_close_to_float32(tiny) -> None:
    image = _image((24, 20, 16))
    exact = predict_types(tiny, image, device="cpu", out_dtype=np.float32)
    fast = predict_types(tiny, image, device="cpu", out_dtype=np.float32, dtype=torch.bfloat16)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast.sum(axis=0), 1.0, atol=1e-5)  # softmax taken in float32
    assert 0 < np.abs(fast - exact).max() < 0.05  # bf16 really ran (not identical), and stays close
    teeth = predict_teeth(tiny, image, "cpu", dtype=torch.bfloat16)
    assert np.abs(teeth.array - predict_teeth(tiny, image, "cpu").array).max() < 0.05


def test_resolve_precision() -> None:
    from TeethSegmentationLib.errors import InputError
    from TeethSegmentationLib.nets.devices import cpu_has_native_bf16, resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == torch.float32
    assert resolve_precision("bfloat16", cpu) == torch.bfloat16
    assert resolve_precision("auto", cpu) == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)
    assert resolve_precision("auto", torch.device("cuda")) == torch.float32
    with pytest.raises(InputError, match="precision"):
        resolve_precision("fp8", cpu)


def test_segment_offers_exactly_the_precisions_the_engine_knows() -> None:
    import argparse

    from TeethSegmentationLib.commands import segment
    from TeethSegmentationLib.nets.devices import PRECISIONS

    parser = argparse.ArgumentParser()
    segment.add_arguments(parser)
    option = next(a for a in parser._actions if a.dest == "precision")
    assert tuple(option.choices) == PRECISIONS
    # bf16 where the CPU has it: the GPU-trained model gives the 50 family scans within 0.0003 of float32
    assert option.default == "auto"
