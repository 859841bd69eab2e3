"""nets.normalize: the robust intensity window and the mapping every stage applies before the networks."""

from __future__ import annotations

import numpy as np
import pytest

from TeethSegmentationLib.nets.normalize import Normalization, intensity_window, normalize, sample_for_statistics


def test_settings_round_trip_and_unknown_methods_are_refused():
    norm = Normalization(low_percentile=2.0, high_percentile=99.0)
    assert Normalization.from_dict(norm.to_dict()) == norm
    assert Normalization.from_dict({"low_percentile": 1.0, "extra": "ignored"}).low_percentile == 1.0
    with pytest.raises(ValueError, match="unknown normalisation method"):
        Normalization.from_dict({"method": "zscore"})


def test_window_is_the_percentiles_and_maps_them_to_0_and_1():
    values = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    low, high = intensity_window(values)
    assert low == pytest.approx(np.percentile(values, 5)) and high == pytest.approx(np.percentile(values, 99.5))
    out = normalize(values, window=(low, high))
    assert out.dtype == np.float32
    assert out.reshape(-1)[50] == pytest.approx(0.0, abs=0.01) and out.max() == pytest.approx(1.0, abs=0.01)


def test_clipping_bounds_outliers_such_as_metal():
    values = np.zeros((8, 8, 8), np.float32)
    values[:4] = 1000.0
    values[0, 0, 0] = 1e6  # a metal streak
    out = normalize(values, Normalization(), window=(0.0, 1000.0))
    assert out.max() == Normalization().clip_high and out.min() >= Normalization().clip_low


def test_the_same_window_gives_the_same_values_whatever_the_dtype():
    values = np.random.default_rng(0).integers(-1000, 3000, (12, 12, 12)).astype(np.int16)
    window = intensity_window(values)
    np.testing.assert_allclose(normalize(values, window=window), normalize(values.astype(np.float64), window=window))


def test_statistics_sample_is_a_bounded_strided_view():
    big = np.zeros((200, 200, 200), np.uint8)
    sample = sample_for_statistics(big, max_samples=100_000)
    assert 50_000 <= sample.size <= 100_000 and sample.dtype == np.float32
    assert sample_for_statistics(np.ones((4, 4, 4))).size == 64
