"""``medgan counterfactual``: invert as the found class, regenerate the same latent as another class, on a tiny
conditional run (32 px, 8-d latent, 2 classes: disc and square)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import TINY, assert_one_error_line

from medgan.cli import main

FAST = ["--steps", "15", "--restarts", "1", "--quiet"]


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    """(run, data folder) of a 2-step conditional run on labelled shapes."""
    from test_conditional import write_labelled_pngs

    root = tmp_path_factory.mktemp("counterfactual")
    data = write_labelled_pngs(root / "shapes")
    run = root / "run"
    assert main(["train", "--data", str(data), "--labels", str(data / "labels.csv"), "--task", "conditional",
                 "--out", str(run), "--steps", "2", *TINY]) == 0
    return run, data


class Judge(torch.nn.Module):
    """Class 1 (square) when the image's mean is above a threshold, else class 0 (disc)."""

    def __init__(self, width: int = 2) -> None:
        super().__init__()
        self.width = width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean = images.mean(dim=(1, 2, 3))
        return torch.stack([-mean, mean] + [mean * 0] * (self.width - 2), dim=1)


def test_counterfactual_changes_the_class_and_records_it(conditional, tmp_path, one_thread):
    run, data = conditional
    judge = tmp_path / "judge.pt"
    torch.jit.script(Judge()).save(str(judge))
    images = tmp_path / "in"
    images.mkdir()
    for name in ("img00.png", "img01.png"):
        (images / name).write_bytes((data / name).read_bytes())
    changed = set()
    for to_class in ("disc", "square"):  # each image changes in exactly one of the two
        changed |= check_folder(run, images, judge, to_class, tmp_path / to_class)
    assert changed == {"img00", "img01"}


def check_folder(run, images, judge, to_class, out) -> set[str]:
    """Runs the command into ``out``, checks what it wrote; the names of the images whose class was changed."""
    assert main(["counterfactual", "--run", str(run), "--input", str(images), "--to", to_class, "--out", str(out),
                 "--judge", str(judge), *FAST]) == 0
    record = json.loads((out / "counterfactual.json").read_text())
    assert record["to_class"] == to_class and len(record["images"]) == 2
    for entry in record["images"]:
        name = entry["name"]
        assert entry["source_class"] in ("disc", "square")
        assert 0 <= entry["ssim"] <= 1 and np.isfinite(entry["psnr_db"])
        assert 0 <= entry["changed_area"] <= 1 and entry["l1_change"] >= 0 and entry["threshold"] > 0
        assert entry["judge_before"] in ("disc", "square") and entry["judge_after"] in ("disc", "square")
        change = np.load(out / f"{name}_change.npy")
        assert change.shape == (32, 32)
        assert np.isclose(np.abs(change).mean(), entry["l1_change"], rtol=1e-4)
        assert np.isclose((np.abs(change) > entry["threshold"]).mean(), entry["changed_area"])
        assert (out / name / f"{name}_counterfactual_0000.png").is_file() and (out / f"{name}_preview.png").is_file()
        assert json.loads((out / name / "mapping.json").read_text())["synthetic"] is True
        if entry["source_class"] != to_class:  # another class: the image changes
            assert entry["l1_change"] > 0 and entry["changed_area"] > 0
        else:  # the same class: the reconstruction, exactly
            assert entry["l1_change"] == 0 and entry["changed_area"] == 0
    assert 0 <= record["judge_class_change_rate"] <= 1 and 0 <= record["judge_to_class_rate"] <= 1
    assert record["median_changed_area"] == pytest.approx(np.median([e["changed_area"] for e in record["images"]]))
    assert (out / "DATA_CARD.json").is_file()
    return {e["name"] for e in record["images"] if e["source_class"] != to_class}


def test_same_class_reproduces_the_reconstruction_and_another_does_not(conditional, one_thread):
    from medgan.evaluation.counterfactual import counterfactual_images
    from medgan.inference.sampling import load_generator

    model = load_generator(conditional[0])
    latents = torch.randn(3, model.latent_dim, generator=torch.Generator().manual_seed(0))
    labels = torch.zeros(3, dtype=torch.long)
    recon, same = counterfactual_images(model, latents, labels, 0)
    assert torch.equal(recon, same)
    _, other = counterfactual_images(model, latents, labels, 1)
    assert (other - recon).abs().mean() > 1e-4


