"""The generator's spectral term (medgan.losses.spectral) and its place in training and DP."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medgan.errors import ConfigError
from medgan.losses.spectral import radial_log_power, spectral_matching
from medgan.training.private_settings import private_defaults


def smooth_images(count: int, seed: int = 0) -> torch.Tensor:
    """[count, 1, 32, 32] blurred noise in [-1, 1]: little power at high frequencies."""
    noise = torch.rand(count, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    kernel = torch.ones(1, 1, 5, 5) / 25
    return F.conv2d(F.pad(noise, (2, 2, 2, 2), mode="circular"), kernel).clamp(-1, 1)


def test_radial_profile_counts_each_radius_once_and_leaves_out_dc():
    images = smooth_images(4)
    profile = radial_log_power(images)
    assert profile.shape == (23,)  # radii 1 .. round(16 * sqrt(2)) = 23 cycles per image
    # A constant added to every pixel moves only DC, which the profile leaves out.
    torch.testing.assert_close(radial_log_power(images + 0.3), profile, atol=1e-4, rtol=1e-4)
    # A pure cosine of 5 cycles per image along the columns puts its power at radius 5 and nowhere else.
    columns = torch.arange(32.0)
    wave = torch.cos(2 * torch.pi * 5 * columns / 32).expand(1, 1, 32, 32)
    power = radial_log_power(wave).exp()
    assert int(power.argmax()) == 4 and float(power[4]) > 1e6 * float(torch.cat([power[:4], power[5:]]).max())


def test_term_is_zero_for_the_same_spectrum_and_grows_with_grain_and_with_blur():
    real = smooth_images(16, seed=1)
    assert float(spectral_matching(real, real)) == 0.0
    other = smooth_images(16, seed=2)  # another draw of the same process: close, not equal
    grainy = other + 0.1 * torch.randn(other.shape, generator=torch.Generator().manual_seed(3))
    blurred = F.avg_pool2d(other, 3, stride=1, padding=1, count_include_pad=False)
    same = float(spectral_matching(other, real))
    assert same < 0.05
    assert float(spectral_matching(grainy, real)) > 10 * same
    assert float(spectral_matching(blurred, real)) > 10 * same


def test_gradient_steps_on_the_fake_remove_grain_and_the_real_gets_none():
    real = smooth_images(8, seed=1).requires_grad_(True)
    fake = (smooth_images(8, seed=2) + 0.2 * torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(4)))
    fake = fake.requires_grad_(True)
    start = float(spectral_matching(fake, real).detach())
    optimizer = torch.optim.Adam([fake], lr=0.01)
    for _ in range(50):
        optimizer.zero_grad()
        loss = spectral_matching(fake, real)
        loss.backward()
        optimizer.step()
    assert real.grad is None
    assert float(spectral_matching(fake, real).detach()) < 0.2 * start


def test_from_nyquist_leaves_the_coarse_scales_out():
    real = smooth_images(8, seed=1)
    columns = torch.arange(32.0)
    coarse = real + 0.5 * torch.cos(2 * torch.pi * 3 * columns / 32)  # extra power at 3 cycles per image only
    fine = real + 0.05 * torch.cos(2 * torch.pi * 12 * columns / 32)  # ... at 12 cycles (3/4 of Nyquist) only
    assert float(spectral_matching(coarse, real)) > 0.1
    # From half the Nyquist frequency (8 cycles at 32 px) up, the coarse change is invisible, the fine one is not.
    assert float(spectral_matching(coarse, real, from_nyquist=0.5)) == pytest.approx(0.0, abs=1e-6)
    assert float(spectral_matching(fine, real, from_nyquist=0.5)) > float(spectral_matching(fine, real))
    with pytest.raises(ValueError, match="from_nyquist"):
        spectral_matching(real, real, from_nyquist=1.0)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        spectral_matching(torch.zeros(2, 1, 32, 32), torch.zeros(2, 1, 16, 16))


def test_training_with_the_term_logs_it_and_stays_finite(tmp_path):
    from test_privacy_dp import tiny_config, tiny_data

    from medgan.training.loop import train

    config = tiny_config({}, steps=4, conditional={"spectral": 1.0})
    result = train(config, tmp_path / "run", progress=False, data=tiny_data())
    logged = [line for line in (tmp_path / "run" / "losses.jsonl").read_text().splitlines() if '"spectral"' in line]
    assert result.steps == 4 and logged
    assert all("NaN" not in line for line in logged)


def test_dp_switches_off_a_recipe_spectral_term_and_refuses_the_users():
    from test_privacy_dp import check_config, tiny_config

    from medgan.training.tasks import TASKS

    config = tiny_config({"epsilon": 5.0}, conditional={"spectral": 1.0})
    switched, notes = private_defaults(config, given={})  # the value came from the recipe: switched off
    assert switched == {"conditional": {"spectral": 0.0}}
    assert notes == [("dp: conditional.spectral switched to 0 (the generator's spectral term reads real images "
                      "outside the mechanism)")]
    assert private_defaults(config, given={"conditional": {"spectral": 1.0}}) == ({}, [])  # the user's: kept ...
    with pytest.raises(ConfigError, match=r"conditional\.spectral must be 0"):  # ... and refused
        check_config(config)
    check_config(tiny_config({}, conditional={"spectral": 1.0}))  # without DP it is fine
    with pytest.raises(ConfigError, match=r"spectral"):
        check_config(tiny_config({}, conditional={"spectral": -1.0}))
    with pytest.raises(ConfigError, match=r"spectral_from. must be in \[0, 1\)"):
        check_config(tiny_config({}, conditional={"spectral_from": 1.0}))
    with pytest.raises(ConfigError, match=r"mode_seeking_pool.*between 1 and data\.resolution \(32\)"):
        TASKS.get("conditional").section(tiny_config({}, conditional={"mode_seeking_pool": 64}))
