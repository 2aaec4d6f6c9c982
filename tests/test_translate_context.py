"""2.5D paired translation (``data.context``): neighbouring slices as input channels, in training data, in the run's
inference state and in ``medgan translate`` on whole volumes; and where context is refused."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import assert_one_error_line, cli
from PIL import Image
from test_paired_task import paired_config

from medgan.config import DataConfig
from medgan.data.degrade import degrade_volume, parse_degradation
from medgan.data.pairs import check_context, load_pairs
from medgan.data.readers import Volume, read_volume
from medgan.data.slicing import neighbour_indices, upright_slices
from medgan.errors import ConfigError, DataError
from medgan.inference import load_model
from medgan.training.loop import train

WINDOW = {"window_level": 300.0, "window_width": 800.0}  # 0..700 HU are inside: slice z of _ramp is 100 z HU


def _ramp(depth: int = 6) -> np.ndarray:
    """A 24 x 20 x ``depth`` CT volume whose slice z is 100 z HU inside a body, air around it."""
    volume = np.full((24, 20, depth), -1000.0, dtype=np.float32)
    volume[3:21, 3:17] = 100.0 * np.arange(depth, dtype=np.float32)
    return volume


def _save(path: Path, array: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 2.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([*spacing, 1.0])), str(path))
    return path


def _folder_pairs(root: Path, depth: int = 6) -> tuple[Path, Path]:
    for name in ("a", "b"):
        _save(root / "targets" / f"{name}.nii.gz", _ramp(depth))
        _save(root / "inputs" / f"{name}.nii.gz", _ramp(depth) + 5.0)
    return root / "targets", root / "inputs"


def _config(targets: Path, inputs: Path | None = None, **values) -> DataConfig:
    values = {"resolution": 32, "modality": "ct", "min_foreground": 0.0, "crop_foreground": False, **WINDOW, **values}
    return DataConfig(source=str(targets), input=None if inputs is None else str(inputs), **values)


def _centre_hu(tiles: torch.Tensor, mapping) -> np.ndarray:
    """Every channel of every tile at the body's centre, back in HU: ``[N, C]``."""
    return np.rint(np.asarray(mapping.to_physical(tiles[:, :, 16, 16].numpy())))


def test_neighbour_order_puts_the_slice_first_and_replicates_the_ends():
    assert neighbour_indices(np.arange(4), 4, 0).tolist() == [[0], [1], [2], [3]]
    assert neighbour_indices(np.array([0, 2, 3]), 4, 2).tolist() == [[0, 0, 1, 0, 2], [2, 1, 3, 0, 3],
                                                                     [3, 2, 3, 1, 3]]


def test_context_stacks_the_right_neighbours_and_context_0_is_unchanged(tmp_path):
    targets, inputs = _folder_pairs(tmp_path)
    plain = load_pairs(_config(targets, inputs), progress=False)
    assert plain.aligned["input"].shape == plain.images.shape == (12, 1, 32, 32)
    for context in (1, 2):
        stacked = load_pairs(_config(targets, inputs, context=context), progress=False)
        assert stacked.aligned["input"].shape == (12, 2 * context + 1, 32, 32)
        assert torch.equal(stacked.images, plain.images) and stacked.sources == plain.sources
        assert torch.equal(stacked.aligned["input"][:, :1], plain.aligned["input"])  # the slice itself first
        hu = _centre_hu(stacked.aligned["input"], stacked.mappings["input"])
        expected = 100.0 * neighbour_indices(np.arange(6), 6, context) + 5.0  # slice z holds 100 z + 5 HU
        assert np.array_equal(hu, np.concatenate([expected, expected]))  # two volumes, ends replicated


def test_context_takes_neighbours_that_the_foreground_filter_drops(tmp_path):
    volume = _ramp(6)
    volume[..., 0] = volume[..., 5] = -1000.0  # empty end slices: not kept, still neighbours
    _save(tmp_path / "t" / "a.nii.gz", volume)
    _save(tmp_path / "i" / "a.nii.gz", volume + 5.0)
    found = load_pairs(_config(tmp_path / "t", tmp_path / "i", context=1, min_foreground=0.1), progress=False)
    assert [source.rpartition("#")[2] for source in found.sources] == ["1", "2", "3", "4"]
    assert _centre_hu(found.aligned["input"], found.mappings["input"])[0].tolist() == [105.0, -100.0, 205.0]  # air: the
    # window's bottom


def test_csv_pairs_and_derived_inputs_take_context(tmp_path):
    targets, inputs = _folder_pairs(tmp_path)
    table = tmp_path / "pairs.csv"
    with table.open("w", newline="") as handle:
        csv.writer(handle).writerows([["input", "target"], *[[inputs / f"{n}.nii.gz", targets / f"{n}.nii.gz"]
                                                             for n in ("a", "b")]])
    config = _config(table, context=1)
    from dataclasses import replace

    assert load_pairs(replace(config, pairs=str(table)), progress=False).aligned["input"].shape == (12, 3, 32, 32)
    derived = load_pairs(replace(config, source=str(targets), degrade="downsample:2"), progress=False)
    assert derived.aligned["input"].shape == (12, 3, 32, 32)


