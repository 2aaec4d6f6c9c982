"""Membership-inference audit (``medgan audit``) and the export gate (``medgan sample --privacy-filter``).

One tiny GAN is trained on 3 "patients" (2 CT slices each, distinct lesion layouts) for 300 steps with no
augmentation: it memorizes them. The real attacks must then separate its training patients from unseen ones, and
must read near 0.5 on two cohorts of patients it never saw.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from helpers import assert_one_error_line
from medgan.cli import main
from medgan.evaluation.membership import (attack_summary, discriminator_scores, membership_auc,
                                          patient_bootstrap_auc, tpr_at_fpr)

SIDE = 32
TRAIN_STEPS = 300
DATA = {"data.modality": "ct", "data.window_level": "50", "data.window_width": "400", "data.min_foreground": "0",
        "data.crop_foreground": "false", "data.flip": "false", "data.rotate_degrees": "0", "data.scale": "0"}


def write_patient(path: Path, seed: int, slices: int = 2) -> Path:
    """A CT 'patient': a soft-tissue disc with 4 lesions of random place, size and density; slices differ a little."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[-1:1:SIDE * 1j, -1:1:SIDE * 1j]
    lesions = [(rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(0.1, 0.3), rng.uniform(80, 240))
               for _ in range(4)]
    volume = np.full((SIDE, SIDE, slices), -1000.0, np.float32)
    for z in range(slices):
        image = np.where(x**2 / 0.8 + y**2 / 0.9 < 0.8, 40.0, -1000.0)
        for cx, cy, radius, value in lesions:
            image[(x - cx) ** 2 + (y - cy) ** 2 < (radius * (1 + 0.1 * z)) ** 2] = value
        volume[:, :, z] = image + rng.normal(0, 3, image.shape)
    nib.save(nib.Nifti1Image(volume, np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
    return path


def cohort(folder: Path, seeds: range) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        write_patient(folder / f"patient-{seed:02d}.nii.gz", seed)
    return folder


@pytest.fixture(scope="module")
def overfitted(tmp_path_factory):
    """(run, members, unseen A, unseen B): a run that memorized 3 patients, and two cohorts of 8 others."""
    root = tmp_path_factory.mktemp("audit")
    members = cohort(root / "members", range(3))
    unseen_a, unseen_b = cohort(root / "unseen-a", range(10, 18)), cohort(root / "unseen-b", range(20, 28))
    settings = [item for key, value in DATA.items() for item in ("--set", f"{key}={value}")]
    argv = ["train", "--data", str(members), "--out", str(root / "run"), "--steps", str(TRAIN_STEPS),
            "--resolution", str(SIDE), "--batch-size", "6", "--set", "model.generator_channels=16",
            "--set", "model.discriminator_channels=16", "--set", "model.latent_dim=16", "--set", "augment.policy=[]",
            "--set", "train.eval_every=0", "--set", "train.ema=0", "--set", "train.sample_every=1000000",
            "--set", "train.checkpoint_every=1000000", *settings, "--quiet"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as conftest's one_thread, for the module: two OpenMP threads stall on 2 shared cores
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return root / "run", members, unseen_a, unseen_b


def audit(run: Path, members: Path, non_members: Path, out: Path) -> dict:
    argv = ["audit", "--run", str(run), "--members", str(members), "--non-members", str(non_members), "--out", str(out),
            "--samples", "200", "--bootstrap", "300", "--quiet"]
    assert main(argv) == 0
    return json.loads((out / "audit.json").read_text())


def test_the_audit_detects_a_run_that_memorized_its_patients(overfitted, tmp_path, capsys):
    run, members, unseen, _ = overfitted
    result = audit(run, members, unseen, tmp_path / "audit")
    assert result["members"] == {"images": 6, "patients": 3, "source": str(members)}
    assert result["non_members"]["patients"] == 8 and result["non_members"]["images"] == 16
    attacks = result["attacks"]
    assert set(attacks) == {"distance_ssim", "distance_features", "distance_pixels", "discriminator", "inversion"}
    assert attacks["inversion"]["inverted"]["members"] == 6 and attacks["inversion"]["inverted"]["non_members"] == 16
    for name in ("distance_ssim", "discriminator", "inversion"):
        assert attacks[name]["auc"] > 0.8 and attacks[name]["auc_ci_low"] > 0.5, (name, attacks[name])
        assert attacks[name]["leakage_detected"]
    assert attacks["discriminator"]["tpr_at_fpr"]["0.01"] is None  # 16 non-members cannot resolve 1% FPR
    assert "discriminator" in capsys.readouterr().out


def test_the_audit_reads_near_one_half_on_patients_the_run_never_saw(overfitted, tmp_path):
    run, _, unseen_a, unseen_b = overfitted
    result = audit(run, unseen_a, unseen_b, tmp_path / "control")
    for name, attack in result["attacks"].items():
        assert attack["auc_ci_low"] <= 0.5 <= attack["auc_ci_high"], (name, attack)
        assert abs(attack["auc"] - 0.5) < 0.3 and not attack["leakage_detected"], (name, attack)


def test_a_patient_on_both_sides_is_refused(overfitted, tmp_path, capsys):
    run, members, unseen, _ = overfitted
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "patient-00.nii.gz").write_bytes((members / "patient-00.nii.gz").read_bytes())
    (mixed / "patient-10.nii.gz").write_bytes((unseen / "patient-10.nii.gz").read_bytes())
    code = main(["audit", "--run", str(run), "--members", str(members), "--non-members", str(mixed),
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert_one_error_line(code, capsys, "share 1 patient(s) (patient-00)", str(mixed))
    assert not (tmp_path / "out" / "audit.json").exists()


def test_evaluate_adds_the_audit_to_metrics_and_report(overfitted, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGAN_CACHE_DIR", str(tmp_path / "cache"))
    run, members, unseen, _ = overfitted
    out = tmp_path / "report"
    assert main(["evaluate", "--real", str(unseen), "--fake", str(run), "--train", str(members), "--out", str(out),
                 "--max-images", "40", "--members", str(members), "--non-members", str(unseen), "--quiet"]) == 0
    section = json.loads((out / "metrics.json").read_text())["membership_inference"]
    assert section["synthetic_images"] == 40 and section["attacks"]["discriminator"]["auc"] > 0.8
    assert "Membership-inference audit" in (out / "report.html").read_text()


# The export gate ---------------------------------------------------------------------------------------------


def test_the_privacy_filter_replaces_near_copies_of_training_images(overfitted, tmp_path, capsys):
    """A run whose generator reproduces its training images: the training folder is made of the very images the
    generator draws at seed 0 (written back in HU through the run's CT window, so they read back exactly)."""
    from medgan.data import load_slices
    from medgan.data.slicing import upright_view
    from medgan.metrics.features import extract_features, get_extractor
    from medgan.metrics.memorization import TrainingIndex
    from medgan.inference.sampling import generate, load_generator

    run, _, _, _ = overfitted
    copy = tmp_path / "run"
    copy.mkdir()
    for path in run.rglob("*"):
        if path.is_file():
            (copy / path.relative_to(run)).parent.mkdir(parents=True, exist_ok=True)
            (copy / path.relative_to(run)).write_bytes(path.read_bytes())
    loaded = load_generator(copy)
    drawn, mapping = generate(copy, 8, seed=0, loaded=loaded)
    training = Path(loaded.config.data.source)
    original = {path: path.read_bytes() for path in training.iterdir()}
    try:
        for path in original:
            path.unlink()
        code = main(["sample", "--run", str(copy), "--n", "2", "--out", str(tmp_path / "none"), "--privacy-filter"])
        assert_one_error_line(code, capsys, "--privacy-filter compares with the run's training data", str(training))
        volume = np.zeros((SIDE, SIDE, 8), np.float32)
        upright_view(volume, 2)[:] = mapping.to_physical(drawn[:, 0].numpy())  # slices read back as drawn
        nib.save(nib.Nifti1Image(volume, np.diag([2.0, 2.0, 2.0, 1.0])), str(training / "copies.nii.gz"))
        for flag, out in ((False, tmp_path / "plain"), (True, tmp_path / "filtered")):
            argv = ["sample", "--run", str(copy), "--n", "8", "--seed", "0", "--format", "npy", "--out", str(out)]
            assert main(argv + (["--privacy-filter"] if flag else [])) == 0
        printed = capsys.readouterr().out
        train = load_slices(loaded.config.data, progress=False).images
    finally:
        for path in training.iterdir():
            path.unlink()
        for path, content in original.items():
            path.write_bytes(content)
    record = json.loads((tmp_path / "filtered" / "sampling.json").read_text())["privacy_filter"]
    assert json.loads((tmp_path / "plain" / "sampling.json").read_text())["privacy_filter"] == {"enabled": False}
    assert record["enabled"] and record["threshold"] == 0.95 and record["training_images"] == 8
    assert record["near_copies"] == 8 and record["replaced"] + record["dropped"] == 8
    assert f"{record['replaced']} replaced, {record['dropped']} dropped" in printed
    kept = torch.from_numpy(np.load(tmp_path / "filtered" / "samples.npy"))
    kept = torch.from_numpy(mapping.to_unit(kept.numpy())).float()[:, None]
    assert len(kept) == 8 - record["dropped"]
    extractor = get_extractor()
    if len(kept):
        nearest = TrainingIndex(train, extract_features(train, extractor)).nearest(kept, extract_features(kept, extractor))
        assert nearest.ssim.max() < 0.95, nearest.ssim


# Statistics against sklearn-free formulas ---------------------------------------------------------------------


def test_auc_is_the_probability_that_a_member_outscores_a_non_member():
    rng = np.random.default_rng(0)
    members, non_members = rng.normal(0.5, 1, 40), rng.normal(0, 1, 50)
    members[:5] = non_members[:5]  # ties count one half
    pairs = (members[:, None] > non_members[None]).mean() + 0.5 * (members[:, None] == non_members[None]).mean()
    assert membership_auc(members, non_members) == pytest.approx(pairs, abs=1e-12)
    assert membership_auc(np.arange(5.0) + 10, np.arange(5.0)) == 1.0
    assert membership_auc(np.ones(3), np.ones(4)) == 0.5


def test_tpr_at_fpr_takes_the_roc_point_at_or_below_the_target():
    non_members = np.arange(200, dtype=float)  # 0..199
    members = np.array([197.5, 198.5, 199.5, 250.0, 10.0])
    # 1% of 200 = 2 false positives allowed: threshold 197 (198 and 199 above it) -> 4 of 5 members above
    assert tpr_at_fpr(members, non_members, 0.01) == pytest.approx(4 / 5)
    assert tpr_at_fpr(members, non_members, 0.0) == pytest.approx(2 / 5)  # above every non-member: 199.5, 250
    assert tpr_at_fpr(members, non_members, 0.001) == pytest.approx(2 / 5)  # 0.2 false positives -> none allowed
    summary = attack_summary(members, list("abcde"), non_members, [str(i % 7) for i in range(200)], rounds=50)
    assert summary["tpr_at_fpr"] == {"0.01": pytest.approx(4 / 5), "0.001": None}  # 200 < 1000 non-members


def test_the_bootstrap_resamples_patients_not_images():
    """Patients differ (an offset per patient): resampling patients gives a far wider interval than treating
    every image as independent, and it contains the AUC."""
    rng = np.random.default_rng(1)
    offsets = np.repeat([1.0, -1.0, 0.5, -0.5], 100)
    members, non_members = rng.normal(0, 1, 400) + offsets + 0.2, rng.normal(0, 1, 400) + offsets
    patients = [f"p{i // 100}" for i in range(400)]
    images = [str(i) for i in range(400)]
    low, high = patient_bootstrap_auc(members, patients, non_members, [f"q{i // 100}" for i in range(400)], rounds=300)
    low_images, high_images = patient_bootstrap_auc(members, images, non_members, images, rounds=300)
    assert low <= membership_auc(members, non_members) <= high
    assert high - low > 2.5 * (high_images - low_images) > 0


def test_discriminator_scores_do_not_depend_on_the_batch_order():
    """Unconditional D without minibatch statistics: shuffled batches give each image its own logit."""
    from medgan.config import ModelConfig
    from medgan.networks import build_discriminator

    torch.manual_seed(0)
    discriminator = build_discriminator(ModelConfig(discriminator_channels=4, minibatch_std=False), 32, 1)
    images = torch.rand(10, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        direct = discriminator.eval()(images).double().numpy()
    scores = discriminator_scores(discriminator, images, None, None, 0, seed=3, batch_size=4)
    np.testing.assert_allclose(scores, direct, rtol=1e-5, atol=1e-5)
