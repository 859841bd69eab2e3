"""Sliding window: window positions, weights, and exact reconstruction with trivial predictors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from TeethSegmentationLib.sliding_window import gaussian_weights, sliding_window_predict, window_starts


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
