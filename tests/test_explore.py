"""SeFa latent directions (``medgan.inference.directions``) and ``medgan explore``, on the session's tiny run
(32 px, 8-d latent)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from helpers import TINY, assert_one_error_line, cli, listing
from PIL import Image

from medgan.inference.directions import latent_weight, sefa
from medgan.inference.noise import NoiseToImage
from medgan.inference.sampling import load_generator
from medgan.networks.dcgan import DCGANGenerator
from medgan.networks.resnet import ResNetGenerator

FILES = ["directions.npy", "directions.png", "explore.json", "interpolation.png"]


def grid_size(rows: int, columns: int, side: int = 32, padding: int = 2) -> tuple[int, int]:
    """(width, height) of ``medgan.visuals.image_grid``'s picture."""
    return columns * (side + padding) + padding, rows * (side + padding) + padding


@pytest.fixture(scope="module")
def model(tiny_run):
    return load_generator(tiny_run)


def test_sefa_directions_are_orthonormal_eigenvectors_strongest_first(model):
    found = sefa(model.generator, model.latent_dim, model.latent_dim)
    vectors = found.vectors.double()
    assert vectors.shape == (8, 8) and found.layer == "main.0"
    assert torch.allclose(vectors @ vectors.t(), torch.eye(8, dtype=torch.float64), atol=1e-5)
    assert bool((found.eigenvalues[:-1] >= found.eigenvalues[1:]).all()), found.eigenvalues
    weight, _ = latent_weight(model.generator, model.latent_dim)
    moved = (vectors @ weight.double()).pow(2).sum(dim=1)  # |A n|^2 for each direction n
    assert torch.allclose(moved, found.eigenvalues.double(), rtol=1e-4)


@pytest.mark.parametrize("generator", [DCGANGenerator(32, latent_dim=6, channels=4, num_classes=3, num_attributes=2),
                                       ResNetGenerator(32, latent_dim=6, channels=4, num_classes=3)])
def test_sefa_reads_only_the_columns_acting_on_z(generator):
    """Class and attribute embeddings enter the first layer after z; the directions live in z's space alone."""
    weight, _ = latent_weight(generator, 6)
    assert weight.shape[0] == 6
    found = sefa(generator, 6, 2)
    assert found.vectors.shape == (2, 6) and found.eigenvalues.shape == (2,)


def test_direction_one_moves_the_image_more_than_a_random_orthogonal_direction(model, one_thread):
    found = sefa(model.generator, model.latent_dim, 3)
    rng = torch.Generator().manual_seed(0)
    latents = torch.randn(32, model.latent_dim, generator=rng)
    base = model.forward(latents)

    def change(direction: torch.Tensor) -> float:
        return float((model.forward(latents + direction) - base).abs().mean())

    randoms = []
    for _ in range(4):
        vector = torch.randn(model.latent_dim, generator=rng)
        vector -= found.vectors.t() @ (found.vectors @ vector)  # orthogonal to the top 3
        randoms.append(change(vector / vector.norm()))
    assert change(found.vectors[0]) > float(np.mean(randoms)), (change(found.vectors[0]), randoms)


def test_explore_writes_the_grids_directions_and_record(tiny_run, tmp_path, one_thread):
    out = tmp_path / "explore"
    done = cli("explore", "--run", tiny_run, "--out", out, "--directions", "3", "--steps", "5", "--range", "2")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == FILES
    assert Image.open(out / "directions.png").size == grid_size(3, 5)
    assert Image.open(out / "interpolation.png").size == grid_size(4, 5)
    vectors = np.load(out / "directions.npy")
    assert vectors.shape == (3, 8) and np.allclose(vectors @ vectors.T, np.eye(3), atol=1e-5)
    record = json.loads((out / "explore.json").read_text())
    assert record["synthetic"] is True
    assert record["eigenvalues"] == sorted(record["eigenvalues"], reverse=True) and len(record["eigenvalues"]) == 3
    change = record["mean_absolute_change_per_unit_step"]
    assert len(change) == 3 and min(change) > 0 and record["strongest_direction"] == int(np.argmax(change))
    assert record["unit"] == "a.u." and record["class"] is None and record["range"] == 2.0
    assert "changes the image most" in done.stdout and "explore.json" in done.stdout


