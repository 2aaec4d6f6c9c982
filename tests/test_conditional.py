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
    """16-bit PNGs of two shapes (discs, squares) and a labels CSV naming each file's class."""
    folder.mkdir()
    rows = ["file,label"]
    grid = np.mgrid[0:32, 0:32]
    for index in range(12):
        shape = "disc" if index % 2 == 0 else "square"
        centre = 16 + (index % 3) - 1
        if shape == "disc":
            mask = (grid[0] - centre) ** 2 + (grid[1] - 16) ** 2 < 64
        else:
            mask = (abs(grid[0] - centre) < 7) & (abs(grid[1] - 16) < 7)
        pixels = np.where(mask, 40000, 1000).astype(np.uint16)
        Image.fromarray(pixels).save(folder / f"img{index:02d}.png")
        rows.append(f"img{index:02d}.png,{shape}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_conditional_train_and_sample_by_class(tmp_path):
    data = write_labelled_pngs(tmp_path / "shapes")
    run = tmp_path / "run"
    code = main(["train", "--data", str(data), "--labels", str(data / "labels.csv"), "--task", "conditional",
                 "--out", str(run), "--steps", "3", *TINY])
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
