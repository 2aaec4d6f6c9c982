"""Class-conditional training through the CLI: labels CSV in, per-class sampling out."""

import numpy as np
import pytest
import torch
from PIL import Image

from medgan.cli import main
from medgan.errors import ConfigError
from medgan.sampling import generate, load_generator

from helpers import TINY


def write_labelled_pngs(folder):
    """16-bit PNGs of two shapes and a labels CSV naming each file's class: small bright discs and large dim
    squares, different enough in size and intensity that a short run can learn the classes apart."""
    folder.mkdir()
    rows = ["file,label"]
    grid = np.mgrid[0:32, 0:32]
    for index in range(12):
        shape = "disc" if index % 2 == 0 else "square"
        centre = 16 + (index % 3) - 1
        if shape == "disc":
            mask = (grid[0] - centre) ** 2 + (grid[1] - 16) ** 2 < 36
        else:
            mask = (abs(grid[0] - centre) < 10) & (abs(grid[1] - 16) < 10)
        pixels = np.where(mask, 40000 if shape == "disc" else 16000, 1000).astype(np.uint16)
        Image.fromarray(pixels).save(folder / f"img{index:02d}.png")
        rows.append(f"img{index:02d}.png,{shape}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_conditional_train_and_sample_by_class(tmp_path):
    data = write_labelled_pngs(tmp_path / "shapes")
    run = tmp_path / "run"
    code = main(["train", "--data", str(data), "--labels", str(data / "labels.csv"), "--task", "conditional",
                 "--out", str(run), "--steps", "3", "--set", "data.normalize=zscore", *TINY])
    assert code == 0
    loaded = load_generator(run)
    assert loaded.class_names == ("disc", "square") and loaded.config.model.num_classes == 2
    discs, _ = generate(run, 4, seed=0, class_name="disc", loaded=loaded)
    squares, _ = generate(run, 4, seed=0, class_name="square", loaded=loaded)
    assert discs.shape == (4, 1, 32, 32) and not torch.allclose(discs, squares)  # same noise, class decides
    out = tmp_path / "samples"
    assert main(["sample", "--run", str(run), "--n", "2", "--class", "square", "--out", str(out)]) == 0
    assert len(list(out.glob("*.png"))) == 2
    with pytest.raises(ConfigError, match="unknown class 'triangle'"):
        generate(run, 1, class_name="triangle", loaded=loaded)


def test_conditional_task_needs_labels(tmp_path, capsys):
    data = write_labelled_pngs(tmp_path / "shapes")
    code = main(["train", "--data", str(data), "--task", "conditional", "--out", str(tmp_path / "r"), "--steps", "1",
                 *TINY])
    assert code == 2 and "needs labelled data" in capsys.readouterr().err


def test_generated_classes_are_recognised_by_a_classifier_trained_on_real_images(tmp_path):
    """A short conditional run on two clearly different shapes: a judge trained on real shapes only must
    label the samples generated for each class as that class well above chance (0.5)."""
    from medgan.cli import synthetic_set
    from medgan.config import from_dict, recipe
    from medgan.data import load_slices
    from medgan.metrics.utility import UtilityConfig, class_fidelity
    from medgan.training.loop import train

    data = write_labelled_pngs(tmp_path / "shapes")
    config = from_dict({"task": "conditional",
                        # z-score keeps both classes visible (a percentile clip would map the dim class to -1)
                        "data": {"source": str(data), "labels": str(data / "labels.csv"), "resolution": 32,
                                 "normalize": "zscore"},
                        "model": {"generator_channels": 8, "discriminator_channels": 8, "latent_dim": 16},
                        # The mode-seeking term trades class sharpness for diversity; this test is about the
                        # conditioning itself, on a toy set that a short run can learn.
                        "loss": {"mode_seeking": 0.0},
                        "train": {"steps": 600, "batch_size": 16, "log_every": 50, "sample_every": 1000,
                                  "checkpoint_every": 1000, "eval_every": 0, "ema_start": 20, "threads": 1}},
                       base=recipe("medgan"))
    train(config, tmp_path / "run", progress=False)
    real = load_slices(config.data, progress=False)
    synthetic = synthetic_set(str(tmp_path / "run"), per_class=24, seed=0)
    judged = class_fidelity(real, synthetic, UtilityConfig(epochs=5, min_steps=60, threads=1))
    assert judged["class_names"] == ["disc", "square"]
    assert judged["balanced_accuracy"] >= 0.8, judged


def test_mode_seeking_ratio_measures_noise_sensitivity_within_a_class():
    from medgan.training.tasks.adversarial import mode_seeking_ratio

    noise = torch.randn(8, 4)
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])  # pairs (i, i + 4) share a class
    collapsed = torch.zeros(8, 1, 2, 2)
    assert mode_seeking_ratio(collapsed, noise, labels).item() == 0.0
    varied = noise[:, :, None, None].mean(1, keepdim=True).expand(8, 1, 2, 2)
    expected = ((varied[:4] - varied[4:]).abs().flatten(1).mean(1) / (noise[:4] - noise[4:]).abs().mean(1)).mean()
    assert mode_seeking_ratio(varied, noise, labels).item() == pytest.approx(expected.item())
    assert mode_seeking_ratio(varied, noise, torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])) is None  # no same-class pair
