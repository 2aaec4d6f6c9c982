"""The example configs in configs/: the demo ones match the demos exactly; every one trains in tiny mode."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from helpers import write_tiny_brain
from medgan.config import deep_update, load_yaml
from medgan.training.tasks import DEMOS, resolve_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
OWN_DATA = sorted(path for path in CONFIGS.glob("*.yaml") if not path.name.startswith("demo-"))
# Tiny mode: the config's own choices stay (task, window, modality, degradation, losses); only size and budget shrink.
TINY = {"data": {"resolution": 32, "min_foreground": 0.05},
        "model": {"generator_channels": 4, "discriminator_channels": 4, "latent_dim": 8},
        "train": {"steps": 2, "minutes": 0.0, "batch_size": 4, "eval_every": 0, "sample_every": 2,
                  "checkpoint_every": 2, "log_every": 1}}


def test_every_demo_has_its_config_and_it_is_the_demo():
    from medgan.demos import demo_config

    assert sorted(p.name for p in CONFIGS.glob("demo-*.yaml")) == sorted(f"demo-{name}.yaml" for name in DEMOS)
    for name in DEMOS:
        values = load_yaml(CONFIGS / f"demo-{name}.yaml")
        assert resolve_config(values) == demo_config(name), name


def test_each_config_starts_with_what_it_is_and_its_command():
    for path in CONFIGS.glob("*.yaml"):
        lines = path.read_text().splitlines()
        assert lines[0].startswith("# ") and len(lines[0]) > 20, path.name
        assert any(line.startswith("# medgan train --config configs/" + path.name) for line in lines[:4]), path.name


def _ct_volume(path: Path, seed: int) -> Path:
    """A 32 x 32 x 8 'abdomen' in HU: air, a fat ring, soft tissue, a brighter organ and a bone spot."""
    rng = np.random.default_rng(seed)
    x, y, _ = np.meshgrid(np.linspace(-1, 1, 32), np.linspace(-1, 1, 32), np.linspace(-1, 1, 8), indexing="ij")
    radius = np.sqrt((x / 0.9) ** 2 + (y / 0.7) ** 2)
    hu = np.full(x.shape, -1000.0)
    hu[radius < 0.95] = -100.0
    hu[radius < 0.8] = 40.0
    hu[(x - 0.3) ** 2 + y ** 2 < 0.1] = 110.0
    hu[x ** 2 + (y + 0.5) ** 2 < 0.02] = 700.0
    hu = hu + rng.normal(0, 10, hu.shape)
    nib.save(nib.Nifti1Image(hu.astype(np.float32), np.diag([1.5, 1.5, 3.0, 1.0])), str(path))
    return path


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("configs-data")
    folders = {name: root / name for name in ("mr", "t2", "ct")}
    for folder in folders.values():
        folder.mkdir()
    for subject in range(4):
        write_tiny_brain(folders["mr"] / f"s{subject}.nii.gz", seed=subject)
        write_tiny_brain(folders["t2"] / f"s{subject}.nii.gz", seed=10 + subject)
        _ct_volume(folders["ct"] / f"s{subject}.nii.gz", subject)
    return folders


def _tiny_data(values: dict, folders: dict) -> dict:
    """The config's data locations pointed at tiny folders of the right modality."""
    data = dict(values["data"])
    ct = data.get("modality") == "ct" or values.get("task") in ("paired", "unpaired") and "window" in data
    data["source"] = str(folders["ct"] if ct else folders["mr"])
    if data.get("domain_a"):
        data["domain_a"] = [str(folders["mr"]), str(folders["t2"])][: len(data["domain_a"])]
    return {**values, "data": data}


@pytest.mark.parametrize("path", OWN_DATA, ids=lambda path: path.stem)
def test_own_data_config_trains_in_tiny_mode(path, tiny_folders, tmp_path):
    from medgan.training.loop import train

    values = load_yaml(path)
    assert str(values["data"]["source"]).startswith("/path/to/")  # a visible placeholder, replaced by --data
    tiny = deep_update(TINY, {"paired": {"patch": 0}}) if "paired" in values else TINY  # 96 px patches of 32 px
    config = resolve_config(deep_update(_tiny_data(values, tiny_folders), tiny))
    # The config's own choices survive tiny mode.
    for key, value in values["data"].items():
        if key not in ("source", "domain_a", "resolution", "min_foreground"):
            assert getattr(config.data, key) == (tuple(value) if isinstance(value, list) else value), key
    assert config.task == values["task"]
    result = train(config, tmp_path / "run", progress=False)
    assert result.steps == 2
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()


def test_configs_are_plain_yaml_sections():
    sections = {"task", "data", "model", "loss", "augment", "optim", "train", "privacy", *DEMOS.names(),
                "unconditional", "conditional", "paired", "unpaired"}
    for path in CONFIGS.glob("*.yaml"):
        values = yaml.safe_load(path.read_text())
        assert set(values) <= sections, (path.name, set(values) - sections)
