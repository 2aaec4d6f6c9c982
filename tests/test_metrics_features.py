"""Feature extractors: the offline extractor's determinism and rankings, Inception and TorchScript loading, caching."""

from __future__ import annotations

import importlib
import urllib.error

import pytest
import torch
import torch.nn.functional as F

from medgan.config import DataConfig
from medgan.errors import CheckpointError, ConfigError, DataError
from medgan.metrics.feature_cache import cached_features
from medgan.metrics.features import EXTRACTORS, OfflineFeatures, extract_features, get_extractor
from medgan.metrics.fid import fid
from medgan.metrics.inception import FIDInceptionV3, download_inception_weights, load_fid_inception

from helpers import blur


pytestmark = pytest.mark.usefixtures("one_thread")


features_module = importlib.import_module("medgan.metrics.features")
inception_module = importlib.import_module("medgan.metrics.inception")


@pytest.fixture(scope="module")
def mni_slices() -> torch.Tensor:
    """MNI template slices along all three axes (about 375 at 64 px): enough for FID on a half split."""
    from medgan.data import load_slices

    return torch.cat([load_slices(DataConfig(axis=axis), progress=False).images for axis in (0, 1, 2)])


def test_registry_and_unknown_names():
    assert {"offline", "inception", "torchscript"} <= set(EXTRACTORS.names())
    with pytest.raises(ConfigError, match="offline"):
        get_extractor("vgg")
    with pytest.raises(ConfigError, match="takes no argument"):
        get_extractor("offline:x")


def test_offline_features_are_deterministic_and_batch_independent():
    images = torch.rand(13, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    first, second = OfflineFeatures(), OfflineFeatures()
    assert first.dim == 64 and first.fingerprint() == "offline-v1"
    one_batch = extract_features(images, first, batch_size=64)
    small_batches = extract_features(images, second, batch_size=3)
    assert one_batch.shape == (13, 64)
    assert torch.allclose(one_batch, small_batches, rtol=1e-4, atol=1e-4)
    resized = extract_features(F.interpolate(images, size=32, mode="area"), first)  # other sizes are resized
    assert resized.shape == (13, 64) and torch.isfinite(resized).all()


def test_extract_features_rejects_bad_images():
    extractor = OfflineFeatures()
    with pytest.raises(DataError, match="1 channel"):
        extract_features(torch.zeros(2, 3, 64, 64), extractor)
    with pytest.raises(DataError, match="empty"):
        extract_features(torch.zeros(0, 1, 64, 64), extractor)
    with pytest.raises(DataError, match="NaN"):
        extract_features(torch.full((2, 1, 64, 64), float("nan")), extractor)


def test_offline_fid_ranks_the_degradation_ladder(mni_slices):
    order = torch.randperm(len(mni_slices), generator=torch.Generator().manual_seed(0))
    reference, held_out = mni_slices[order[::2]], mni_slices[order[1::2]]
    noise = torch.randn(held_out.shape, generator=torch.Generator().manual_seed(1))
    ladder = {
        "split": held_out,
        "noisy": (held_out + 0.1 * noise).clamp(-1, 1),
        "blurred": blur(held_out, 1.0),
        "collapsed": held_out[:1].repeat(len(held_out), 1, 1, 1),
    }
    extractor = OfflineFeatures()
    reference_features = extract_features(reference, extractor)
    scores = {name: fid(reference_features, extract_features(images, extractor)) for name, images in ladder.items()}
    assert scores["split"] < 0.5 * min(scores["noisy"], scores["blurred"], scores["collapsed"])
    assert scores["noisy"] < scores["blurred"]
    assert scores["split"] < scores["collapsed"]


def test_inception_loads_a_state_dict_from_a_local_file(tmp_path, monkeypatch):
    torch.manual_seed(0)
    weights = tmp_path / "inception.pth"
    torch.save(FIDInceptionV3().state_dict(), weights)
    extractor = get_extractor(f"inception:{weights}")
    assert extractor.dim == 2048
    features = extract_features(torch.rand(2, 1, 32, 32) * 2 - 1, extractor)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    monkeypatch.setenv(inception_module.WEIGHTS_ENV, str(weights))
    assert get_extractor("inception").fingerprint() == extractor.fingerprint()


def test_inception_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv(inception_module.WEIGHTS_ENV, raising=False)
    with pytest.raises(ConfigError, match="local weights"):
        get_extractor("inception")
    with pytest.raises(CheckpointError, match="not found"):
        load_fid_inception(tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(CheckpointError, match="not FID-Inception weights"):
        load_fid_inception(wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_fid_inception(garbage)


def test_download_is_explicit_and_fails_cleanly_offline(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(inception_module.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="cannot download"):
        download_inception_weights(tmp_path / "weights.pth")
    assert not (tmp_path / "weights.pth").exists()


class _TinyModel(torch.nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([images.mean((1, 2, 3)), images.std((1, 2, 3)), images.amax((1, 2, 3))], 1)


def test_torchscript_extractor_with_channel_and_size_options(tmp_path):
    path = tmp_path / "model.pt"
    torch.jit.script(_TinyModel()).save(str(path))
    extractor = get_extractor(f"torchscript:{path},channels=3,size=32")
    assert extractor.dim == 3
    assert extractor.prepare(torch.zeros(2, 1, 64, 64)).shape == (2, 3, 32, 32)
    features = extract_features(torch.full((2, 1, 64, 64), 0.5), extractor)
    assert torch.allclose(features[:, 0], torch.full((2,), 0.5))
    assert get_extractor(str(path)).dim == 3  # a bare .pt path means TorchScript
    with pytest.raises(ConfigError, match="bad torchscript option"):
        get_extractor(f"torchscript:{path},depth=2")
    with pytest.raises(ConfigError, match="not found"):
        get_extractor(f"torchscript:{tmp_path / 'none.pt'}")


def test_reference_features_are_cached_by_content(tmp_path, monkeypatch):
    extractor = OfflineFeatures()
    images = torch.rand(6, 1, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    first = cached_features(images, extractor, folder=tmp_path)
    files = list(tmp_path.glob("offline-*.npz"))
    assert len(files) == 1

    def fail(*args, **kwargs):
        raise AssertionError("features should come from the cache")

    monkeypatch.setattr(features_module, "extract_features", fail)
    assert torch.equal(cached_features(images, extractor, folder=tmp_path), first)
    monkeypatch.undo()
    other = cached_features(images.flip(-1), extractor, folder=tmp_path)  # new content, new entry
    assert len(list(tmp_path.glob("offline-*.npz"))) == 2 and not torch.equal(other, first)
    files[0].write_bytes(b"corrupt")
    assert torch.allclose(cached_features(images, extractor, folder=tmp_path), first)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
