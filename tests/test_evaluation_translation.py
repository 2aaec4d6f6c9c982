"""Evaluation of modality translation on true pairs: tissue MAE and Dice against hand-computed values, the
identity baseline's least-squares fit, per-organ errors of contrast phases on held-out phantom patients, and an
unpaired run evaluated end to end through the CLI (with a paired run compared in the same table)."""

import json

import numpy as np
import pytest
import torch

from helpers import assert_one_error_line
from medgan.cli import main
from medgan.config import from_dict
from medgan.training.tasks import recipe
from medgan.data import IntensityMapping, SliceSet
from medgan.data.phantom import LABEL
from medgan.evaluation.tissue import anatomy_measures, dice, fit_linear, organ_errors, tissue_masks
from medgan.evaluation.translation_data import held_out_pairs_config, load_pairs
from medgan.evaluation.translation_eval import _linear, _moments, evaluate_translation, format_translation_table
from medgan.training.loop import train

WIDE = IntensityMapping("ct_window", -1000.0, 1500.0, "HU")
ABDOMEN = IntensityMapping("ct_window", -150.0, 250.0, "HU")


# ---------------------------------------------------------------------------------------------------------------
# measures on a tiny known example


def test_tissue_mae_and_dice_match_hand_computed_values():
    # One 4 x 4 slice: a row each of air, fat, soft tissue and bone in the truth.
    target = np.array([[[-1000.0] * 4, [-100.0] * 4, [40.0] * 4, [700.0] * 4]])
    output = target.copy()
    output[0, 0, 0] = -900.0  # air off by 100 HU in one of 4 pixels -> air MAE 25
    output[0, 2, :2] = 240.0  # two soft-tissue pixels read as bone (200 HU too high) -> soft MAE 100
    output[0, 3, 3] = 100.0  # one bone pixel read as soft tissue (600 too low) -> bone MAE 150
    tissues, rule, notes = tissue_masks(target, WIDE)
    assert "HU thresholds" in rule and not notes
    values, why = anatomy_measures(output, target, WIDE, tissues)
    assert not why
    assert values["tissue_mae.air"][0] == pytest.approx(25.0)
    assert values["tissue_mae.fat"][0] == pytest.approx(0.0)
    assert values["tissue_mae.soft tissue"][0] == pytest.approx(100.0)
    assert values["tissue_mae.bone"][0] == pytest.approx(150.0)
    # bone: truth 4 pixels, output 3 + 2 = 5 pixels, overlap 3 -> 2 * 3 / 9
    assert values["dice_bone"][0] == pytest.approx(6.0 / 9.0)
    # body (> -500 HU, holes filled): truth rows 1-3 (12 px); output the same plus nothing new -> 1
    assert values["dice_body"][0] == pytest.approx(1.0)
    assert np.isnan(dice(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2), bool)))[0]


def test_tissue_classes_outside_the_window_are_left_out_and_phantom_labels_win():
    target = np.full((1, 4, 4), 40.0)
    tissues, _, notes = tissue_masks(target, ABDOMEN)  # [-150, 250] HU: no air below -500
    assert "air" not in tissues and any("'air'" in note for note in notes)
    labels = np.full((1, 4, 4), LABEL["liver"])
    labels[0, 0] = LABEL["gas"]
    labels[0, 1, :2] = LABEL["bone-cortical"]
    from_labels, rule, _ = tissue_masks(target, ABDOMEN, labels)
    assert "label maps" in rule
    assert [int(from_labels[name].sum()) for name in ("air", "fat", "soft tissue", "bone")] == [4, 0, 10, 2]


def test_organ_errors_are_bias_and_mae_inside_each_label():
    labels = np.zeros((1, 4, 4), np.int64)
    labels[0, 0] = LABEL["liver"]
    labels[0, 1, :2] = LABEL["aorta"]
    target = np.full((1, 4, 4), 100.0)
    output = target.copy()
    output[0, 0] = [90.0, 90.0, 130.0, 110.0]  # liver: errors -10, -10, +30, +10 -> bias 5, MAE 15
    output[0, 1, :2] = 40.0  # aorta: -60 -> bias -60, MAE 60
    values = organ_errors(output, target, labels)
    assert values["organ.liver.bias"][0] == pytest.approx(5.0)
    assert values["organ.liver.mae"][0] == pytest.approx(15.0)
    assert values["organ.aorta.bias"][0] == pytest.approx(-60.0)
    assert np.isnan(values["organ.kidney.mae"][0])  # no kidney on this slice