def test_explore_refuses_bad_options_and_writes_nothing(tiny_run, model, tmp_path, capsys, monkeypatch):
    from medgan.cli import main

    out = tmp_path / "out"
    cases = [
        (["--class", "lesion"], "not class-conditional"),
        (["--directions", "0"], "--directions"),
        (["--directions", "9"], "between 1 and the latent size 8"),
        (["--steps", "1"], "--steps"),
        (["--range", "0"], "--range"),
        (["--range", "nan"], "--range"),
    ]
    for extra, fragment in cases:
        code = main(["explore", "--run", str(tiny_run), "--out", str(out), *extra])
        assert_one_error_line(code, capsys, fragment)
        assert not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = main(["explore", "--run", str(tiny_run), "--out", str(out)])
    assert_one_error_line(code, capsys, "not empty")
    assert listing(out) == ["notes.txt"]

    volumes = NoiseToImage(model.generator, model.config, dataclasses.replace(model.spec, dims=3), model.checkpoint)
    monkeypatch.setattr("medgan.inference.sampling.load_generator", lambda run: volumes)
    code = main(["explore", "--run", str(tiny_run), "--out", str(tmp_path / "3d")])
    assert_one_error_line(code, capsys, "3D exploration is not supported yet")
    assert not (tmp_path / "3d").exists()


def test_explore_refuses_a_translation_run(one_step_paired_run, tmp_path, capsys):
    from medgan.cli import main

    run = one_step_paired_run
    code = main(["explore", "--run", str(run), "--out", str(tmp_path / "out")])
    assert_one_error_line(code, capsys, "does not generate images from noise")
    assert not (tmp_path / "out").exists()


def test_explore_conditional_run_renders_every_class(tmp_path, capsys, one_thread):
    from test_conditional import write_labelled_pngs

    from medgan.cli import main

    data = write_labelled_pngs(tmp_path / "shapes")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--labels", str(data / "labels.csv"), "--task", "conditional",
                 "--out", str(run), "--steps", "2", *TINY]) == 0
    out = tmp_path / "explore"
    assert main(["explore", "--run", str(run), "--out", str(out), "--steps", "3", "--class", "square"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, "classes.png"])
    assert Image.open(out / "classes.png").size == grid_size(4, 2)  # 4 latents x 2 classes
    assert Image.open(out / "directions.png").size == grid_size(5, 3)
    assert json.loads((out / "explore.json").read_text())["class"] == "square"
    capsys.readouterr()
    code = main(["explore", "--run", str(run), "--out", str(tmp_path / "o"), "--class", "triangle"])
    assert_one_error_line(code, capsys, "unknown class 'triangle'")
    assert not (tmp_path / "o").exists()


def test_model_explore_writes_what_the_cli_writes(tiny_run, tmp_path, one_thread):
    import medgan

    record = medgan.load(tiny_run).explore(tmp_path / "py", directions=2, steps=3)
    assert sorted(p.name for p in (tmp_path / "py").iterdir()) == FILES
    assert cli("explore", "--run", tiny_run, "--out", tmp_path / "cli", "--directions", "2", "--steps", "3").returncode == 0
    written = json.loads((tmp_path / "cli" / "explore.json").read_text())
    assert {key: value for key, value in written.items() if key != "run"} == \
        {key: value for key, value in record.items() if key != "run"}


def test_cli_and_python_share_the_defaults():
    import inspect

    from medgan.api.model import Model
    from medgan.cli import latent
    from medgan.inference import directions

    for function in (directions.explore, Model.explore):
        defaults = inspect.signature(function).parameters
        assert (latent.DEFAULT_DIRECTIONS, latent.DEFAULT_TRAVERSAL_STEPS, latent.DEFAULT_RANGE) == (
            defaults["directions"].default, defaults["steps"].default, defaults["span"].default)
