"""The Python API (``medgan.train``, ``medgan.load``, ``medgan.evaluate``): the CLI's results and defaults, arrays in
physical units with their geometry, the zoo by name, and no global state touched."""

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

import medgan
from medgan.cli import main
from medgan.errors import CheckpointError, ConfigError

from helpers import TINY
from test_translate import paired_run  # noqa: F401  (module fixture: a 3-step paired run on HU data)

TINY_OVERRIDES = {"model.generator_channels": 4, "model.discriminator_channels": 4, "model.latent_dim": 8,
                  "train.batch_size": 8, "train.sample_every": 2, "train.checkpoint_every": 2, "train.ema_start": 1}


def test_import_is_light_and_the_api_is_lazy():
    code = ("import sys, medgan; assert 'torch' not in sys.modules, 'import medgan loaded torch'; "
            "assert 'brain-t1' in medgan.zoo.names() and 'torch' not in sys.modules, 'listing the zoo loaded torch'; "
            "assert callable(medgan.load) and 'torch' in sys.modules; print(medgan.__version__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == medgan.__version__
    with pytest.raises(AttributeError):
        medgan.no_such_thing  # noqa: B018


def test_train_matches_the_cli_and_scores_best(tiny_brain, tmp_path):
    run = medgan.train(tiny_brain, tmp_path / "api", steps=2, resolution=32, overrides=TINY_OVERRIDES,
                       progress=False)
    assert main(["train", "--data", str(tiny_brain), "--out", str(tmp_path / "cli"), "--steps", "2", *TINY]) == 0
    # The same recipe, defaults and config as the CLI (TINY sets log_every and the quiet flag besides these).
    cli_config = medgan.load(tmp_path / "cli").inference.config
    assert run.config.model == cli_config.model and run.config.optim == cli_config.optim
    assert run.config.data == cli_config.data and run.config.loss == cli_config.loss
    assert run.result.steps == 2 and run.path == tmp_path / "api"
    assert "steps" in run.summary()
    assert isinstance(run.load(), medgan.Model)


def test_train_scores_best_like_the_cli(monkeypatch, tmp_path):
    """The loop's own default has no scorer (best.pt = last); the API passes the CLI's FID scorer."""
    import medgan.training.loop
    from medgan.metrics import training_score

    calls = []
    monkeypatch.setattr(medgan.training.loop, "train", lambda config, out, **kwargs: calls.append(kwargs))
    medgan.train("mni152", tmp_path / "run", steps=1, progress=False)
    assert calls and calls[0]["scorer"] is training_score


def test_train_rejects_steps_and_minutes(tmp_path):
    with pytest.raises(ConfigError, match="steps or minutes"):
        medgan.train("mni152", tmp_path / "x", steps=2, minutes=1.0)
    assert not (tmp_path / "x").exists()


def test_sample_in_physical_units_with_geometry_and_saves_marked_synthetic(tiny_run, tmp_path):
    model = medgan.load(tiny_run)
    assert model.kind == "noise-to-image" and model.resolution == 32
    images = model.sample(5, seed=3)
    assert images.shape == (5, 32, 32) and len(images) == 5 and images.array.dtype == np.float32
    assert images.synthetic and images.unit == model.inference.mapping.unit
    assert images.spacing == tuple(model.inference.spacing)
    # Physical units: the unit tensor mapped back by the run's mapping (not [-1, 1]).
    unit = model.inference.generate(5, seed=3)
    np.testing.assert_allclose(images.array, model.inference.mapping.to_physical(unit.numpy())[:, 0], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(images), model.sample(5, seed=3).array)  # same seed, same images
    # Like medgan sample: the same images, marked synthetic, with a data card.
    written = images.save(tmp_path / "api", format="nifti")
    assert main(["sample", "--run", str(tiny_run), "--n", "5", "--seed", "3", "--format", "nifti",
                 "--out", str(tmp_path / "cli")]) == 0
    api_volume = nib.load(str(tmp_path / "api" / "samples.nii.gz"))
    cli_volume = nib.load(str(tmp_path / "cli" / "samples.nii.gz"))
    np.testing.assert_array_equal(api_volume.get_fdata(), cli_volume.get_fdata())
    assert b"synthetic" in bytes(api_volume.header["descrip"]).lower()
    card = json.loads((tmp_path / "api" / "DATA_CARD.json").read_text())
    assert card["export"]["command"] == "medgan.Model.sample" and any(p.name == "DATA_CARD.json" for p in written)
    with pytest.raises(ConfigError, match="translates images|generates images"):
        model.translate(np.zeros((32, 32), np.float32))
    with pytest.raises(ConfigError):
        model.sample(0)


def test_translate_array_path_and_files_keep_units_and_geometry(paired_run, tmp_path):  # noqa: F811
    model = medgan.load(paired_run)
    assert model.kind == "image-to-image"
    hu = np.random.default_rng(0).normal(40, 60, (32, 32, 3)).astype(np.float32)
    affine = np.array([[0.7, 0, 0, -10], [0, 0.7, 0, 5], [0, 0, 2.5, 30], [0, 0, 0, 1]])
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(hu, affine), str(path))
    from_path = model.translate(path)
    assert from_path.shape == hu.shape and from_path.unit == "HU" and not from_path.synthetic
    np.testing.assert_allclose(from_path.affine, affine)
    assert from_path.spacing == pytest.approx((0.7, 0.7, 2.5))
    # An array in HU gives the same values as the file (same slicing along the run's axis).
    np.testing.assert_allclose(model.translate(hu, spacing=(0.7, 0.7, 2.5)).array, from_path.array, atol=1e-4)
    # Values outside the shared CT window pass through (air stays air).
    assert from_path.array[hu < -160].tolist() == pytest.approx(hu[hu < -160].tolist())
    saved = from_path.save(tmp_path / "saved", format="nifti")
    image = nib.load(str(saved[0]))
    np.testing.assert_allclose(image.affine, affine)
    np.testing.assert_allclose(image.get_fdata(), from_path.array, atol=1e-3)
    # translate_files is medgan translate: identical output file.
    files = model.translate_files(path, tmp_path / "api")
    assert main(["translate", "--run", str(paired_run), "--input", str(path), "--out", str(tmp_path / "cli"),
                 "--quiet"]) == 0
    api_out = nib.load(str(next(p for p in files if p.name.endswith(".nii.gz"))))
    np.testing.assert_array_equal(api_out.get_fdata(), nib.load(str(tmp_path / "cli" / files[0].name)).get_fdata())
    with pytest.raises(ConfigError, match="use .translate"):
        model.sample(2)
    default = from_path.save(tmp_path / "default")  # a translated image saves as NIfTI by default
    assert default[0].name == "translated.nii.gz"
    with pytest.raises(ConfigError, match="nifti or npy"):
        from_path.save(tmp_path / "png", format="png")