def test_counterfactual_refusals_are_one_line(conditional, tiny_run, one_step_paired_run, tmp_path, capsys):
    run, data = conditional
    image = str(data / "img00.png")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not torchscript")
    wide = tmp_path / "wide.pt"
    torch.jit.script(Judge(3)).save(str(wide))
    out = tmp_path / "out"
    cases = [
        ([tiny_run, "--to", "disc"], "not class-conditional"),
        ([run, "--to", "triangle"], "unknown class 'triangle'"),
        ([one_step_paired_run, "--to", "disc"], "does not generate images from noise"),
        ([run, "--to", "disc", "--judge", bad], "not a loadable TorchScript"),
        ([run, "--to", "disc", "--judge", wide], "2 classes"),
    ]
    for (where, *extra), fragment in cases:
        code = main(["counterfactual", "--run", str(where), "--input", image, "--out", str(out), "--quiet",
                     *map(str, extra)])
        assert_one_error_line(code, capsys, fragment)
        assert not out.exists()


def test_counterfactual_refuses_a_3d_run(conditional, tmp_path, capsys, monkeypatch):
    import dataclasses

    from medgan.inference import NoiseToImage
    from medgan.inference.sampling import load_generator

    run, data = conditional
    model = load_generator(run)
    volumes = NoiseToImage(model.generator, model.config, dataclasses.replace(model.spec, dims=3), model.checkpoint)
    monkeypatch.setattr("medgan.inference.sampling.load_generator", lambda run: volumes)
    code = main(["counterfactual", "--run", str(run), "--input", str(data / "img00.png"), "--to", "disc", "--out",
                 str(tmp_path / "3d")])
    assert_one_error_line(code, capsys, "is for 2D runs")
    assert not (tmp_path / "3d").exists()


def test_model_counterfactual_writes_what_the_cli_writes(conditional, tmp_path, one_thread):
    import inspect

    import medgan
    from medgan.cli import latent

    run, data = conditional
    record = medgan.load(run).counterfactual(data / "img01.png", "disc", tmp_path / "py", steps=15, restarts=1)
    assert main(["counterfactual", "--run", str(run), "--input", str(data / "img01.png"), "--to", "disc", "--out",
                 str(tmp_path / "cli"), *FAST]) == 0
    written = json.loads((tmp_path / "cli" / "counterfactual.json").read_text())
    assert {k: v for k, v in written.items() if k != "run"} == {k: v for k, v in record.items() if k != "run"}
    defaults = inspect.signature(medgan.Model.counterfactual).parameters
    assert (defaults["steps"].default, defaults["restarts"].default) == (latent.DEFAULT_STEPS, latent.DEFAULT_RESTARTS)


def test_one_hot_class_weights_render_what_class_indices_render():
    from medgan.networks.dcgan import DCGANGenerator as Generator

    torch.manual_seed(0)
    for conditional_norm in (False, True):
        generator = Generator(32, latent_dim=8, channels=8, num_classes=3, conditional_norm=conditional_norm).eval()
        z, labels = torch.randn(4, 8), torch.tensor([0, 1, 2, 1])
        with torch.no_grad():
            by_index = generator(z, labels)
            by_weights = generator(z, torch.nn.functional.one_hot(labels, 3).float())
        assert torch.allclose(by_index, by_weights, atol=1e-6)
    from medgan.networks.common import class_vectors

    halfway = torch.tensor([[0.5, 0.0, 0.5]])  # a mixture is the mean of the two classes' rows
    weight = generator.embedding.weight
    assert torch.allclose(class_vectors(generator.embedding, halfway)[0], (weight[0] + weight[2]) / 2)


