"""Memorization audit: planted copies are all flagged, novel images never; the fast SSIM equals MONAI's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics.regression import compute_ssim_and_cs

from medgan.config import DataConfig
from medgan.errors import DataError
from medgan.metrics.features import OfflineFeatures, extract_features
from medgan.metrics.image import to_display
from medgan.metrics.memorization import NEAR_COPY_SSIM, LocalMoments, candidate_ssim, memorization_audit


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def slices() -> dict[str, torch.Tensor]:
    from medgan.data import load_slices

    return {
        "axial": load_slices(DataConfig(axis=2), progress=False).images,  # the training set
        "coronal": load_slices(DataConfig(axis=1), progress=False).images,  # clearly novel images
    }


def test_fast_ssim_equals_monai():
    generator = torch.Generator().manual_seed(0)
    first = torch.rand(5, 1, 40, 48, generator=generator) * 1.8 - 0.85  # above the black floor (-0.9)
    second = (first + 0.3 * torch.randn(first.shape, generator=generator)).clamp(-0.85, 1)
    candidates = torch.tensor([[0, 1], [1, 2], [2, 3], [3, 4], [4, 0]])  # each image and its neighbour
    ours = candidate_ssim(LocalMoments(first), LocalMoments(second), candidates)
    for column in range(2):
        reference, _ = compute_ssim_and_cs(to_display(first), to_display(second[candidates[:, column]]), spatial_dims=2,
                                           kernel_size=(11, 11), kernel_sigma=(1.5, 1.5), data_range=1.0)
        assert torch.allclose(ours[:, column], reference.mean((1, 2, 3)), atol=1e-5)


def test_planted_copies_are_all_flagged_and_novel_images_never(slices):
    train, novel = slices["axial"], slices["coronal"][::3]
    generator = torch.Generator().manual_seed(1)
    picks = torch.arange(0, len(train), 9)  # 13 training images to copy
    originals = train[picks]
    planted = torch.cat([
        originals,  # exact copies
        (originals + 0.01 * torch.randn(originals.shape, generator=generator)).clamp(-1, 1),  # 0.5% noise
        (originals + 1.0) * 0.97 - 1.0,  # 3% darker
        (originals + 0.02).clamp(-1, 1),  # 1% brighter
    ])
    samples = torch.cat([novel, planted])
    order = torch.randperm(len(samples), generator=generator)
    samples = samples[order]
    is_copy = (order >= len(novel)).numpy()
    copied_from = np.where(is_copy, picks.repeat(4).numpy()[np.clip(order.numpy() - len(novel), 0, None)], -1)

    extractor = OfflineFeatures()
    audit = memorization_audit(train, extract_features(train, extractor), samples, extract_features(samples, extractor))
    flagged = audit.near_copies
    assert flagged[is_copy].all(), f"missed copies: SSIM {audit.synthetic.ssim[is_copy & ~flagged]}"
    assert not flagged[~is_copy].any(), f"false alarms: SSIM {audit.synthetic.ssim[~is_copy & flagged]}"
    assert (audit.synthetic.ssim_index[is_copy] == copied_from[is_copy]).all()  # the right original is found
    assert audit.synthetic.ssim[~is_copy].max() < NEAR_COPY_SSIM - 0.1  # novel images are clearly apart
    summary = audit.summary()
    assert summary["near_copies"] == int(is_copy.sum())
    assert summary["near_copy_fraction"] == pytest.approx(is_copy.mean())
    assert summary["baseline"] == "leave-one-out within the training set"
    pairs = audit.closest_pairs(5)
    assert [score for _, _, score in pairs] == sorted((score for _, _, score in pairs), reverse=True)


def test_leave_one_out_baseline_never_matches_itself(slices):
    train = slices["axial"][::4]  # 28 slices 4 mm apart: no image is its own neighbour
    extractor = OfflineFeatures()
    features = extract_features(train, extractor)
    audit = memorization_audit(train, features, train[:5], features[:5], max_baseline=10)
    assert (audit.synthetic.ssim > 0.999).all()  # the synthetic images are training images
    assert (audit.baseline.ssim < 0.99).all()  # but no baseline image matched itself
    assert len(audit.baseline.ssim) == 10


def test_held_out_baseline_and_bad_inputs(slices):
    train, heldout = slices["axial"][::2], slices["axial"][1::2]
    extractor = OfflineFeatures()
    audit = memorization_audit(train, extract_features(train, extractor), heldout[:4],
                               extract_features(heldout[:4], extractor), heldout=heldout,
                               heldout_features=extract_features(heldout, extractor))
    assert audit.baseline_kind == "held-out real images" and len(audit.baseline.ssim) == len(heldout)
    with pytest.raises(DataError, match="differ in shape"):
        memorization_audit(train, torch.zeros(len(train), 64), torch.zeros(2, 1, 32, 32), torch.zeros(2, 64))
    with pytest.raises(DataError, match="at least 2"):
        memorization_audit(train[:1], torch.zeros(1, 64), train[:2], torch.zeros(2, 64))