def test_load_zoo_names_and_errors(tmp_path, monkeypatch):
    from medgan import zoo

    with pytest.raises(ConfigError, match="no run, bundle or zoo model .no-such-model."):
        medgan.load("no-such-model")
    with pytest.raises(CheckpointError):
        medgan.load(tmp_path / "missing-run")
    # A zoo name resolves to its bundle folder; an existing path of the same name wins.
    for entry in zoo.entries():
        assert zoo.resolve(entry.name) == entry.path
        monkeypatch.chdir(tmp_path)
        (tmp_path / entry.name).mkdir()
        assert zoo.resolve(entry.name).resolve() == tmp_path / entry.name
        break


def test_evaluate_returns_the_cli_metrics(tiny_brain, tiny_run, tmp_path):
    metrics = medgan.evaluate(tiny_brain, tiny_run, out=tmp_path / "report", max_images=16, progress=False)
    written = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["distribution.kid_mean"] == written["distribution"]["kid_mean"] > 0
    assert set(metrics) == set(written) and metrics.out == tmp_path / "report"
    assert metrics.headline["distribution.kid_mean"] == metrics["distribution.kid_mean"] and "KID" in metrics.table
    # Without out, nothing stays on disk.
    before = sorted(tmp_path.iterdir())
    quiet = medgan.evaluate(tiny_brain, tiny_run, max_images=16, progress=False)
    assert quiet.out is None and sorted(tmp_path.iterdir()) == before
    with pytest.raises(KeyError):
        metrics["distribution.no_such_metric"]


def test_the_api_leaves_process_state_alone(tiny_run):
    threads, state = torch.get_num_threads(), torch.random.get_rng_state()
    medgan.load(tiny_run).sample(2)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), state)


def test_a_translated_volume_keeps_its_orientation_when_translated_again(paired_run, tmp_path):  # noqa: F811
    model = medgan.load(paired_run, which="latest")
    hu = np.random.default_rng(2).normal(40, 60, (3, 32, 32)).astype(np.float32)
    permuted = np.array([[0, 0, 2.5, 0], [0.7, 0, 0, 0], [0, -0.7, 0, 0], [0, 0, 0, 1]])  # slices on axis 0
    nib.save(nib.Nifti1Image(hu, permuted), str(tmp_path / "p.nii.gz"))
    once = model.translate(tmp_path / "p.nii.gz")
    nib.save(nib.Nifti1Image(once.array, once.affine), str(tmp_path / "once.nii.gz"))
    np.testing.assert_allclose(model.translate(once).array, model.translate(tmp_path / "once.nii.gz").array,
                               atol=1e-4)
    assert model.which == "latest"


def test_images_compare_by_identity_not_by_array(tiny_run):
    images = medgan.load(tiny_run).sample(2)
    assert images == images and images != medgan.load(tiny_run).sample(2)


def test_train_checks_a_config_file_like_the_cli(tmp_path):
    """The same assembly of values as ``medgan train``: a bad value in the file is refused even where an argument
    replaces it, naming the file."""
    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  steps: ten\n")
    with pytest.raises(ConfigError, match="train.steps") as refused:
        medgan.train("mni152", tmp_path / "run", steps=2, config=config, progress=False)
    assert refused.value.path is not None and "bad.yaml" in str(refused.value.path)
    assert not (tmp_path / "run").exists()
