"""``medgan.metrics.suite``: the in-training score (keys, speed, ordering) and the metric suite on tensors."""

from __future__ import annotations

import importlib
import time

import numpy as np
import pytest
import torch

from medgan.config import DataConfig
from medgan.errors import DataError
from medgan.metrics.features import OfflineFeatures
from medgan.metrics.suite import compute_metrics, training_score

from helpers import blur


pytestmark = pytest.mark.usefixtures("one_thread")


suite_module = importlib.import_module("medgan.metrics.suite")


@pytest.fixture(autouse=True)
def quick_settings(monkeypatch, tmp_path):
    """Fewer random pairs and KID subsets keep each suite run to a few seconds; the cache goes to tmp."""
    for name, value in (("SIMILARITY_PAIRS", 60), ("DIVERSITY_PAIRS", 100), ("KID_SUBSETS", 10),
                        ("INTERVAL_RESAMPLES", 30)):
        monkeypatch.setattr(suite_module, name, value)
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def mni() -> torch.Tensor:
    from medgan.data import load_slices

    return load_slices(DataConfig(), progress=False).images  # 112 axial slices, 64 px


def test_training_score_keys_speed_and_ordering(mni):
    generator = torch.Generator().manual_seed(3)
    real = mni.repeat(2, 1, 1, 1)[:200]
    noise = 0.02 * torch.randn(200, 1, 64, 64, generator=generator)
    good = (real[torch.randperm(200, generator=generator)] + noise).clamp(-1, 1)
    bad = blur(good, 2.0)
    started = time.perf_counter()
    good_score = training_score(real, good)
    elapsed = time.perf_counter() - started
    assert set(good_score) == {"fid", "kid", "precision", "recall", "density", "coverage"}
    assert all(isinstance(value, float) for value in good_score.values())
    assert good_score["fid"] < training_score(real, bad)["fid"]
    assert elapsed < 10.0  # under 1 s on an idle 2-core CPU; lenient for shared machines
    with pytest.raises(DataError, match="more images than feature dimensions"):
        training_score(real[:50], good[:50])


def test_held_out_real_images_are_the_memorization_baseline(mni):
    train, held_out = mni[::2], mni[1::2]  # 56 each: too few for a 64-D FID
    generator = torch.Generator().manual_seed(4)
    fake = torch.cat([train[:10], (held_out[:30] + 0.2 * torch.randn(30, 1, 64, 64, generator=generator)).clamp(-1, 1)])
    metrics, artefacts = compute_metrics(held_out, fake, None, OfflineFeatures(), train=train)
    memorization = metrics["memorization"]
    assert memorization["baseline"] == "held-out real images"
    assert memorization["near_copies"] == 10 and set(np.flatnonzero(artefacts.audit.near_copies)) == set(range(10))
    assert metrics["distribution"]["fid"] is None
    assert any("FID not computed" in note for note in metrics["notes"])
    assert metrics["distribution"]["kid_mean"] is not None
    assert metrics["intensity"]["unit"] == "model units"
    # Without subjects images are resampled; the audit's rates get intervals, FID none (it was not computed).
    assert metrics["resampling"]["real_resampled"] == "images" and "unknown" in metrics["resampling"]["note"]
    copies = metrics["memorization"]["near_copy_fraction_interval"]
    assert copies["low"] <= 0.25 <= copies["high"] and copies["n_fake"] == 40
    assert "fid_interval" not in metrics["distribution"] and metrics["distribution"]["kid_subset_size"] == 20
    assert metrics["small_n"]["flagged"] and "at or below the feature dimension" in metrics["small_n"]["message"]
    assert metrics["frd"]["value_interval"]["n_fake"] == 40 and metrics["spectrum"]["bands"][0]["ratio"] > 0