def test_steer_stops_where_the_judge_changes_its_decision(conditional, tmp_path, one_thread):
    from medgan.evaluation.counterfactual import steer
    from medgan.inference.sampling import load_generator

    run, _ = conditional
    judge = torch.jit.script(Judge())
    model = load_generator(run)
    latents = torch.randn(6, model.latent_dim, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    with torch.no_grad():
        recon = model.forward(latents, labels, None).clamp(-1, 1)
        before = judge(recon).argmax(1)
    alphas, images = steer(model, judge, latents, labels, recon, 1, steps=8)
    with torch.no_grad():
        after_all = judge(images).argmax(1)
    for k, alpha in enumerate(alphas):
        if labels[k] == 1:  # already the target class: the walk stays at the reconstruction's conditioning
            assert alpha is None
            continue
        if alpha is None:
            continue
        assert alpha in [step / 8 for step in range(1, 9)] and after_all[k] != before[k]
        if alpha > 1 / 8:  # one step earlier the judge had not changed its mind
            weights = torch.tensor([[1 - alpha + 1 / 8, alpha - 1 / 8]])
            with torch.no_grad():
                earlier = model.forward(latents[k : k + 1], weights, None).clamp(-1, 1)
            assert judge(earlier).argmax(1) == before[k]


class ThresholdJudge(torch.nn.Module):
    """Class 1 when the image's mean is above ``threshold``, else class 0."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean = images.mean(dim=(1, 2, 3)) - self.threshold
        return torch.stack([-mean, mean], dim=1)


def test_counterfactual_steer_writes_the_minimal_counterfactual(conditional, tmp_path, one_thread, capsys):
    from medgan.data.readers import read_volume
    from medgan.evaluation.counterfactual import counterfactual_images
    from medgan.evaluation.inversion import invert_targets, target_from_volume
    from medgan.inference.inversion import InversionConfig
    from medgan.inference.sampling import load_generator

    run, data = conditional
    image = data / "img00.png"
    model = load_generator(run)
    target = target_from_volume(model, read_volume(image))
    result, _ = invert_targets(model, target.tile, InversionConfig(steps=15, restarts=1, seed=0))
    to_class = "square" if model.class_names[int(result.labels[0])] == "disc" else "disc"
    recon, changed = counterfactual_images(model, result.latents, result.labels, model.class_index(to_class))
    # A judge whose boundary lies halfway between the reconstruction's and the counterfactual's mean: the walk must
    # cross it, and not at the first step unless the whole change happens there.
    judge = tmp_path / "judge.pt"
    torch.jit.script(ThresholdJudge(float(recon.mean() + changed.mean()) / 2)).save(str(judge))
    out = tmp_path / "steer"
    assert main(["counterfactual", "--run", str(run), "--input", str(image), "--to", to_class, "--out", str(out),
                 "--judge", str(judge), "--steer", "5", *FAST]) == 0
    record = json.loads((out / "counterfactual.json").read_text())
    (entry,) = record["images"]
    assert entry["judge_before"] != entry["judge_after"]
    assert entry["steer_alpha"] in (0.2, 0.4, 0.6, 0.8, 1.0)
    assert 0 < entry["steer_changed_area"] <= 1 and entry["steer_l1_change"] > 0
    assert (out / "img00" / "img00_minimal_0000.png").is_file()
    walk = record["steer"]
    assert walk["steps"] == 5 and walk["judge_change_rate"] == 1.0 and walk["median_alpha"] == entry["steer_alpha"]
    assert "steered in 5 steps: the judge changed its decision for 100%" in capsys.readouterr().out
    # A judge that never changes its mind: nothing minimal is written, and the record says so.
    never = tmp_path / "never.pt"
    torch.jit.script(ThresholdJudge(10.0)).save(str(never))
    assert main(["counterfactual", "--run", str(run), "--input", str(image), "--to", to_class, "--out",
                 str(tmp_path / "never"), "--judge", str(never), "--steer", "5", *FAST]) == 0
    record = json.loads((tmp_path / "never" / "counterfactual.json").read_text())
    assert record["images"][0]["steer_alpha"] is None and record["steer"]["judge_change_rate"] == 0.0
    assert "median_alpha" not in record["steer"] and not list((tmp_path / "never").rglob("*minimal*"))


def test_steer_needs_a_judge(conditional, tmp_path, capsys):
    run, data = conditional
    code = main(["counterfactual", "--run", str(run), "--input", str(data / "img00.png"), "--to", "disc", "--out",
                 str(tmp_path / "out"), "--steer", "4", "--quiet"])
    assert_one_error_line(code, capsys, "--steer")
    assert not (tmp_path / "out").exists()
