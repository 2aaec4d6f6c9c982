"""2.5D unpaired translation (``data.context`` on a CycleGAN run): domain A's volumes read as slabs of neighbouring
slices, B's slices alone; G maps a slab to a slice, F a slice to a slab; ``medgan translate`` and ``medgan
evaluate`` on whole volumes in both directions; and where context is refused."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import assert_one_error_line

from medgan.cli import main
from medgan.config import DataConfig
from medgan.data.modalities import load_unpaired
from medgan.data.pipeline import load_slices
from medgan.inference import load_model

DEPTH = 6
TINY = ["--set", "model.generator_channels=4", "--set", "model.discriminator_channels=4", "--set", "model.depth=2",
        "--set", "train.eval_every=0", "--set", "unpaired.identity=0", "--set", "data.context=1",
        "--set", "data.min_foreground=0", "--set", "data.crop_foreground=false"]


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([1.0, 1.0, 2.0, 1.0])), str(path))
    return path


def _mr() -> np.ndarray:
    """An MR volume whose slice z is 100 (z + 1) inside the body, 0 around it."""
    volume = np.zeros((32, 32, DEPTH), np.float32)
    volume[6:26, 8:24] = 100.0 * (1 + np.arange(DEPTH, dtype=np.float32))
    return volume


def _ct(index: int) -> np.ndarray:
    volume = np.full((32, 32, DEPTH), -1000.0, np.float32)
    volume[6:26, 8:24] = 40.0 + 10.0 * index + np.random.default_rng(index).normal(0, 20, (20, 16, DEPTH))
    return volume


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("unpaired-context")
    for index in range(3):
        _save(root / "mr" / f"a{index}.nii.gz", _mr())
        _save(root / "ct" / f"b{index}.nii.gz", _ct(index))
        textured = _mr() + np.random.default_rng(20 + index).normal(0, 30, (32, 32, DEPTH)).astype(np.float32) * (_mr() > 0)
        _save(root / "held-mr" / f"p{index}.nii.gz", textured)  # held-out true pairs, matched by name
        _save(root / "held-ct" / f"p{index}.nii.gz", _ct(10 + index))
    return root


def test_domain_a_comes_as_slabs_of_true_neighbours_and_b_as_slices(folders):
    config = DataConfig(source=str(folders / "ct"), domain_a=(str(folders / "mr"),), resolution=32, context=1,
                        min_foreground=0.0, crop_foreground=False, modality="mr", percentiles=(0.0, 100.0))
    domain_a, domain_b, _ = load_unpaired(config, load_slices, progress=False)
    assert domain_a.images.shape == (3 * DEPTH, 3, 32, 32) and domain_b.images.shape[1] == 1
    # Slice z of subject a0 is 100 (z + 1) inside the body; its neighbours z, z - 1, z + 1 (ends replicated).
    first = [index for index, source in enumerate(domain_a.sources) if "a0" in source]
    centre = np.rint(np.asarray(domain_a.mapping.to_physical(domain_a.images[first][:, :, 16, 16].numpy())))
    heights = np.array([int(domain_a.sources[i].rsplit("#", 1)[1]) for i in first])
    expected = 100.0 * (1 + np.stack([heights, np.maximum(heights - 1, 0), np.minimum(heights + 1, DEPTH - 1)], 1))
    assert np.array_equal(centre, expected)


@pytest.fixture(scope="module")
def context_run(folders, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("unpaired-context-run") / "run"
    code = main(["train", "--domain-a", str(folders / "mr"), "--domain-b", str(folders / "ct"), "--out", str(run),
                 "--steps", "2", "--resolution", "32", "--batch-size", "4", "--quiet", *TINY])
    assert code == 0
    return run


def test_a_context_run_maps_slabs_to_slices_and_slices_to_slabs(context_run):
    a2b, b2a = load_model(context_run), load_model(context_run, direction="b2a")
    assert (a2b.context, a2b.in_channels) == (1, 3) and (b2a.context, b2a.in_channels) == (0, 1)
    assert a2b.translate(torch.zeros(2, 3, 32, 32)).shape == (2, 1, 32, 32)
    assert b2a.translate(torch.zeros(2, 1, 32, 32)).shape == (2, 3, 32, 32)  # F gives back the whole slab
    inference = torch.load(context_run / "checkpoints" / "latest.pt", weights_only=False)["inference"]
    assert inference["directions"]["a2b"]["context"] == 1 and inference["directions"]["b2a"]["context"] == 0


def test_translate_and_evaluate_a_context_run_in_both_directions(context_run, folders, tmp_path, capsys):
    for direction, source in (("a2b", "held-mr"), ("b2a", "held-ct")):
        out = tmp_path / f"out-{direction}"
        assert main(["translate", "--run", str(context_run), "--input", str(folders / source / "p0.nii.gz"),
                     "--out", str(out), "--direction", direction, "--quiet"]) == 0
        written = nib.load(out / "p0_translated.nii.gz")
        assert written.shape == (32, 32, DEPTH)
    slice_wise = tmp_path / "slice-wise"  # a 2D run of the same data, compared on the 2.5D run's held-out slabs
    assert main(["train", "--domain-a", str(folders / "mr"), "--domain-b", str(folders / "ct"), "--out",
                 str(slice_wise), "--steps", "1", "--resolution", "32", "--batch-size", "4", "--quiet",
                 *[item.replace("data.context=1", "data.context=0") for item in TINY]]) == 0
    for direction, real, inputs in (("a2b", "held-ct", "held-mr"), ("b2a", "held-mr", "held-ct")):
        out = tmp_path / f"eval-{direction}"
        assert main(["evaluate", "--fake", str(context_run), "--real", str(folders / real), "--inputs",
                     str(folders / inputs), "--direction", direction, "--out", str(out), "--quiet",
                     "--compare", str(slice_wise)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert len(metrics["methods"]) >= 3 and (out / "report.html").is_file()  # the run, the 2D run, a baseline
    capsys.readouterr()


def test_identity_with_context_is_refused_in_one_line(folders, tmp_path, capsys):
    base = ["train", "--out", str(tmp_path / "run"), "--steps", "1", "--resolution", "32", "--quiet"]
    code = main([*base, "--domain-a", str(folders / "mr"), "--domain-b", str(folders / "ct"), "--set",
                 "data.context=1", "--set", "model.depth=2"])  # identity on (the recipe's 0.5)
    assert_one_error_line(code, capsys, "unpaired.identity", "data.context 1")
    code = main([*base, "--domain-a", str(tmp_path / "missing"), "--domain-b", str(folders / "ct"), *TINY])
    assert_one_error_line(code, capsys, "data.domain_a", "missing")
    assert not (tmp_path / "run").exists()


def test_tiles_without_slabs_are_refused_for_a_context_run(tmp_path):
    from test_unpaired_task import cyclegan_config, unpaired_data

    from medgan.errors import ConfigError
    from medgan.training.loop import train

    config = cyclegan_config(data={"context": 1}, unpaired={"identity": 0.0})
    with pytest.raises(ConfigError, match="3 slice channel"):  # 1-channel A tiles given through the API
        train(config, tmp_path / "run", progress=False, data=unpaired_data(), scorer=None)