def test_identity_baseline_recovers_a_known_linear_map():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(6, 1, 16, 16, generator=generator) * 2 - 1
    body = torch.zeros_like(inputs, dtype=torch.bool)
    body[..., 3:13, 3:13] = True
    hu = torch.where(body, -300.0 * inputs + 80.0, torch.tensor(-1000.0))  # HU = -300 x input + 80 in the body
    truth = WIDE.to_unit(hu)
    mr = IntensityMapping("percentile", 0.0, 500.0, "a.u.")
    pairs = SliceSet(truth, WIDE, (1.0, 1.0), [f"s{i // 2}" for i in range(6)], [f"p{i}" for i in range(6)],
                     aligned={"input": inputs}, mappings={"input": mr})
    slope, intercept = fit_linear(inputs.numpy(), hu.numpy(), body.numpy())
    assert (slope, intercept) == (pytest.approx(-300.0, abs=1e-3), pytest.approx(80.0, abs=1e-3))
    predicted, fit = _linear(pairs, pairs, WIDE)  # body from the truth (> -500 HU), as in the evaluation
    assert fit["slope_per_unit"] == pytest.approx(-300.0, abs=1e-2) and fit["pixels"] > 0
    assert np.abs(predicted - hu[:, 0].numpy())[body[:, 0].numpy()].max() < 0.5


# ---------------------------------------------------------------------------------------------------------------
# contrast phases on held-out phantom patients


