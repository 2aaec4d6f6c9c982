"""3D noise-to-image training (``data.dims: 3``): the 3D networks and augmentation, cubes from volumes, the
synthetic MNI cohort, a run end to end through the CLI (train, sample NIfTI with geometry, evaluate), and every
refusal as one line."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import assert_one_error_line, cli, listing

import medgan
from medgan.config import DataConfig
from medgan.config.volume_rules import MAX_ANISOTROPY, MIN_VOXELS
from medgan.data import load_slices
from medgan.data.cohort import HELD_OUT, mni_subject, write_mni_cohort
from medgan.data.cubes import load_cubes
from medgan.errors import ConfigError, DataError
from medgan.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from medgan.training.augment import cutout, flip, translation
from medgan.training.tasks import resolve_config
from medgan.training.tasks.noise_to_image.volumes import mid_planes, plane_views

pytestmark = pytest.mark.usefixtures("one_thread")

SIDE = 32


@pytest.mark.parametrize("conditional", [False, True])
def test_3d_networks_shapes_and_gradients(conditional):
    classes = 3 if conditional else 0
    generator = DCGANGenerator(SIDE, latent_dim=8, channels=4, num_classes=classes, conditional_norm=conditional,
                               spatial_dims=3)
    discriminator = DCGANDiscriminator(SIDE, channels=4, num_classes=classes, spectral_norm=True, minibatch_std=True,
                                       spatial_dims=3)
    labels = torch.arange(4) % 3 if conditional else None
    volumes = generator(torch.randn(4, 8), labels)
    assert volumes.shape == (4, 1, SIDE, SIDE, SIDE) and volumes.abs().max() <= 1
    logits = discriminator(volumes, labels)
    assert logits.shape == (4,)
    logits.sum().backward()
    assert all(p.grad is not None for p in generator.parameters() if p.requires_grad)


def test_3d_augmentation_moves_whole_voxels_and_keeps_2d_unchanged():
    volume = torch.full((1, 1, 16, 16, 16), -1.0)
    volume[0, 0, 8, 8, 8] = 1.0
    for seed in range(5):
        moved = translation(volume, torch.Generator().manual_seed(seed))
        (position,) = torch.nonzero(moved[0, 0] == 1).tolist()
        assert all(abs(p - 8) <= 2 for p in position)  # 1/8 of 16 voxels along each axis
        assert moved.sum() == volume.sum()  # a shift, no interpolation
    holes = cutout(torch.ones(64, 1, 16, 16, 16), torch.Generator().manual_seed(0))
    assert 0.05 < (holes == -1).float().mean() < 0.126  # a cube of half the side: 1/8, less where it leaves
    ramp = torch.arange(16.0).expand(2, 1, 16, 16, 16)
    mirrored = flip(ramp, torch.Generator().manual_seed(0))
    assert all(torch.equal(m, ramp[0]) or torch.equal(m, ramp[0].flip(-1)) for m in mirrored)
    images = torch.rand(8, 1, 16, 16)  # 2D: the first two integer draws are the row and column shifts
    shifted = translation(images, torch.Generator().manual_seed(3))
    draws = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(-2, 3, (8,), generator=draws), torch.randint(-2, 3, (8,), generator=draws)
    for k in range(8):
        expected = torch.nn.functional.pad(images[k], (2, 2, 2, 2), value=-1.0)
        expected = expected[:, 2 - dy[k]: 18 - dy[k], 2 - dx[k]: 18 - dx[k]]
        assert torch.equal(shifted[k], expected)


def test_cohort_subjects_are_deterministic_distinct_and_marked(tmp_path):
    first, again, other = mni_subject(0), mni_subject(0), mni_subject(1)
    assert np.array_equal(first.array, again.array) and not np.array_equal(first.array, other.array)
    assert first.spacing == (2.0, 2.0, 2.0) and first.subject == "sub-00000"
    (path,) = write_mni_cohort(tmp_path, 1, first=HELD_OUT)
    header = nib.load(str(path)).header
    assert b"SYNTHETIC" in header["descrip"].tobytes() and header["intent_name"].tobytes().startswith(b"synthetic")


@pytest.fixture(scope="module")
def volume_folder(tmp_path_factory):
    """Eight cohort subjects as NIfTI files (RAS, 2 mm) and six held-out ones."""
    root = tmp_path_factory.mktemp("cohort")
    write_mni_cohort(root / "train", 8)
    write_mni_cohort(root / "held-out", 6, first=HELD_OUT)  # 6 x 16 central slices per plane > 64 features
    return root


def test_cubes_keep_proportions_and_subjects(volume_folder):
    data = load_slices(DataConfig(source=str(volume_folder / "train"), dims=3, resolution=SIDE), progress=False)
    assert data.images.shape == (8, 1, SIDE, SIDE, SIDE) and len(set(data.subjects)) == 8
    voxel = data.spacing[0]
    assert data.spacing == (voxel, voxel, voxel) and voxel == pytest.approx(117 * 2.0 / SIDE, rel=0.01)
    cube = data.images[0, 0]
    # Anterior-posterior (H, 234 mm) is the longest extent and fills the side; the superior (D, 190 mm) and
    # left-right (W, 198 mm) extents are centre-padded with background.
    assert cube[0].max() == -1 and cube[-1].max() == -1 and cube[:, :, 0].max() == -1 and cube[:, :, -1].max() == -1
    assert cube[:, 0].max() > -1 and (cube[SIDE // 2] > 0).float().mean() > 0.2  # the brain is inside
    planes = mid_planes(data.images[:2])
    assert planes.shape == (6, 1, SIDE, SIDE)
    assert plane_views(data.images[:2]).shape == (30, 1, SIDE, SIDE)


def test_3d_run_trains_samples_nifti_and_evaluates(volume_folder, tmp_path):
    run = tmp_path / "run"
    result = cli("train", "--data", volume_folder / "train", "--dims", "3", "--resolution", SIDE, "--steps", 2,
                 "--batch-size", 4, "--out", run, "--quiet", "--set", "model.generator_channels=8",
                 "--set", "model.discriminator_channels=8", "--set", "train.eval_every=0")
    assert result.returncode == 0, result.stderr
    assert "8 volumes of 32x32x32" in (run / "train.log").read_text()
    spec = json.loads((run / "data.json").read_text())
    assert spec["dims"] == 3 and len(spec["spacing"]) == 3
    result = cli("sample", "--run", run, "--n", 2, "--out", tmp_path / "samples")
    assert result.returncode == 0, result.stderr
    image = nib.load(str(tmp_path / "samples" / "sample-0000.nii.gz"))
    assert image.shape == (SIDE, SIDE, SIDE)
    assert np.allclose(image.header.get_zooms(), spec["spacing"][0], rtol=1e-4)
    assert b"SYNTHETIC" in image.header["descrip"].tobytes()
    volumes = medgan.load(run).sample(2, seed=1)  # the Python face: arrays in physical units, NIfTI by default
    assert volumes.shape == (2, SIDE, SIDE, SIDE) and len(volumes.spacing) == 3
    assert {"sample-0000.nii.gz", "sample-0001.nii.gz"} <= {path.name for path in volumes.save(tmp_path / "api")}
    result = cli("evaluate", "--fake", run, "--real", volume_folder / "held-out", "--out", tmp_path / "report",
                 "--quiet")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["dims"] == 3 and np.isfinite(metrics["volume_distribution"]["fid"])
    assert metrics["volume_distribution"]["n_synthetic"] == 6  # as many volumes sampled as real ones
    result = cli("sample", "--run", run, "--n", 3, "--out", tmp_path / "gated", "--privacy-filter")
    assert result.returncode == 0, result.stderr
    gate = json.loads((tmp_path / "gated" / "sampling.json").read_text())["privacy_filter"]
    assert gate["training_images"] == 8 and "3D SSIM" in gate["rule"] and gate["checked"] == 3
    assert len(list((tmp_path / "gated").glob("*.nii.gz"))) == 3 - gate["dropped"]
    before = listing(tmp_path)
    result = cli("sample", "--run", run, "--n", 3, "--out", tmp_path / "all-gated", "--privacy-filter",
                 "--privacy-threshold", "0.0001")  # every volume "copies" at this threshold: dropped in the end
    assert result.returncode == 2 and "nothing to write" in result.stderr and listing(tmp_path) == before
    result = cli("sample", "--run", run, "--n", 2, "--out", tmp_path / "png", "--format", "png")
    assert result.returncode == 2 and "nifti or npy" in result.stderr and listing(tmp_path) == before
    result = cli("sample", "--run", run, "--n", 2, "--out", tmp_path / "grid", "--interpolate", 4)
    assert result.returncode == 2 and "--interpolate" in result.stderr and listing(tmp_path) == before


def _error(capsys, *args):
    from medgan.cli import main

    return main([str(arg) for arg in args])


def test_bad_3d_inputs_are_one_line_errors(tmp_path, capsys, write_nifti):
    for name in ("flat", "small", "thick"):
        (tmp_path / name).mkdir()
    flat = tmp_path / "flat"
    write_nifti(flat / "slice.nii.gz", np.random.rand(40, 40).astype(np.float32))
    code = _error(capsys, "train", "--data", flat, "--dims", "3", "--out", tmp_path / "a", "--steps", 1)
    assert_one_error_line(code, capsys, "a 2D image", "--dims 3")
    small = tmp_path / "small"
    write_nifti(small / "thin.nii.gz", np.random.rand(40, 40, MIN_VOXELS - 1).astype(np.float32))
    with pytest.raises(DataError, match=f"at least {MIN_VOXELS} voxels"):
        load_cubes(DataConfig(source=str(small), dims=3, resolution=SIDE), progress=False)
    thick = tmp_path / "thick"
    write_nifti(thick / "thick.nii.gz", np.random.rand(40, 40, 20).astype(np.float32),
                affine=np.diag([1.0, 1.0, MAX_ANISOTROPY + 1, 1.0]))
    with pytest.raises(DataError, match="too anisotropic"):
        load_cubes(DataConfig(source=str(thick), dims=3, resolution=SIDE), progress=False)
    little = tmp_path / "little"
    little.mkdir()
    write_nifti(little / "little.nii.gz", np.random.rand(20, 20, 20).astype(np.float32))
    with pytest.raises(DataError, match="smaller than the 32-voxel cube"):
        load_cubes(DataConfig(source=str(little), dims=3, resolution=SIDE), progress=False)
    with pytest.raises(DataError, match="gives 2D slices"):
        load_cubes(DataConfig(source="mni152", dims=3, resolution=SIDE), progress=False)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("values, key", [
    ({"task": "paired", "data": {"degrade": "lowdose:0.25"}}, "data.dims"),
    ({"model": {"name": "resnet"}}, "model.name"),
    ({"data": {"rotate_degrees": 5.0}}, "data.rotate_degrees"),
    ({"unconditional": {"spectral": 1.0}}, "unconditional.spectral"),
])
def test_3d_refuses_what_it_does_not_do(values, key):
    from medgan.training.tasks import TASKS

    values = {**values, "data": {"dims": 3, **values.get("data", {})}}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config = resolve_config(values)
        TASKS.get(config.task).check_config(config)


def test_conditional_3d_run_with_attributes_samples_a_class(volume_folder, tmp_path):
    labels = tmp_path / "labels.csv"
    names = sorted(path.name for path in (volume_folder / "train").glob("*.nii.gz"))
    labels.write_text("file,label,age\n" + "".join(f"{name},{'ab'[i % 2]},{40 + i}\n" for i, name in enumerate(names)))
    run = medgan.train(volume_folder / "train", tmp_path / "run", task="conditional", labels=labels, steps=2,
                       resolution=SIDE, progress=False,
                       overrides={"data.dims": 3, "train.batch_size": 4, "train.eval_every": 0,
                                  "model.generator_channels": 8, "model.discriminator_channels": 8})
    spec = json.loads((run.path / "data.json").read_text())
    assert spec["class_names"] == ["a", "b"] and spec["attribute_names"] == ["age"] and spec["dims"] == 3
    volumes = run.load().sample(2, class_name="b", attributes={"age": 50.0})
    assert volumes.shape == (2, SIDE, SIDE, SIDE) and volumes.classes == ("b", "b")


def test_a_folder_of_many_volumes_is_not_prepared_into_2d_tiles_with_dims_3(volume_folder, tmp_path, monkeypatch):
    from medgan.data.cache import auto

    monkeypatch.setattr(auto, "AUTO_SUBJECTS", 4)  # 8 volumes count as "many" here
    monkeypatch.setenv("MEDGAN_CACHE", str(tmp_path / "cache"))
    data = auto.load_training_slices(DataConfig(source=str(volume_folder / "train"), dims=3, resolution=SIDE),
                                     progress=False)
    assert data.images.shape == (8, 1, SIDE, SIDE, SIDE) and not (tmp_path / "cache").exists()
