"""The spectral texture measure and the bootstrap it reports with: white noise is flat, the ratio reads noise as
excess and blur as deficit in the top band, a second real draw as neither, and subject resampling widens the interval
when a subject's slices are near copies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medgan.errors import DataError
from medgan.metrics.bootstrap import bootstrap, paired_bootstrap, resample_indices
from medgan.metrics.spectrum import BANDS, TOLERANCE, band_edges, band_power, spectrum_ratio
from tests.test_metrics_texture import blurred, phantoms, with_noise

pytestmark = pytest.mark.usefixtures("one_thread")


def test_white_noise_has_the_same_power_in_every_band_odd_and_even_sizes():
    generator = torch.Generator().manual_seed(0)
    for shape in ((64, 64), (63, 64), (48, 40)):
        noise = torch.randn(60, 1, *shape, generator=generator) * 0.1
        power = band_power(noise).mean(0)
        assert power.shape == (BANDS,)
        assert torch.allclose(power, torch.full((BANDS,), 0.01, dtype=torch.float64), rtol=0.05)


def test_band_edges_are_cycles_per_image_up_to_nyquist():
    assert band_edges(64) == [(4.0 * k, 4.0 * (k + 1)) for k in range(8)]
    assert band_edges(256, 4)[-1] == (96.0, 128.0)


def test_a_checkerboard_lands_in_the_top_band():
    board = torch.ones(64, 64)
    board[::2, 1::2] = -1
    board[1::2, ::2] = -1
    power = band_power(board[None, None])[0]
    assert power[-1] > 0.99 * power.sum()


@pytest.fixture(scope="module")
def sets() -> dict[str, torch.Tensor]:
    real = phantoms(120, seed=1).float()
    return {"real": real, "again": phantoms(120, seed=2).float(), "noisy": with_noise(real, 0.05).float(),
            "blurred": blurred(real, 1.0).float()}


def test_noise_reads_as_excess_blur_as_deficit_and_a_second_draw_as_neither(sets):
    again = spectrum_ratio(sets["real"], sets["again"], resamples=50)
    noisy = spectrum_ratio(sets["real"], sets["noisy"], resamples=50)
    smooth = spectrum_ratio(sets["real"], sets["blurred"], resamples=50)
    assert again["within_tolerance"] and again["max_deviation"] <= TOLERANCE
    assert noisy["high_frequency_ratio"] > 1.0 + TOLERANCE and noisy["bands"][-1]["low"] > 1.0
    assert smooth["high_frequency_ratio"] < 1.0 - TOLERANCE and smooth["bands"][-1]["high"] < 1.0
    assert not noisy["within_tolerance"] and not smooth["within_tolerance"]
    # both are ranked farther from real than the second real draw
    assert noisy["max_deviation"] > again["max_deviation"] and smooth["max_deviation"] > again["max_deviation"]
    for band in again["bands"]:
        assert band["low"] <= band["ratio"] <= band["high"]


def test_spectrum_ratio_refuses_sets_of_different_size():
    with pytest.raises(DataError, match="differ in size"):
        spectrum_ratio(torch.zeros(4, 1, 32, 32), torch.zeros(4, 1, 64, 64))
    with pytest.raises(DataError, match="too small"):
        band_power(torch.zeros(4, 1, 8, 8))


def test_bootstrap_is_reproducible_and_contains_its_value():
    values = np.random.default_rng(0).normal(size=200)

    def mean(real_index, fake_index):
        return values[real_index].mean() - values[fake_index].mean()

    first = bootstrap(mean, 200, 200, resamples=100, seed=3)
    assert first == bootstrap(mean, 200, 200, resamples=100, seed=3)
    assert first["low"] <= first["value"] <= first["high"]
    assert first["resampled"] == "images" and first["n_real"] == 200
    # the interval of a difference of two means of 200 unit-variance draws: half-width about 1.96 * sqrt(2 / 200)
    assert 0.2 < first["high"] - first["low"] < 0.6


def test_subject_resampling_widens_the_interval_when_slices_of_a_subject_repeat():
    rng = np.random.default_rng(1)
    subjects = np.repeat(np.arange(10), 12)  # 10 subjects of 12 nearly identical slices
    values = np.repeat(rng.normal(size=10), 12) + rng.normal(scale=0.01, size=120)
    fake = rng.normal(size=120)

    def difference(real_index, fake_index):
        return values[real_index].mean() - fake[fake_index].mean()

    by_image = bootstrap(difference, 120, 120, resamples=200)
    by_subject = bootstrap(difference, 120, 120, resamples=200, real_groups=subjects)
    assert by_subject["resampled"] == "subjects"
    assert by_subject["high"] - by_subject["low"] > 1.5 * (by_image["high"] - by_image["low"])
    indices = resample_indices(120, np.random.default_rng(0), subjects)
    assert all(np.isin(np.flatnonzero(subjects == subjects[i]), indices).all() for i in indices)


def test_paired_bootstrap_separates_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(2)
    real, close, far = rng.normal(size=150), rng.normal(size=150), rng.normal(loc=1.0, size=150)

    def gap(fake):
        return lambda real_index, fake_index: abs(real[real_index].mean() - fake[fake_index].mean())

    separated = paired_bootstrap(gap(far), gap(close), 150, 150, 150, resamples=200)
    assert separated["separated"] and separated["low"] > 0 and separated["difference"] > 0
    same = paired_bootstrap(gap(close), gap(close), 150, 150, 150, resamples=200)
    assert not same["separated"]
    with pytest.raises(DataError):
        paired_bootstrap(gap(close), gap(close), 1, 150, 150)