def test_derived_inputs_are_derived_on_the_neighbours_too(tmp_path):
    volume = np.random.default_rng(0).normal(100.0, 40.0, (24, 20, 6)).astype(np.float32)
    volume[..., 0] = -1000.0  # not kept (no foreground), but the neighbour of slice 1
    path = _save(tmp_path / "ct.nii.gz", volume)
    downsample = parse_degradation("downsample:2,noise=5")  # noise: even an empty slice changes
    for context, degraded in ((0, False), (1, True)):
        config = DataConfig(modality="ct", min_foreground=0.1, context=context)
        target, derived = degrade_volume(read_volume(path), downsample, config)
        volume_0 = derived["input"].array[..., 0]
        assert np.array_equal(volume_0, target.array[..., 0]) != degraded  # a clean neighbour would leak the target


def test_context_is_refused_where_inputs_have_no_neighbours(tmp_path):
    for config, fragment in ((DataConfig(source="ct-phantom", degrade="lowdose:0.25", context=1), "separate 2D"),
                             (DataConfig(source="mni152", degrade="mask", context=1), "label map"),
                             (DataConfig(source="x", domain_a=("y",), context=2), "domain_a")):
        with pytest.raises(ConfigError, match=fragment):
            check_context(config)
    check_context(DataConfig(source="ct-phantom", degrade="lowdose:0.25"))  # context 0: nothing to refuse
    for folder in ("t", "i"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(tmp_path / folder / "a.png")
    with pytest.raises(DataError, match="2D image has no neighbouring slices"):
        load_pairs(DataConfig(source=str(tmp_path / "t"), input=str(tmp_path / "i"), resolution=32, context=1),
                   progress=False)


def test_unpaired_context_on_embedded_2d_slices_is_one_line_exit_2(tmp_path, capsys):
    from medgan.cli import main

    code = main(["train", "--task", "unpaired", "--data", "ct-phantom", "--domain-a", "mni152", "--out",
                 str(tmp_path / "run"), "--set", "data.context=1", "--quiet"])
    assert_one_error_line(code, capsys, "data.context", "embedded source", "volume files")


@pytest.fixture(scope="module")
def context_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("context")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        clean = _ramp(8) / 4.0 + rng.normal(0.0, 10.0, (24, 20, 8)).astype(np.float32)
        _save(root / "targets" / f"{name}.nii.gz", clean)
        _save(root / "inputs" / f"{name}.nii.gz", clean + rng.normal(0.0, 30.0, clean.shape).astype(np.float32))
    data = {"source": str(root / "targets"), "input": str(root / "inputs"), "context": 1, "modality": "ct",
            "crop_foreground": False, **WINDOW}
    run = root / "run"
    train(paired_config(data=data, train={"steps": 3, "eval_every": 0}), run, progress=False, scorer=None)
    return run


def test_a_context_run_records_its_context_and_translates_volumes_with_neighbours(context_run, tmp_path, monkeypatch):
    import medgan.inference.translate
    from medgan.inference.files import translate_volume

    model = load_model(context_run)
    assert model.context == 1 and model.in_channels == 3 and model.config.data.context == 1
    assert torch.load(context_run / "checkpoints" / "latest.pt", weights_only=False)["inference"]["context"] == 1
    monkeypatch.setattr(medgan.inference.translate, "TRANSLATE_PIXELS", 3 * 24 * 20)  # batches of 3 slices
    array = np.random.default_rng(1).normal(100.0, 150.0, (24, 20, 7)).astype(np.float32)
    volume = Volume(array, np.diag([1.0, 1.0, 2.0, 1.0]), (1.0, 1.0, 2.0), "CT", Path("case.nii"), "case")
    result = translate_volume(model, {"input": volume})
    mapping = model.spec.domain("input").mapping
    slices = upright_slices(array, 2)  # RAS already: training's slicing
    unit = np.asarray(mapping.to_unit(slices), dtype=np.float32)[neighbour_indices(np.arange(7), 7, 1)]
    expected = np.asarray(mapping.to_physical(model.translate(torch.from_numpy(unit))[:, 0].numpy()))
    expected = np.where((slices < mapping.low) | (slices > mapping.high), slices, expected)
    assert np.allclose(upright_slices(result, 2), expected, atol=1e-3)


def test_translate_cli_on_a_context_run_keeps_the_volume_and_refuses_a_png(context_run, tmp_path, capsys):
    from medgan.cli import main

    source = _save(tmp_path / "case.nii.gz", _ramp(5) / 4.0, spacing=(0.8, 0.8, 2.5))
    assert main(["translate", "--run", str(context_run), "--input", str(source), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    written = nib.load(tmp_path / "out" / "case_translated.nii.gz")
    assert written.shape == (24, 20, 5) and np.allclose(written.affine, nib.load(source).affine)
    capsys.readouterr()
    Image.fromarray(np.arange(480, dtype=np.uint16).reshape(20, 24).astype(np.uint8)).save(tmp_path / "slice.png")
    result = cli("translate", "--run", context_run, "--input", tmp_path / "slice.png", "--out", tmp_path / "o2")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "data.context=1" in lines[0], result.stderr
    assert not (tmp_path / "o2").exists()


def test_evaluate_measures_a_context_run_on_its_centre_slices(context_run, tmp_path):
    from medgan.evaluation.paired import evaluate_paired

    config = load_model(context_run).config.data
    held = load_pairs(config, progress=False)
    assert held.aligned["input"].shape[1] == 3
    metrics = evaluate_paired(context_run, config, tmp_path / "eval", data=held, progress=False)
    assert metrics["held_out"]["slices"] == len(held) and metrics["methods"]["gan"]["mae"]["mean"] >= 0
    assert (tmp_path / "eval" / "report.html").is_file()


def test_unet3d_reads_the_slab_in_spatial_order_and_starts_as_the_identity():
    from medgan.networks.translation import UNet3DTranslator, slab_order

    for context in (1, 2, 3):
        channels = neighbour_indices(np.array([context]), 2 * context + 1, context)[0]  # z of each channel
        assert channels[slab_order(2 * context + 1)].tolist() == list(range(2 * context + 1))
    network = UNet3DTranslator(6, 1, channels=4, depth=2, slab=3)  # two modalities, slabs of 3
    inputs = torch.rand(2, 6, 20, 18) * 2 - 1
    assert torch.allclose(network(inputs), inputs[:, :1].clamp(-0.999, 0.999), atol=1e-5)
    torch.nn.init.normal_(network.head.weight)
    changed = inputs.clone()
    changed[:, 2] += 0.5  # the first modality's slice above: a neighbour, not the slice itself
    assert not torch.allclose(network(changed), network(inputs))
    for bad in ((5, 1, 3), (3, 2, 3), (1, 1, 1)):
        with pytest.raises(ConfigError, match="unet3d"):
            UNet3DTranslator(bad[0], bad[1], slab=bad[2])


def test_a_unet3d_run_trains_and_translates_a_volume_and_needs_context(tmp_path, capsys):
    from medgan.cli import main

    targets, inputs = _folder_pairs(tmp_path, depth=8)
    data = {"source": str(targets), "input": str(inputs), "context": 1, "modality": "ct", "crop_foreground": False,
            **WINDOW}
    train(paired_config(data=data, model={"name": "unet3d"}, train={"steps": 2, "eval_every": 0}), tmp_path / "run",
          progress=False, scorer=None)
    model = load_model(tmp_path / "run")
    assert model.context == 1 and type(model.generator).__name__ == "UNet3DTranslator"
    assert main(["translate", "--run", str(tmp_path / "run"), "--input", str(inputs / "a.nii.gz"), "--out",
                 str(tmp_path / "out"), "--quiet"]) == 0
    assert nib.load(tmp_path / "out" / "a_translated.nii.gz").shape == (24, 20, 8)
    capsys.readouterr()
    code = main(["train", "--task", "paired", "--data", str(targets), "--input", str(inputs), "--model", "unet3d",
                 "--steps", "1", "--resolution", "32", "--out", str(tmp_path / "bad"), "--quiet"])
    assert_one_error_line(code, capsys, "unet3d", "data.context")
    assert not (tmp_path / "bad").exists()


def test_unet3d_refuses_masks_and_availability_channels(context_run):
    from dataclasses import replace as replaced

    from medgan.data import IntensityMapping
    from medgan.data.spec import DomainSpec
    from medgan.inference.translate import build_translator

    model = load_model(context_run)
    config = replaced(model.config, model=replaced(model.config.model, name="unet3d"))
    assert type(build_translator(config, model.spec, ("input",), "image")).__name__ == "UNet3DTranslator"
    mask = DomainSpec("mask", 1, IntensityMapping("identity", -1.0, 1.0, "label"))
    spec = replaced(model.spec, domains=(*model.spec.domains, mask))
    with pytest.raises(ConfigError, match="image inputs only"):
        build_translator(config, spec, ("input", "mask"), "image")


def test_unet3d_runs_its_convolutions_in_float32_under_bf16_autocast():
    """bf16 Conv3d gave a NaN weight gradient on an AMX CPU at the first backward (benchmarks/volume_denoise.py)."""
    from medgan.networks.translation import UNet3DTranslator

    network = UNet3DTranslator(3, 1, channels=4, depth=2, slab=3)
    seen = []
    network.unet.model[0].register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = network(torch.rand(2, 3, 16, 16) * 2 - 1)
    output.float().mean().backward()
    assert seen == [torch.float32] and output.dtype == torch.float32
    assert all(torch.isfinite(p.grad).all() for p in network.parameters() if p.grad is not None)
