"""Sliding window: window positions, weights, and exact reconstruction with trivial predictors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from TeethSegmentationLib.inference.sliding_window import (
    as_numpy,
    gaussian_weights,
    sliding_window_predict,
    window_corners,
    window_starts,
)


@pytest.mark.parametrize("size,roi,overlap", [(33, 16, 0.25), (35, 8, 0.5), (10, 16, 0.25), (64, 32, 0.0), (7, 7, 0.9)])
def test_window_starts_cover_and_end_flush(size: int, roi: int, overlap: float) -> None:
    starts = window_starts(size, roi, overlap)
    assert starts[0] == 0
    assert starts[-1] == max(0, size - roi)
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s : s + roi] = True
    assert covered.all()
    assert starts == sorted(set(starts))


@pytest.mark.parametrize("args", [(0, 8, 0.2), (8, 0, 0.2), (8, 4, 1.0), (8, 4, -0.1)])
def test_window_starts_rejects_bad_arguments(args: tuple) -> None:
    with pytest.raises(ValueError):
        window_starts(*args)


def test_gaussian_weights_cached_positive_and_peaked() -> None:
    w = gaussian_weights((8, 9, 10))
    assert w is gaussian_weights((8, 9, 10))
    assert w.shape == (8, 9, 10) and w.dtype == np.float32
    assert w.min() >= 1e-3 and w.max() == pytest.approx(1.0, abs=0.05)
    assert not w.flags.writeable
    assert np.allclose(w, w[::-1, ::-1, ::-1])


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _plus_one(x: torch.Tensor) -> torch.Tensor:
    return x + 1


def _times_two_three_channels(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([2 * x[:, :1], x[:, :1], -x[:, :1]], dim=1)


@pytest.mark.parametrize("roi", [8, (12, 16, 20), 16, 64])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.6])
def test_reconstruction_exact(roi, overlap: float) -> None:
    rng = np.random.default_rng(0)
    array = rng.normal(size=(1, 33, 34, 35)).astype(np.float32)
    out = sliding_window_predict(array, _identity, roi, overlap=overlap, out_channels=1, batch_size=3)
    assert out.shape == array.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, array, rtol=1e-5, atol=1e-5)
    out = sliding_window_predict(array, _plus_one, roi, overlap=overlap, out_channels=1)
    np.testing.assert_allclose(out, array + 1, rtol=1e-5, atol=1e-5)


def test_multi_channel_float16_and_progress() -> None:
    rng = np.random.default_rng(1)
    array = rng.uniform(size=(1, 21, 30, 17)).astype(np.float32)
    seen: list[float] = []
    out = sliding_window_predict(
        array, _times_two_three_channels, 12, out_channels=3, out_dtype=np.float16, progress=seen.append, batch_size=2
    )
    assert out.shape == (3, 21, 30, 17) and out.dtype == np.float16
    np.testing.assert_allclose(out[0], 2 * array[0], atol=5e-3)
    np.testing.assert_allclose(out[2], -array[0], atol=5e-3)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_single_pass_pads_to_divisor_and_crops_back() -> None:
    calls: list[tuple[int, ...]] = []

    def predictor(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return x * 2

    array = np.arange(2 * 5 * 6 * 7, dtype=np.float32).reshape(2, 5, 6, 7)
    out = sliding_window_predict(array, predictor, 64, out_channels=2, divisor=4)
    assert calls == [(1, 2, 8, 8, 8)]
    np.testing.assert_array_equal(out, 2 * array)


def test_window_corners_keep_only_windows_touching_the_mask() -> None:
    mask = np.zeros((40, 40, 20), bool)
    assert len(window_corners(mask.shape, (16, 16, 20), 0.25)) == 9
    assert window_corners(mask.shape, (16, 16, 20), 0.25, mask) == []
    mask[2, 3, 4] = True
    assert window_corners(mask.shape, (16, 16, 20), 0.25, mask) == [(0, 0, 0)]


def test_masked_windows_are_skipped_and_filled() -> None:
    rng = np.random.default_rng(2)
    array = rng.normal(size=(1, 48, 40, 24)).astype(np.float32)
    mask = np.zeros(array.shape[1:], bool)
    mask[2:6, 2:6, 2:6] = True  # only the first window along i and j holds mask voxels
    calls: list[int] = []

    def predictor(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.cat([x, 2 * x], dim=1)

    whole = sliding_window_predict(array, predictor, 16, out_channels=2)
    run = len(calls)
    masked = sliding_window_predict(array, predictor, 16, out_channels=2, mask=mask, fill=(1.0, -5.0))
    skipped = run - (len(calls) - run)
    assert skipped > 0 and len(calls) - run == len(window_corners(mask.shape, (16, 16, 16), 0.25, mask))
    np.testing.assert_array_equal(masked[:, :8, :8, :8], whole[:, :8, :8, :8])  # only run windows cover these
    assert (masked[0, -8:, -8:] == 1.0).all() and (masked[1, -8:, -8:] == -5.0).all()


def test_empty_mask_runs_nothing() -> None:
    def predictor(x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("nothing to predict")

    array = np.zeros((1, 10, 12, 14), np.float32)
    out = sliding_window_predict(array, predictor, 64, out_channels=3, mask=np.zeros((10, 12, 14), bool),
                                 fill=(1, 0, 0), out_dtype=np.float16)
    assert out.shape == (3, 10, 12, 14) and out.dtype == np.float16
    assert (out[0] == 1).all() and (out[1:] == 0).all()
    with pytest.raises(ValueError):
        sliding_window_predict(array, predictor, 64, mask=np.zeros((3, 3, 3), bool))


def test_float16_output_is_numpys_cast_of_a_strided_array() -> None:
    """The conversion goes through torch (numpy's is many times slower on strided arrays): the same bits."""
    values = np.random.default_rng(0).normal(scale=3.0, size=(3, 20, 24, 28)).astype(np.float32)
    values[0, 0, 0, :6] = [1e-8, 6.1e-5, 65504.0, 7e4, -0.0, 1 / 3]
    strided = values[:, 2:18, ::2, 1:]
    with np.errstate(over="ignore"):
        expected = strided.astype(np.float16)
    got = as_numpy(torch.from_numpy(strided), np.float16)
    assert got.flags.c_contiguous and got.dtype == np.float16
    np.testing.assert_array_equal(got.view(np.uint16), expected.view(np.uint16))