def _ct_domains(count=16):
    grid = torch.stack(torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")).float()
    disk = ((grid - 16) ** 2).sum(0) < 120
    images = torch.where(disk, 0.3, -1.0).expand(count, 1, 32, 32).clone()
    other = SliceSet(images * 0.9, ABDOMEN, (1.0, 1.0), [f"a{i % 4}" for i in range(count)],
                     [f"a{i}" for i in range(count)])
    return SliceSet(images, ABDOMEN, (1.0, 1.0), [f"b{i % 4}" for i in range(count)],
                    [f"b{i}" for i in range(count)], other=other)


def test_phase_translation_reports_per_organ_errors_on_held_out_phantom_patients(tmp_path):
    config = from_dict({"task": "unpaired", "data": {"resolution": 32, "domain_a": ["phantom-ct-unenhanced"],
                                                     "source": "phantom-ct"},
                        "model": {"generator_channels": 4, "discriminator_channels": 4, "depth": 2},
                        "train": {"steps": 1, "batch_size": 4, "eval_every": 0, "sample_every": 1,
                                  "checkpoint_every": 1}, "unpaired": {"pool_size": 2}}, base=recipe("cyclegan"))
    train(config, tmp_path / "run", progress=False, data=_ct_domains(), scorer=None)
    held_config = held_out_pairs_config(config.data, config.data.source, config.data.domain_a)
    held = load_pairs(held_config, progress=False)
    assert held_config.split == "test" and len(set(held.subjects)) == 16
    metrics = evaluate_translation(tmp_path / "run", tmp_path / "eval", held_out=held, held_out_config=held_config,
                                   train_pairs=held.subset(range(8)), progress=False)
    assert metrics["organ_labels"] and "literature" not in metrics  # CT -> CT: no MR -> CT band
    unchanged = metrics["methods"]["input"]  # the unenhanced scan itself, against the portal truth
    # Unenhanced vs portal-venous tissue values of the phantom: liver 60 vs 105, aorta 42 vs 165, kidney 30-35 vs
    # 135-170 HU; at 32 px the small aorta and kidneys mix with their surroundings (measured -66 and -101 HU).
    assert -70 < unchanged["organ.liver.bias"]["mean"] < -25
    assert -160 < unchanged["organ.aorta.bias"]["mean"] < -40
    assert -170 < unchanged["organ.kidney.bias"]["mean"] < -60
    assert unchanged["organ.liver.mae"]["mean"] >= abs(unchanged["organ.liver.bias"]["mean"])
    for name in ("gan", "linear"):
        assert metrics["methods"][name]["organ.kidney.mae"]["n"] > 0
    assert "cycle_l1" in metrics["methods"]["gan"] and "dice_body" in metrics["methods"]["gan"]
    assert "per-organ error" in format_translation_table(metrics)
    assert {p.name for p in (tmp_path / "eval").iterdir()} >= {"metrics.json", "report.html", "DATA_CARD.json"}


# ---------------------------------------------------------------------------------------------------------------
# end to end through the CLI


def _write_pairs(folder, write_nifti, subjects, seed):
    """MR and CT of the same synthetic subjects, matched by name: fat ring, soft tissue, a bone core."""
    rng = np.random.default_rng(seed)
    (folder / "mr").mkdir(parents=True)
    (folder / "ct").mkdir()
    x, y = np.meshgrid(np.linspace(-1, 1, 32), np.linspace(-1, 1, 32), indexing="ij")
    for index in range(subjects):
        radius = np.sqrt((x / (0.8 + 0.05 * index)) ** 2 + (y / 0.7) ** 2)[..., None].repeat(6, 2)
        ct = np.select([radius < 0.25, radius < 0.7, radius < 0.9], [700.0, 40.0, -100.0], -1000.0)
        mr = np.select([radius < 0.25, radius < 0.7, radius < 0.9], [80.0, 250.0, 450.0], 0.0)
        write_nifti(folder / "ct" / f"s{index}.nii.gz", (ct + rng.normal(0, 5, ct.shape)).astype(np.float32))
        write_nifti(folder / "mr" / f"s{index}.nii.gz", (mr + rng.normal(0, 5, mr.shape).clip(0)).astype(np.float32))


def test_unpaired_run_evaluates_end_to_end_through_the_cli(tmp_path, write_nifti, capsys):
    _write_pairs(tmp_path / "train", write_nifti, 3, 0)
    _write_pairs(tmp_path / "test", write_nifti, 2, 1)
    tiny = ["--steps", "2", "--resolution", "32", "--batch-size", "4", "--quiet", "--set",
            "model.generator_channels=4", "--set", "model.discriminator_channels=4", "--set", "model.depth=2",
            "--set", "train.eval_every=0", "--set", "data.window_level=250", "--set", "data.window_width=2500"]
    run, paired = tmp_path / "run", tmp_path / "paired"
    assert main(["train", "--domain-a", str(tmp_path / "train/mr"), "--domain-b", str(tmp_path / "train/ct"),
                 "--out", str(run), *tiny]) == 0
    assert main(["train", "--task", "paired", "--domain-a", str(tmp_path / "train/mr"), "--data",
                 str(tmp_path / "train/ct"), "--out", str(paired), *tiny]) == 0
    capsys.readouterr()
    out = tmp_path / "eval"
    assert main(["evaluate", "--fake", str(run), "--real", str(tmp_path / "test/ct"), "--inputs",
                 str(tmp_path / "test/mr"), "--compare", str(paired), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "CycleGAN (unpaired)" in printed and "pix2pix (paired)" in printed and "identity baseline" in printed
    assert "literature: body MAE 50-100 HU" in printed and "level 250, width 2500" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["direction"] == "a2b" and metrics["held_out"]["n_subjects"] == 2
    assert set(metrics["methods"]) == {"gan", "moments", "linear", "compare1"}
    for name in ("mae", "psnr", "ssim", "dice_bone", "dice_body", "tissue_mae.bone", "tissue_mae.air"):
        assert metrics["methods"]["gan"][name]["mean"] is not None, name
    assert metrics["methods"]["gan"]["cycle_mae"]["mean"] >= 0 and "cycle_l1" not in metrics["methods"]["compare1"]
    assert "optimistic" in " ".join(metrics["notes"])  # user pairs: the line is fitted on the evaluated pairs
    assert metrics["methods"]["linear"]["mae"]["mean"] < 150  # MR -> HU is nearly linear per tissue here
    assert "HU thresholds" in metrics["tissue_rule"]
    assert "Methods against the truth" in (out / "report.html").read_text()
    back = tmp_path / "back"
    assert main(["evaluate", "--fake", str(run), "--real", str(tmp_path / "test/mr"), "--inputs",
                 str(tmp_path / "test/ct"), "--direction", "b2a", "--out", str(back), "--quiet"]) == 0
    reverse = json.loads((back / "metrics.json").read_text())
    assert reverse["direction"] == "b2a" and reverse["units"] == "a.u." and "dice_bone" not in reverse["methods"]["gan"]
    capsys.readouterr()
    code = main(["evaluate", "--fake", str(paired), "--real", str(tmp_path / "test/ct"), "--inputs",
                 str(tmp_path / "test/mr"), "--direction", "b2a", "--out", str(tmp_path / "x")])
    assert_one_error_line(code, capsys, "--direction is for runs that translate both ways")
    code = main(["evaluate", "--fake", str(run), "--real", str(tmp_path / "test/ct"), "--out", str(tmp_path / "y")])
    assert_one_error_line(code, capsys, "--inputs")
    code = main(["evaluate", "--fake", str(run), "--real", str(tmp_path / "test/ct"), "--inputs",
                 str(tmp_path / "test/mr"), "--train", str(tmp_path / "train/ct"), "--out", str(tmp_path / "y")])
    assert_one_error_line(code, capsys, "--train does not apply")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_the_unpaired_identity_baseline_matches_body_mean_and_sd_without_pairs():
    """Input body (its Otsu foreground) mapped onto the target body's mean and SD; nothing pairs the two."""
    hu = IntensityMapping("ct_window", -1000.0, 1000.0, "HU")
    generator = torch.Generator().manual_seed(0)
    body = torch.zeros(6, 1, 16, 16)
    body[..., 4:12, 4:12] = 1.0
    mr = torch.where(body > 0, 0.2 + 0.4 * torch.rand(body.shape, generator=generator), torch.full_like(body, -1.0))
    ct_hu = torch.where(body > 0, 40.0 + 60.0 * torch.rand(body.shape, generator=generator), torch.full_like(body, -1000.0))
    pairs = SliceSet(hu.to_unit(ct_hu), hu, (1.0, 1.0), ["s"] * 6, ["f#0"] * 6, aligned={"input": mr},
                     mappings={"input": IntensityMapping("percentile", 0.0, 1.0, "a.u.")})
    predicted, fit = _moments(pairs, pairs, hu)
    inside = body.numpy()[:, 0] > 0
    assert abs(predicted[inside].mean() - ct_hu.numpy()[:, 0][inside].mean()) < 1.0
    assert abs(predicted[inside].std() - ct_hu.numpy()[:, 0][inside].std()) < 1.0
    assert fit["slope_per_unit"] > 0
