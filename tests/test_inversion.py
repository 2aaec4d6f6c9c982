"""Latent inversion (``medgan invert``, ``Model.invert``), the latent encoder (``medgan train-encoder``) and the
inversion membership attack of ``medgan audit``, on the session's tiny run (32 px, 8-d latent)."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import assert_one_error_line, cli, listing, write_tiny_brain

from medgan.inference.inversion import DiscriminatorFeatures, InversionConfig, invert, load_discriminator
from medgan.inference.sampling import load_generator
from medgan.metrics.image import ssim

FAST = InversionConfig(steps=120, restarts=3)


@pytest.fixture(scope="module")
def model(tiny_run):
    return load_generator(tiny_run)


def test_inversion_recovers_the_generators_own_sample(model, tiny_run, one_thread):
    """G(z*) for a fixed z* is reproduced (SSIM > 0.9), far better than a random latent does."""
    target = model.generate(2, seed=11)
    features = DiscriminatorFeatures(load_discriminator(tiny_run)[0])
    result = invert(model, target, FAST, features=features)
    recovered = ssim(result.images, target)
    random = ssim(model.generate(2, seed=12), target)
    assert bool((recovered > 0.9).all()), recovered
    assert bool((recovered - random > 0.1).all()), (recovered, random)
    assert result.latents.shape == (2, model.latent_dim) and result.feature_term
    assert result.ssim_trace.shape == (FAST.steps + 1, 2)


def test_layer_wise_refinement_lowers_the_objective_and_keeps_the_latent(model, tiny_run, one_thread):
    """Targets G cannot make (its samples mirrored and with a bright square): refining the 8 x 8 feature maps
    never raises the objective, comes closer than the latent alone, and leaves the latent search as it was."""
    targets = model.generate(3, seed=21).flip(-1)
    targets[:, :, 10:16, 10:16] = 0.9
    features = DiscriminatorFeatures(load_discriminator(tiny_run)[0])
    plain = invert(model, targets, InversionConfig(steps=40, restarts=2), features=features)
    refined = invert(model, targets, InversionConfig(steps=40, restarts=2, layer_steps=40), features=features)
    assert torch.equal(plain.latents, refined.latents) and refined.layer_steps == 40 and plain.layer_steps == 0
    assert bool((refined.objective <= plain.objective + 1e-5).all()), (refined.objective, plain.objective)
    gain = ssim(refined.images, targets) - ssim(plain.images, targets)
    assert float(gain.mean()) > 0.02, gain
    assert not torch.allclose(refined.images, model.forward(refined.latents))  # no longer G(z)


def test_invert_writes_reconstruction_latent_difference_and_scores(tiny_run, tiny_brain, tmp_path, one_thread):
    out = tmp_path / "out"
    done = cli("invert", "--run", tiny_run, "--input", tiny_brain, "--out", out, "--steps", "20", "--restarts", "2",
               "--quiet")
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "inversion.json").read_text())
    stem = f"brain_slice{record['slice']}"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["DATA_CARD.json", "inversion.json", f"{stem}_difference.nii.gz", f"{stem}_latent.npy",
         f"{stem}_preview.png", f"{stem}_reconstruction.nii.gz"])
    assert 0 <= record["ssim"] <= 1 and np.isfinite(record["psnr_db"]) and record["unit"] == "a.u."
    assert record["layer_wise"] is None and record["search"]["layer_steps"] == 0
    reconstruction = nib.load(str(out / f"{stem}_reconstruction.nii.gz"))
    difference = nib.load(str(out / f"{stem}_difference.nii.gz"))
    assert reconstruction.shape == difference.shape == (32, 32, 1)
    assert np.allclose(reconstruction.header.get_zooms()[:2], record["spacing_mm"])
    assert np.allclose(reconstruction.affine, difference.affine)
    assert b"SYNTHETIC" in reconstruction.header["descrip"].tobytes()
    assert np.load(out / f"{stem}_latent.npy").shape == (8,)
    physical = np.asarray(difference.dataobj)
    assert np.isclose(np.abs(physical).mean(), record["mean_absolute_difference"], rtol=1e-4)


def test_invert_picture_and_array_inputs_keep_their_family(model, tmp_path, one_thread):
    from PIL import Image

    picture = np.asarray(model.mapping.to_physical(model.generate(1, seed=3)[0, 0].numpy()))
    png = tmp_path / "slice.png"
    Image.fromarray(np.clip(picture, 0, 65535).astype(np.uint16)).save(png)
    np.save(tmp_path / "slice.npy", picture.astype(np.float32))
    for source, written, layer in ((png, "slice_reconstruction_0000.png", "0"),
                                   (tmp_path / "slice.npy", "slice_reconstruction.npy", "3")):
        out = tmp_path / source.suffix[1:]
        done = cli("invert", "--run", model.checkpoint.parent.parent, "--input", source, "--out", out, "--steps", "5",
                   "--restarts", "1", "--layer-steps", layer, "--quiet")
        assert done.returncode == 0, done.stderr
        assert (json.loads((out / "inversion.json").read_text())["layer_wise"] is not None) == (layer != "0")
        assert (out / written).is_file() and (out / "slice_difference.npy").is_file()
        assert np.load(out / "slice_difference.npy").shape == (32, 32)
    assert json.loads((tmp_path / "png" / "mapping.json").read_text())["synthetic"] is True


def test_model_invert_matches_the_python_face(tiny_run, model, tmp_path, one_thread):
    import medgan

    loaded = medgan.load(tiny_run)
    array = np.asarray(model.mapping.to_physical(model.generate(1, seed=4)[0, 0].numpy()), dtype=np.float32)
    found = loaded.invert(array, steps=60, restarts=2)
    assert found.reconstruction.array.shape == (1, 32, 32) and found.reconstruction.synthetic
    assert not found.target.synthetic and found.difference.shape == (32, 32)
    assert 0 <= found.ssim <= 1 and found.latent.shape == (8,)
    assert np.allclose(found.reconstruction.array[0] - found.target.array[0], found.difference, atol=1e-3)
    written = found.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "inversion.json") in written
    assert json.loads((tmp_path / "saved" / "inversion.json").read_text())["ssim"] == pytest.approx(found.ssim)


def test_invert_refuses_bad_inputs_in_one_line(tiny_run, tiny_brain, tmp_path, capsys):
    ct = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.where(np.arange(32 * 32 * 4).reshape(32, 32, 4) % 7, 40.0, -1000.0).astype(
        np.float32), np.eye(4)), str(ct))
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a nifti")
    out = tmp_path / "out"
    cases = [
        (["--input", ct], "this image is CT"),
        (["--input", broken], "broken.nii.gz"),
        (["--input", tiny_brain, "--class", "lesion"], "not class-conditional"),
        (["--input", tiny_brain, "--slice", "99"], "--slice"),
        (["--input", tiny_brain, "--steps", "-1"], "--steps"),
        (["--input", tiny_brain, "--layer-steps", "-1"], "--layer-steps"),
    ]
    from medgan.cli import main

    for extra, fragment in cases:
        code = main(["invert", "--run", str(tiny_run), "--out", str(out), "--quiet", *map(str, extra)])
        assert_one_error_line(code, capsys, fragment)
        assert not out.exists()


def test_invert_refuses_a_run_without_a_noise_generator(one_step_paired_run, tiny_brain, tmp_path, capsys):
    from medgan.cli import main

    run = one_step_paired_run
    code = main(["invert", "--run", str(run), "--input", str(tiny_brain), "--out", str(tmp_path / "out")])
    assert_one_error_line(code, capsys, "does not generate images from noise")
    assert not (tmp_path / "out").exists()


def test_encoder_round_trip_starts_closer_than_random(model, tmp_path, one_thread):
    from medgan.inference.encoder import load_encoder, save_encoder, train_encoder

    encoder = train_encoder(model, steps=150, batch_size=32, seed=0)
    written = save_encoder(encoder, tmp_path / "encoder.safetensors")
    assert [p.name for p in written] == ["encoder.safetensors", "encoder.json"]
    loaded = load_encoder(tmp_path / "encoder", model)
    latents = torch.randn(16, model.latent_dim, generator=torch.Generator().manual_seed(7))
    images = model.forward(latents)
    guess = loaded.encode(images)
    assert torch.allclose(guess, encoder.encode(images), atol=1e-6)
    random = torch.randn(16, model.latent_dim, generator=torch.Generator().manual_seed(8))
    assert ssim(model.forward(guess), images).mean() > ssim(model.forward(random), images).mean()
    alone = invert(model, images[:4], InversionConfig(steps=0, restarts=1), starts=guess[:4])
    assert torch.allclose(alone.latents, guess[:4])


def test_train_encoder_cli_and_invert_with_it(tiny_run, tiny_brain, tmp_path, capsys, one_thread):
    from medgan.cli import main

    path = tmp_path / "enc.safetensors"
    assert main(["train-encoder", "--run", str(tiny_run), "--out", str(path), "--steps", "5", "--quiet"]) == 0
    out = tmp_path / "out"
    assert main(["invert", "--run", str(tiny_run), "--input", str(tiny_brain), "--out", str(out), "--steps", "0",
                 "--encoder", str(path), "--quiet"]) == 0
    assert json.loads((out / "inversion.json").read_text())["start"] == "encoder"
    capsys.readouterr()
    (tmp_path / "enc.json").write_text("{}")
    code = main(["invert", "--run", str(tiny_run), "--input", str(tiny_brain), "--out", str(tmp_path / "o2"),
                 "--encoder", str(path)])
    assert_one_error_line(code, capsys, "not a usable medgan encoder")


def test_audit_lists_the_inversion_attack(tiny_run, tiny_brain, tmp_path, one_thread):
    others = write_tiny_brain(tmp_path / "other.nii.gz", seed=3)
    before = listing(tmp_path)
    done = cli("audit", "--run", tiny_run, "--members", tiny_brain, "--non-members", others, "--samples", "8",
               "--bootstrap", "20", "--inversion-images", "4", "--inversion-steps", "5", "--out", tmp_path / "audit",
               "--quiet")
    assert done.returncode == 0, done.stderr
    assert "inversion" in done.stdout
    attack = json.loads((tmp_path / "audit" / "audit.json").read_text())["attacks"]["inversion"]
    assert 0.0 <= attack["auc"] <= 1.0 and attack["auc_ci_low"] <= attack["auc_ci_high"]
    assert attack["inverted"]["members"] == 4 and attack["inverted"]["steps"] == 5
    assert listing(tmp_path) == sorted([*before, "audit", "audit/audit.json"])
    shutil.rmtree(tmp_path / "audit")


def test_conditional_inversion_searches_or_takes_the_class(tmp_path, capsys, one_thread):
    """A conditional run: every class is tried when none is given (the best kept), the given one otherwise; an
    unknown class is a one-line error."""
    from helpers import TINY
    from test_conditional import write_labelled_pngs

    from medgan.cli import main

    data = write_labelled_pngs(tmp_path / "shapes")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--labels", str(data / "labels.csv"), "--task", "conditional",
                 "--out", str(run), "--steps", "2", *TINY]) == 0
    model = load_generator(run)
    target = model.generate(1, seed=5, class_name="square")
    searched = invert(model, target, FAST)
    assert searched.labels is not None and float(ssim(searched.images, target)[0]) > 0.9
    given = [invert(model, target, FAST, labels=torch.tensor([index])) for index in range(2)]
    assert all(int(result.labels[0]) == index for index, result in enumerate(given))
    assert float(searched.objective[0]) <= min(float(result.objective[0]) for result in given) + 0.02
    capsys.readouterr()
    code = main(["invert", "--run", str(run), "--input", str(data / "img00.png"), "--out", str(tmp_path / "o"),
                 "--class", "triangle"])
    assert_one_error_line(code, capsys, "unknown class 'triangle'")


def test_cli_and_python_share_the_defaults():
    import inspect

    import medgan
    from medgan.cli import latent
    from medgan.cli.parser import build_parser
    from medgan.evaluation import membership
    from medgan.inference.encoder import train_encoder

    assert (latent.DEFAULT_STEPS, latent.DEFAULT_RESTARTS) == (InversionConfig().steps, InversionConfig().restarts)
    assert build_parser().parse_args(["invert", "--run", "r", "--input", "i", "--out", "o"]).layer_steps == \
        InversionConfig().layer_steps == inspect.signature(medgan.Model.invert).parameters["layer_steps"].default
    assert latent.DEFAULT_ENCODER_STEPS == inspect.signature(train_encoder).parameters["steps"].default
    audit = build_parser().parse_args(["audit", "--run", "r", "--members", "m", "--non-members", "n"])
    assert (audit.inversion_images, audit.inversion_steps) == (membership.INVERSION_IMAGES, membership.INVERSION_STEPS)
