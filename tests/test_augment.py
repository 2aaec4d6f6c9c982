"""DiffAugment ops: shapes, identity cases, gradients, determinism, content movement, ranges, bf16/channels_last."""

from __future__ import annotations

import pytest
import torch

from medgan.training.augment import POLICIES, AdaptiveProbability, DiffAugment, cutout, translation
from medgan.errors import ConfigError

ALL_OPS = ("translation", "cutout", "brightness", "contrast", "flip", "noise")


def _images(batch: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _square(size: int = 16) -> torch.Tensor:
    """One image: background -1 with a bright 4x4 square at rows/cols 6..9."""
    image = torch.full((1, 1, size, size), -1.0)
    image[..., 6:10, 6:10] = 1.0
    return image


def test_registry_has_greyscale_ops_only_and_rejects_unknown():
    assert set(POLICIES.names()) == set(ALL_OPS)
    with pytest.raises(ConfigError, match="translation"):
        DiffAugment(("translation", "color"))


@pytest.mark.parametrize("probability", [-0.1, 1.5])
def test_probability_outside_unit_interval_is_config_error(probability):
    with pytest.raises(ConfigError, match="probability"):
        DiffAugment(("cutout",), probability)


@pytest.mark.parametrize("name", ALL_OPS)
def test_each_op_keeps_shape_dtype_and_changes_images(name):
    images = _images()
    output = DiffAugment((name,))(images, torch.Generator().manual_seed(1))
    assert output.shape == images.shape and output.dtype == images.dtype
    assert not torch.equal(output, images)


def test_empty_policy_and_zero_probability_are_identity():
    images = _images()
    assert DiffAugment(())(images) is images
    assert DiffAugment(ALL_OPS, probability=0.0)(images, torch.Generator().manual_seed(0)) is images


def test_probability_applies_per_image():
    images = _images(batch=64, size=8)
    output = DiffAugment(("brightness",), probability=0.5)(images, torch.Generator().manual_seed(3))
    changed = (output != images).flatten(1).any(dim=1)
    # With p = 0.5 over 64 images, both groups exist (failure chance ~1e-19 for a fair coin, fixed seed anyway).
    assert 10 < int(changed.sum()) < 54


@pytest.mark.parametrize("name", ALL_OPS)
def test_gradients_flow_to_input(name):
    images = _images(seed=2).mul(0.5).requires_grad_(True)  # inside (-0.5, 0.5) so clamps stay inactive
    output = DiffAugment((name,))(images, torch.Generator().manual_seed(0))
    (output * torch.linspace(-1, 1, output.numel()).reshape(output.shape)).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_full_policy_gradient_flows():
    images = _images().requires_grad_(True)
    DiffAugment(ALL_OPS)(images, torch.Generator().manual_seed(0)).square().sum().backward()
    assert images.grad.abs().sum() > 0


def test_seeded_generator_is_deterministic_and_seeds_differ():
    augment = DiffAugment(ALL_OPS, probability=0.7)
    images = _images(batch=8)
    first = augment(images, torch.Generator().manual_seed(5))
    second = augment(images, torch.Generator().manual_seed(5))
    other = augment(images, torch.Generator().manual_seed(6))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_translation_moves_content_by_integer_shift_with_background_fill():
    image = _square().repeat(32, 1, 1, 1)
    moved = translation(image, torch.Generator().manual_seed(0))
    max_shift = 2  # 16 / 8
    original_mass = (image > 0).sum().item() / 32
    any_moved = False
    for sample in moved[:, 0]:
        rows, cols = torch.nonzero(sample > 0, as_tuple=True)
        # The square survives whole (shifts <= 2 keep it inside), bright values unchanged, rest is background.
        assert rows.numel() == original_mass
        assert set(sample.unique().tolist()) == {-1.0, 1.0}
        dy, dx = rows.min().item() - 6, cols.min().item() - 6
        assert abs(dy) <= max_shift and abs(dx) <= max_shift
        assert rows.max().item() - rows.min().item() == 3
        any_moved |= (dy, dx) != (0, 0)
    assert any_moved


def test_translation_pads_with_background():
    image = torch.ones(16, 1, 8, 8)  # all bright: any -1 in the output came from padding
    moved = translation(image, torch.Generator().manual_seed(1))
    assert set(moved.unique().tolist()) <= {-1.0, 1.0}
    assert (moved == -1).any()


def test_cutout_sets_a_half_side_square_to_background():
    image = torch.ones(32, 1, 16, 16)
    cut = cutout(image, torch.Generator().manual_seed(0))
    background = (cut == -1).sum(dim=(1, 2, 3))
    # A full 8x8 square is 64 pixels; near the border part of it falls outside the image.
    assert (background <= 64).all() and (background > 0).all()
    assert (background == 64).any()
    assert set(cut.unique().tolist()) == {-1.0, 1.0}


@pytest.mark.parametrize("name", ["brightness", "contrast", "noise"])
def test_intensity_ops_stay_in_unit_range(name):
    images = torch.cat([torch.full((8, 1, 8, 8), 1.0), torch.full((8, 1, 8, 8), -1.0), _images(8, 8)])
    output = POLICIES.get(name)(images, torch.Generator().manual_seed(0))
    assert output.min() >= -1.0 and output.max() <= 1.0


def test_brightness_offset_is_uniform_per_image_and_bounded():
    images = torch.zeros(64, 1, 4, 4)
    output = POLICIES.get("brightness")(images, torch.Generator().manual_seed(0))
    offsets = output[:, 0, 0, 0]
    assert torch.equal(output, offsets[:, None, None, None].expand_as(output))
    assert offsets.abs().max() <= 0.25 and offsets.std() > 0.05


def test_contrast_keeps_each_image_mean_when_not_clamped():
    images = _images(batch=8).mul(0.2)  # small deviations: factor <= 1.5 cannot reach the clamp
    output = POLICIES.get("contrast")(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(output.mean(dim=(1, 2, 3)), images.mean(dim=(1, 2, 3)))
    ratio = (output - output.mean((1, 2, 3), keepdim=True)).std((1, 2, 3)) / images.std((1, 2, 3))
    assert (ratio >= 0.5 - 1e-4).all() and (ratio <= 1.5 + 1e-4).all()


def test_flip_mirrors_some_images_exactly():
    images = _images(batch=16)
    output = POLICIES.get("flip")(images, torch.Generator().manual_seed(0))
    mirrored = torch.tensor([torch.equal(out, image.flip(-1)) for out, image in zip(output, images)])
    unchanged = torch.tensor([torch.equal(out, image) for out, image in zip(output, images)])
    assert (mirrored | unchanged).all() and mirrored.any() and unchanged.any()


def test_bf16_autocast_and_channels_last():
    images = _images(batch=4, size=16).to(memory_format=torch.channels_last).requires_grad_(True)
    conv = torch.nn.Conv2d(1, 2, 3, padding=1).to(memory_format=torch.channels_last)
    augment = DiffAugment(ALL_OPS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = conv(images)  # bf16, as a generator's output would be under autocast
        output = augment(features, torch.Generator().manual_seed(0))
    assert output.dtype == torch.bfloat16 and output.shape == features.shape
    assert output.is_contiguous(memory_format=torch.channels_last)
    output.float().sum().backward()
    assert images.grad.abs().sum() > 0
    # Same seed, same result whatever the memory format.
    reference = augment(features.detach().contiguous(), torch.Generator().manual_seed(0))
    assert torch.equal(output.detach().contiguous(), reference)


def test_string_policy_is_one_op():
    assert DiffAugment("cutout").policy == ("cutout",)


def test_adaptive_probability_rises_when_discriminator_overfits_and_falls_otherwise():
    controller = AdaptiveProbability(target=0.6, images_to_full=64, interval=2, maximum=0.8)
    confident = torch.ones(8, 1)  # sign mean 1 > 0.6: D overfits -> more augmentation
    assert controller.update(confident) == 0.0  # no adjustment until `interval` calls
    assert controller.update(confident) == pytest.approx(16 / 64)
    for _ in range(20):
        controller.update(confident)
    assert controller.probability == pytest.approx(0.8)  # capped at maximum
    assert controller.last_heuristic == pytest.approx(1.0)
    unsure = torch.tensor([1.0, -1.0, 1.0, -1.0])  # sign mean 0 < 0.6 -> less augmentation
    controller.update(unsure)
    controller.update(unsure)
    assert controller.probability == pytest.approx(0.8 - 8 / 64)


def test_adaptive_probability_counts_images_not_patch_logits_and_resumes():
    controller = AdaptiveProbability(images_to_full=100, interval=1)
    controller.update(torch.ones(4, 1, 5, 5))  # patch D: 25 logits per image, 4 images
    assert controller.probability == pytest.approx(0.04)
    restored = AdaptiveProbability(images_to_full=100, interval=1)
    restored.load_state_dict(controller.state_dict())
    assert restored.update(torch.ones(4)) == controller.update(torch.ones(4)) == pytest.approx(0.08)
    augment = DiffAugment(("translation",))
    augment.probability = restored.probability
    assert augment.probability == pytest.approx(0.08)


def test_adaptive_probability_rejects_bad_target():
    with pytest.raises(ConfigError, match="target"):
        AdaptiveProbability(target=1.5)


def test_acquisition_augment_blurs_and_adds_noise_reproducibly():
    from medgan.data.transforms import acquisition_augment

    torch.manual_seed(0)
    images = (torch.rand(6, 1, 32, 32) > 0.5).float() * 1.6 - 0.8  # sharp binary texture
    assert torch.equal(acquisition_augment(images, probability=0.0), images)  # nothing drawn: unchanged

    def roughness(x):  # mean absolute difference between horizontal neighbours
        return (x[..., 1:] - x[..., :-1]).abs().mean().item()

    blurred = acquisition_augment(images, max_sigma=1.0, max_noise=0.0, probability=1.0,
                                  generator=torch.Generator().manual_seed(1))
    assert roughness(blurred) < 0.8 * roughness(images)
    assert blurred.mean().item() == pytest.approx(images.mean().item(), abs=0.02)  # blur keeps the mean
    flat = torch.zeros(6, 1, 32, 32)
    noisy = acquisition_augment(flat, max_sigma=0.0, max_noise=0.1, probability=1.0,
                                generator=torch.Generator().manual_seed(2))
    assert 0.01 < noisy.std().item() < 0.1
    again = acquisition_augment(flat, max_sigma=0.0, max_noise=0.1, probability=1.0,
                                generator=torch.Generator().manual_seed(2))
    assert torch.equal(noisy, again)
