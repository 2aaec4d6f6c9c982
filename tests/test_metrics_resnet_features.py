"""SwAV and RadImageNet ResNet-50 features: checkpoint layouts, preprocessing, fingerprints, errors, the CLI spec.

Weights files are built here from a seeded ResNet-50 (never downloaded) in the layouts the real files have.
A ResNet-50 at 224 px costs about 0.3 s per image on one CPU thread, so every test forwards few images.
"""

from __future__ import annotations

import importlib
import io
import urllib.error

import pytest
import torch
import torch.nn.functional as F

from medgan.errors import CheckpointError, ConfigError, DataError
from medgan.metrics.features import EXTRACTORS, extract_features, get_extractor
from medgan.metrics.resnet import (CAFFE_MEAN, IMAGENET_MEAN, IMAGENET_STD, RADIMAGENET_ENV, SWAV_ENV, ResNet50,
                                   download_swav_weights, load_resnet50)

pytestmark = pytest.mark.usefixtures("one_thread")

resnet_module = importlib.import_module("medgan.metrics.resnet")


def _seeded_state(keras: bool, seed: int) -> dict[str, torch.Tensor]:
    """A ResNet-50 state dict with random weights and batch-norm statistics (so loading them changes outputs)."""
    torch.manual_seed(seed)
    network = ResNet50(keras=keras)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return network.state_dict()


def _network(state: dict[str, torch.Tensor], keras: bool = False) -> ResNet50:
    network = ResNet50(keras=keras)
    network.load_state_dict(state)
    return network.eval()


def _torch_release_name(key: str) -> str:
    """torchvision name -> the RadImageNet PyTorch release's ``backbone.<i>.`` name."""
    head, _, rest = key.partition(".")
    index = {"conv1": 0, "bn1": 1, "layer1": 4, "layer2": 5, "layer3": 6, "layer4": 7}[head]
    return f"backbone.{index}.{rest}"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """The three layouts: SwAV (``module.`` + heads), RadImageNet Keras conversion, RadImageNet PyTorch release."""
    folder = tmp_path_factory.mktemp("resnet-weights")
    torchvision_state, keras_state = _seeded_state(False, 0), _seeded_state(True, 1)
    swav = {f"module.{key}": value for key, value in torchvision_state.items()}
    heads = {"projection_head.0.weight": torch.randn(8, 2048), "projection_head.0.bias": torch.zeros(8),
             "projection_head.1.running_mean": torch.zeros(8), "prototypes.weight": torch.randn(5, 8)}
    swav.update({f"module.{key}": value for key, value in heads.items()})  # SwAV's training heads: ignored
    paths = {"swav": folder / "swav_800ep_pretrain.pth.tar", "keras": folder / "RadImageNet-ResNet50_notop.pth",
             "torch": folder / "ResNet50.pt"}
    torch.save(swav, paths["swav"])
    torch.save(keras_state, paths["keras"])
    torch.save({_torch_release_name(key): value for key, value in torchvision_state.items()}, paths["torch"])
    return {"paths": paths, "torchvision": torchvision_state, "keras": keras_state}


def _images(count: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 1, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _same_weights(network: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    loaded = network.state_dict()
    return loaded.keys() == state.keys() and all(torch.equal(loaded[key], state[key]) for key in state)


def test_registered_and_reachable_by_spec():
    assert {"swav", "radimagenet"} <= set(EXTRACTORS.names())


def test_swav_features_equal_a_direct_forward_pass_at_any_batch_size(files):
    extractor = get_extractor(f"swav:{files['paths']['swav']}")
    assert extractor.name == "swav" and extractor.dim == 2048
    assert _same_weights(extractor.network, files["torchvision"])  # heads and the module. prefix are gone
    images = _images(4)
    # The reference: the saved network on hand-made input (PIL-equivalent bicubic to 224, ImageNet mean/std).
    resized = F.interpolate(images, size=(224, 224), mode="bicubic", align_corners=False, antialias=True)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = _network(files["torchvision"])(((resized + 1) / 2 - mean) / std)
    features = extract_features(images, extractor, batch_size=3)  # batches of 3 and 1
    assert features.shape == (4, 2048) and torch.isfinite(features).all()
    assert expected.std() > 0 and torch.allclose(features, expected, rtol=1e-4, atol=1e-5 * expected.abs().max())


def test_architecture_matches_monai_resnet50(files):
    from monai.networks.nets import ResNet

    state = files["torchvision"]
    reference = ResNet("bottleneck", [3, 4, 6, 3], [64, 128, 256, 512], spatial_dims=2, n_input_channels=3,
                       conv1_t_stride=2, bias_downsample=False, feed_forward=False).eval()
    reference.load_state_dict(state, strict=True)  # same names, same shapes
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(_network(state)(images), reference(images), rtol=1e-5, atol=1e-6)


def test_radimagenet_layout_picks_network_and_preprocessing(files, monkeypatch):
    keras = get_extractor(f"radimagenet:{files['paths']['keras']}")
    release = get_extractor(f"radimagenet:{files['paths']['torch']}")
    assert keras.network.keras and not release.network.keras
    assert keras.network.layer2[0].conv1.stride == (2, 2) and keras.network.layer2[0].conv2.stride == (1, 1)
    assert _same_weights(keras.network, files["keras"])
    assert _same_weights(release.network, files["torchvision"])  # backbone.<i>. renamed to torchvision names
    assert keras.fingerprint().startswith("radimagenet-keras-")
    assert release.fingerprint().startswith("radimagenet-torch-")
    grey = torch.full((1, 1, 224, 224), 0.5)  # 0.75 on the [0, 1] scale; no resize at 224
    assert torch.allclose(keras.prepare(grey)[0, :, 0, 0], 0.75 - torch.tensor(CAFFE_MEAN))  # Keras caffe, then /255
    assert torch.allclose(release.prepare(grey)[0, :, 0, 0], torch.full((3,), 0.5))  # [-1, 1], as the authors feed
    for extractor in (keras, release):
        features = extract_features(_images(1, seed=4), extractor)
        assert features.shape == (1, 2048) and torch.isfinite(features).all()
    monkeypatch.setenv(RADIMAGENET_ENV, str(files["paths"]["keras"]))
    assert get_extractor("radimagenet").fingerprint() == keras.fingerprint()


def test_fingerprint_keys_on_the_weights_file(files, tmp_path, monkeypatch):
    first = get_extractor(f"swav:{files['paths']['swav']}")
    monkeypatch.setenv(SWAV_ENV, str(files["paths"]["swav"]))
    assert get_extractor("swav").fingerprint() == first.fingerprint()
    assert first.fingerprint().startswith("swav-resnet50-v1:")
    changed = dict(files["torchvision"])
    changed["bn1.bias"] = changed["bn1.bias"] + 1.0
    other = tmp_path / "other.pth"
    torch.save(changed, other)
    assert get_extractor(f"swav:{other}").fingerprint() != first.fingerprint()


def _one_line_error(path, what: str = "SwAV", **options) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_resnet50(path, what, **options)
    message = caught.value.one_line()
    assert "\n" not in message
    return message


def test_bad_weights_files_raise_one_line_checkpoint_errors(files, tmp_path, monkeypatch):
    assert "SwAV weights file not found" in _one_line_error(tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    assert "not SwAV ResNet-50 weights (missing" in _one_line_error(wrong)
    shapes = tmp_path / "shapes.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, shapes)
    assert "size mismatch" in _one_line_error(shapes)
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], listed)
    assert "must be a state dict" in _one_line_error(listed)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    assert "cannot read SwAV weights" in _one_line_error(garbage)
    # The Keras-converted RadImageNet file is not SwAV weights: its convolution biases do not fit.
    assert "unexpected ['conv1.bias'" in _one_line_error(files["paths"]["keras"])
    monkeypatch.delenv(SWAV_ENV, raising=False)
    with pytest.raises(ConfigError, match="local weights"):
        get_extractor("swav")
    with pytest.raises(CheckpointError, match="RadImageNet weights file not found"):
        get_extractor(f"radimagenet:{tmp_path / 'none.pth'}")


def test_evaluate_cli_accepts_a_swav_spec(files, tmp_path, capsys):
    from medgan.cli import main

    arguments = ["evaluate", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--quiet"]
    assert main([*arguments, "--out", str(tmp_path / "a"), "--features", f"swav:{tmp_path / 'none.pth'}"]) == 2
    assert "SwAV weights file not found" in capsys.readouterr().err
    # A good spec passes the feature check (done first) and the command stops at the missing images instead.
    assert main([*arguments, "--out", str(tmp_path / "b"), "--features", f"swav:{files['paths']['swav']}"]) == 2
    error = capsys.readouterr().err
    assert "synthetic images not found" in error and "SwAV" not in error


def test_download_is_explicit_and_leaves_no_bad_file(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(resnet_module.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="cannot download SwAV weights"):
        download_swav_weights(tmp_path / "swav.pth.tar")
    monkeypatch.setattr(resnet_module.urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b"<html>error</html>"))
    with pytest.raises(DataError, match="not usable"):
        download_swav_weights(tmp_path / "swav.pth.tar")
    assert not list(tmp_path.iterdir())  # neither the file nor a temporary one
